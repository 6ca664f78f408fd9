"""Reading a capability's arguments from the query string and the JSON body."""

from __future__ import annotations

import json
import types
from typing import Annotated, Any, Union, get_args, get_origin

from starlette.requests import Request

from prism_mcp.capability import Capability
from prism_mcp.errors import InvalidInputError, PayloadTooLargeError

__all__ = ["read_arguments"]

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _is_list(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _is_list(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return any(_is_list(arg) for arg in get_args(annotation) if arg is not type(None))
    return origin in (list, tuple, set, frozenset)


def list_params(cap: Capability) -> frozenset[str]:
    return frozenset(p.name for p in cap.params if _is_list(p.annotation))


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"request body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"request body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_arguments(request: Request, cap: Capability, lists: frozenset[str], limit: int) -> dict[str, Any]:
    """Merge query-string and JSON-body parameters; a parameter given twice with two values is refused."""
    args: dict[str, Any] = dict(request.scope.get("path_params") or {})
    if request.scope.get("query_string"):
        query = request.query_params
        for name in query:
            if name in args:
                raise InvalidInputError(name, "is part of the path; do not repeat it in the query string")
            args[name] = query.getlist(name) if name in lists else query[name]
    if request.method not in _BODY_METHODS:
        return args
    raw = await _read_body(request, limit)
    if not raw.strip():
        return args
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError("body", f"expected a JSON object ({exc.__class__.__name__})") from exc
    if not isinstance(body, dict):
        raise InvalidInputError("body", f"expected a JSON object, got {type(body).__name__}")
    for name, value in body.items():
        if name in args and str(args[name]) != str(value):
            raise InvalidInputError(name, "given in both the query string and the body with different values")
        args[name] = value
    return args
