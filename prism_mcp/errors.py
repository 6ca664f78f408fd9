"""PRISM's one exception tree.

Every error a caller can see derives from :class:`PrismError`::

    PrismError                      500 internal_error
    ├── ArchiveError                500 archive_failed         a written archive did not verify
    ├── InvalidApiKeyError          401 invalid_api_key        "Invalid API key"
    ├── ForbiddenError              403 forbidden
    │   └── BlockedAddressError     403 address_blocked
    ├── NotFoundError               404 not_found
    ├── MethodNotAllowedError       405 method_not_allowed
    ├── ConflictError               409 conflict
    ├── PayloadTooLargeError        413 payload_too_large
    ├── InvalidInputError           422 validation_error       names the field and the bound
    ├── RateLimitedError            429 rate_limited           "Rate limit exceeded"
    ├── UpstreamError               502 upstream_error
    │   └── NotionApiError          502 notion_api_error       "Notion API error"
    └── RedisUnavailableError       503 redis_unavailable      "Redis connection failed"

The REST bridge maps ``status`` to the HTTP status; the MCP server turns the same error into a tool error
whose text is ``message``. Messages are written for the reader: what was expected, what arrived, what to do.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ArchiveError",
    "BlockedAddressError",
    "ConflictError",
    "ForbiddenError",
    "InvalidApiKeyError",
    "InvalidInputError",
    "MethodNotAllowedError",
    "NotFoundError",
    "NotionApiError",
    "PayloadTooLargeError",
    "PrismError",
    "RateLimitedError",
    "RedisUnavailableError",
    "UpstreamError",
]


class PrismError(Exception):
    """Base of every error PRISM reports to a caller."""

    status: int = 500
    code: str = "internal_error"
    default_message: str = "Internal error"

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or self.default_message
        self.details = details
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        """The ``error`` member of the error envelope."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class ArchiveError(PrismError):
    """An archive file did not read back as written; the records stay in Redis."""

    code = "archive_failed"
    default_message = "Log archive failed verification"


class InvalidApiKeyError(PrismError):
    status = 401
    code = "invalid_api_key"
    default_message = "Invalid API key"


class ForbiddenError(PrismError):
    status = 403
    code = "forbidden"
    default_message = "Forbidden"


class BlockedAddressError(ForbiddenError):
    code = "address_blocked"
    default_message = "Access from this address is blocked"


class NotFoundError(PrismError):
    status = 404
    code = "not_found"
    default_message = "Not found"


class MethodNotAllowedError(PrismError):
    status = 405
    code = "method_not_allowed"
    default_message = "Method not allowed"


class ConflictError(PrismError):
    status = 409
    code = "conflict"
    default_message = "Conflict"


class PayloadTooLargeError(PrismError):
    status = 413
    code = "payload_too_large"
    default_message = "Request body too large"


class InvalidInputError(PrismError):
    """Bad input: ``field`` names the parameter, ``message`` says what was expected."""

    status = 422
    code = "validation_error"
    default_message = "Invalid input"

    def __init__(self, field: str, message: str, **details: Any) -> None:
        self.field = field
        super().__init__(f"{field}: {message}", field=field, **details)


class RateLimitedError(PrismError):
    status = 429
    code = "rate_limited"
    default_message = "Rate limit exceeded"

    def __init__(self, retry_after: int, limit: int = 0, message: str | None = None) -> None:
        self.retry_after = max(1, retry_after)
        self.limit = limit
        super().__init__(message, retry_after=self.retry_after)


class UpstreamError(PrismError):
    status = 502
    code = "upstream_error"
    default_message = "Upstream service error"


class NotionApiError(UpstreamError):
    code = "notion_api_error"
    default_message = "Notion API error"


class RedisUnavailableError(PrismError):
    status = 503
    code = "redis_unavailable"
    default_message = "Redis connection failed"
