"""What an MCP client lists, kept small: the budget for the whole listing is about 6,000 tokens.

Every tool keeps its name, the one-paragraph contract, its annotations, a full input schema (types, bounds,
enums, defaults and the descriptions agents need to fill it in) and an output schema that outlines the answer
by its field names. The full output models, with every type and description, are in the OpenAPI document.
"""

from __future__ import annotations

from typing import Any

from mcp_types import Tool

__all__ = ["compact_output", "compact_schema", "compact_tool"]

_DROP = frozenset({"title"})


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


def compact_output(schema: dict[str, Any]) -> dict[str, Any]:
    """The output schema as the answer's outline: the names of its top-level fields.

    Every answer conforms to it (nothing is required and no field is constrained); the types and
    descriptions of each field are in the OpenAPI document, and the answer itself shows them.
    """
    defs = schema.get("$defs", {})
    target = _resolve(schema, defs)
    names = list(target.get("properties", {})) if isinstance(target, dict) else []
    return {"type": "object", "properties": {name: {} for name in names}}


def compact_tool(tool: Tool) -> Tool:
    update: dict[str, Any] = {"input_schema": compact_schema(tool.input_schema)}
    if tool.output_schema is not None:
        update["output_schema"] = compact_output(tool.output_schema)
    return tool.model_copy(update=update)
