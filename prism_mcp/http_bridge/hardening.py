"""Security headers for every HTTP answer PRISM gives, as one reusable ASGI middleware.

Every response gets ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer``; HTML responses
also get ``X-Frame-Options: DENY`` and a Content-Security-Policy; JSON answers are ``Cache-Control: no-store``
(they carry live operational state). PRISM sends no CORS headers at all unless an area configures them: a
browser on another origin cannot read PRISM's answers, and no wildcard ``Access-Control-Allow-Origin`` is ever set.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["DEFAULT_CSP", "SecurityHeaders"]

DEFAULT_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)

_ALWAYS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)


class SecurityHeaders:
    """Add the security headers to each response start; headers the app set itself are left as they are."""

    def __init__(self, app: ASGIApp, *, csp: str = DEFAULT_CSP) -> None:
        self.app = app
        self.html: tuple[tuple[bytes, bytes], ...] = (
            (b"x-frame-options", b"DENY"),
            (b"content-security-policy", csp.encode()),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": self._headers(message.get("headers", []))}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _headers(self, given: Iterable[Any]) -> list[tuple[bytes, bytes]]:
        headers = [(bytes(k), bytes(v)) for k, v in given]
        present = {k.lower() for k, _ in headers}
        content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
        extra = list(_ALWAYS)
        if content_type.startswith(b"text/html"):
            extra += self.html
        elif content_type.startswith(b"application/json"):
            extra.append((b"cache-control", b"no-store"))
        return headers + [(k, v) for k, v in extra if k not in present]
