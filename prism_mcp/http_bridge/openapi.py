"""The OpenAPI 3.1 document, generated from the same declarations as the routes and the MCP tools."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from prism_mcp.capability import Capability, registry

__all__ = ["openapi_document"]

REF = "#/components/schemas/{model}"

_ERROR = {
    "type": "object",
    "required": ["success", "error", "timestamp"],
    "properties": {
        "success": {"const": False},
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {}},
        },
        "timestamp": {"type": "string", "format": "date-time"},
    },
}

_ERRORS = {
    "401": "Missing or invalid API key (`Invalid API key`).",
    "403": "The key's scope does not allow this, or the address is blocked.",
    "404": "Something the parameters name does not exist; the message says what and how to list them.",
    "409": "The current state does not allow it (for example a channel that is not enabled).",
    "413": "Request body too large.",
    "422": "Invalid input; the message names the field and the bound.",
    "429": "Rate limit exceeded; see Retry-After.",
    "502": "An upstream service failed (`Notion API error`, the model server).",
    "503": "Redis connection failed.",
}


def _envelope(ref: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["success", "data", "timestamp"],
        "properties": {
            "success": {"const": True},
            "data": {"$ref": ref},
            "timestamp": {"type": "string", "format": "date-time"},
        },
    }


def _parameters(cap: Capability, schema: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(schema.get("required", []))
    params = []
    in_path = set(cap.path_params)
    for name, prop in schema.get("properties", {}).items():
        params.append(
            {
                "name": name,
                "in": "path" if name in in_path else "query",
                "required": name in required or name in in_path,
                "description": prop.get("description", ""),
                "schema": {k: v for k, v in prop.items() if k != "title"},
            }
        )
    return params


def _operation(cap: Capability, input_schema: dict[str, Any], output_ref: str) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {"description": "Success", "content": {"application/json": {"schema": _envelope(output_ref)}}},
    }
    error = {"application/json": {"schema": {"$ref": REF.format(model="ErrorEnvelope")}}}
    for status, text in _ERRORS.items():
        responses[status] = {"description": text, "content": error}
    operation: dict[str, Any] = {
        "operationId": cap.name,
        "summary": cap.summary,
        "description": cap.description,
        "tags": [cap.path.strip("/").split("/")[0] or "root"],
        "parameters": _parameters(cap, input_schema),
        "responses": responses,
        "x-prism-scope": cap.scope.value,
        "x-prism-mcp": {"resource": cap.resource_uri} if cap.is_resource else {"tool": cap.name},
    }
    if cap.method != "GET" and input_schema.get("properties"):
        operation["requestBody"] = {
            "required": False,
            "description": "The same parameters as the query string, as a JSON object; either or both may be used.",
            "content": {"application/json": {"schema": input_schema}},
        }
    return operation


def openapi_document(version: str) -> dict[str, Any]:
    """Build the document from the registry (call once; it does not change while the process runs)."""
    models: list[tuple[type[BaseModel], Any]] = []
    for cap in registry:
        models.append((cap.output_model, "serialization"))
    _, defs = models_json_schema(models, ref_template=REF)
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    schemas["ErrorEnvelope"] = _ERROR

    paths: dict[str, dict[str, Any]] = {
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "Liveness: answers without touching Redis. Public.",
                "security": [],
                "responses": {"200": {"description": "Alive"}},
            }
        },
        "/metrics/": {
            "get": {
                "operationId": "prometheus_metrics",
                "summary": "Prometheus text exposition. Public.",
                "security": [],
                "responses": {"200": {"description": "Metrics", "content": {"text/plain": {}}}},
            }
        },
    }
    for cap in registry:
        input_schema = cap.input_model.model_json_schema(ref_template=REF)
        schemas.update(input_schema.pop("$defs", {}))
        output_ref = REF.format(model=cap.output_model.__name__)
        paths.setdefault(cap.path, {})[cap.method.lower()] = _operation(cap, input_schema, output_ref)

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "PRISM API",
            "version": version,
            "description": "PRISM's REST face. Every operation is also an MCP tool or resource on port 8062.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "API_KEY"}},
            "schemas": schemas,
        },
        "paths": paths,
    }
