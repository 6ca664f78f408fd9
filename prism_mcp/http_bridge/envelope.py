"""The success and error envelopes every REST answer uses.

Success: ``{"success": true, "data": …, "timestamp": "…"}``.
Error: ``{"success": false, "error": {"code": "…", "message": "…"}, "timestamp": "…"}``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from starlette.responses import Response

from prism_mcp.errors import PrismError, RateLimitedError

__all__ = ["JSON", "error_response", "json_response", "success_body"]

JSON = "application/json"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def success_body(data: BaseModel | dict[str, Any]) -> bytes:
    """The success envelope as bytes; pydantic serialises the model straight to JSON."""
    payload = data.model_dump_json() if isinstance(data, BaseModel) else json.dumps(data, default=str)
    return b'{"success":true,"data":' + payload.encode() + b',"timestamp":"' + _now().encode() + b'"}'


def json_response(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type=JSON, headers=headers)


def error_response(error: PrismError, headers: dict[str, str] | None = None) -> Response:
    """The error envelope with the error's status; a 429 also carries ``Retry-After``."""
    body = {"success": False, "error": error.to_dict(), "timestamp": _now()}
    extra = dict(headers or {})
    if isinstance(error, RateLimitedError):
        extra["Retry-After"] = str(error.retry_after)
    return Response(json.dumps(body).encode(), status_code=error.status, media_type=JSON, headers=extra)
