"""What an MCP client lists, kept small: the budget for the whole listing is about 6,000 tokens.

Every tool keeps its name, a short title, the one-paragraph contract, its annotations, a full input schema
(types, bounds, enums, defaults and the descriptions agents need to fill it in) and an output schema that
gives the answer's shape to two levels (property names and types) without titles or descriptions. The full
output models, with every description, are in the OpenAPI document and in each ``prism://`` resource.
"""

from __future__ import annotations

from typing import Any

from mcp_types import Tool

from prism_mcp.capability import Capability

__all__ = ["compact_output", "compact_schema", "compact_tool", "short_title"]

_DROP = frozenset({"title"})
_OUTPUT_DEPTH = 2


def short_title(cap: Capability) -> str:
    """``logs_stats`` becomes ``Logs stats``: a display name, not a second copy of the description."""
    return cap.name.replace("_", " ").capitalize()


def _resolve(schema: Any, defs: dict[str, Any]) -> Any:
    if isinstance(schema, dict) and "$ref" in schema:
        return _resolve(defs.get(schema["$ref"].rsplit("/", 1)[-1], {}), defs)
    return schema


def _without_null(prop: dict[str, Any]) -> dict[str, Any]:
    # An optional parameter (`X | None = None`) is written `anyOf: [X, null], default: null`; the agent learns
    # the same from the parameter not being required, and PRISM still accepts an explicit null.
    options = prop.get("anyOf")
    if prop.get("default", ...) is not None or not isinstance(options, list):
        return prop
    rest = [o for o in options if o != {"type": "null"}]
    if len(rest) != 1 or len(rest) == len(options):
        return prop
    flat = {k: v for k, v in prop.items() if k not in ("anyOf", "default")}
    return {**rest[0], **flat}


def compact_schema(schema: Any) -> Any:
    """The schema without the titles pydantic repeats on every property (``limit`` → ``"Limit"``) and with
    optional parameters written without their null alternative."""
    if isinstance(schema, dict):
        out = {k: compact_schema(v) for k, v in schema.items() if k not in _DROP or not isinstance(v, str)}
        if isinstance(out.get("properties"), dict):
            out["properties"] = {name: _without_null(prop) for name, prop in out["properties"].items()}
        return out
    if isinstance(schema, list):
        return [compact_schema(item) for item in schema]
    return schema


def _shape(schema: Any, defs: dict[str, Any], depth: int) -> dict[str, Any]:
    schema = _resolve(schema, defs)
    if not isinstance(schema, dict):
        return {}
    options = schema.get("anyOf")
    if options:
        kinds = [_shape(option, defs, depth) for option in options]
        if all(set(k) == {"type"} for k in kinds):
            return {"type": [k["type"] for k in kinds]}
        return {"anyOf": [k for k in kinds if k]} if all(kinds) else {}
    kind = schema.get("type")
    if "enum" in schema:
        return {"enum": schema["enum"]}
    if kind == "object" and depth > 0 and "properties" in schema:
        props = {name: _shape(prop, defs, depth - 1) for name, prop in schema["properties"].items()}
        return {"type": "object", "properties": props}
    if kind == "array" and depth > 0 and "items" in schema:
        return {"type": "array", "items": _shape(schema["items"], defs, depth - 1)}
    return {"type": kind} if kind else {}


def compact_output(schema: dict[str, Any]) -> dict[str, Any]:
    """The output schema as the answer's shape: property names and types, two levels deep.

    It is looser than the model (nothing is required, deeper levels are only typed), so every answer still
    conforms to it.
    """
    return _shape(schema, schema.get("$defs", {}), _OUTPUT_DEPTH)


def compact_tool(tool: Tool) -> Tool:
    update: dict[str, Any] = {"input_schema": compact_schema(tool.input_schema)}
    if tool.output_schema is not None:
        update["output_schema"] = compact_output(tool.output_schema)
    return tool.model_copy(update=update)
