"""The REST API generated from the registry (PRISM-API, port 8060)."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from prism_mcp.auth import KeyRing
from prism_mcp.capability import Capability, Registry, invoke, path_regex, registry
from prism_mcp.errors import MethodNotAllowedError, NotFoundError, PrismError
from prism_mcp.http_bridge.envelope import error_response, json_response, success_body
from prism_mcp.http_bridge.gate import Port, RequestInfo, admit, client_address, report_not_found
from prism_mcp.http_bridge.hardening import DEFAULT_CSP, SecurityHeaders
from prism_mcp.http_bridge.openapi import openapi_document
from prism_mcp.http_bridge.params import list_params, read_arguments
from prism_mcp.promexport import HttpMetrics, metrics_endpoint
from prism_mcp.runtime import Runtime

__all__ = ["build_api_app", "liveness", "request_info"]

logger = logging.getLogger(__name__)

STATIC = __file__.rsplit("/", 1)[0] + "/static"
Endpoint = Callable[[Request], Awaitable[Response]]
# The one HTML page on this port (/docs) carries its script and style inline.
DOCS_CSP = DEFAULT_CSP.replace("script-src 'self'", "script-src 'self' 'unsafe-inline'").replace(
    "style-src 'self'", "style-src 'self' 'unsafe-inline'"
)


def request_info(runtime: Runtime, request: Request, port: Port = "api") -> RequestInfo:
    scope = request.scope
    peer = scope["client"][0] if scope.get("client") else "unknown"
    return RequestInfo(
        port=port,
        method=scope["method"],
        path=scope["path"],
        client_ip=client_address(runtime, peer, request.headers),
        peer_ip=peer,
        headers=request.headers,
        query_string=scope.get("query_string", b"").decode("latin-1"),
    )


def _request_id(request: Request) -> str:
    given = request.headers.get("x-request-id", "")
    if 0 < len(given) <= 64 and given.replace("-", "").isalnum():
        return given
    return os.urandom(8).hex()


def _endpoint(runtime: Runtime, keys: KeyRing, cap: Capability) -> Endpoint:
    lists = list_params(cap)
    limit = runtime.settings.max_body_bytes

    async def endpoint(request: Request) -> Response:
        info = request_info(runtime, request)
        request_id = _request_id(request)
        try:
            principal = await admit(runtime, keys, info)
            arguments = await read_arguments(request, cap, lists, limit)
            result = await invoke(runtime, cap, principal, arguments, surface="rest", request_id=request_id)
        except PrismError as exc:
            return error_response(exc, {**info.response_headers, "X-Request-ID": request_id})
        headers = {**info.response_headers, "X-Request-ID": request_id}
        return json_response(success_body(result), headers=headers)

    endpoint.__name__ = cap.name
    return endpoint


def liveness(runtime: Runtime) -> Response:
    """``GET /healthz`` on every port: the process answers; no key and no Redis round trip."""
    data = {"status": "ok", "version": runtime.version, "uptime_seconds": round(runtime.uptime_seconds, 3)}
    return json_response(success_body(data))


async def _healthz(request: Request) -> Response:
    return liveness(request.app.state.runtime)


def _openapi(runtime: Runtime, keys: KeyRing) -> Endpoint:
    document: dict[str, object] = {}

    async def endpoint(request: Request) -> Response:
        try:
            await admit(runtime, keys, request_info(runtime, request))
        except PrismError as exc:
            return error_response(exc)
        if not document:
            document.update(openapi_document(runtime.version))
        import json

        return json_response(json.dumps(document).encode())

    return endpoint


async def _docs(request: Request) -> Response:
    return FileResponse(f"{STATIC}/docs.html", media_type="text/html")


class _Envelope:
    """Outermost layer: any error that escapes a route answers in the envelope, never with a traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            logger.exception("request_crashed", extra={"path": scope.get("path")})
            if not started:
                await error_response(PrismError())(scope, receive, send)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        runtime: Runtime = request.app.state.runtime
        try:
            await report_not_found(runtime, request_info(runtime, request))
        except PrismError as refused:
            return error_response(refused)
        return error_response(NotFoundError(f"no route {request.method} {request.url.path}; see /openapi.json"))
    if exc.status_code == 405:
        return error_response(MethodNotAllowedError(f"{request.method} is not allowed on {request.url.path}"))
    error = PrismError(exc.detail)
    error.status = exc.status_code
    return error_response(error)


class _Router:
    """Exact-path dispatch for the capability routes, in front of Starlette for everything else.

    Every capability path is static, so one dictionary lookup replaces a linear scan of route patterns and
    Starlette's middleware stack on the hot path; unknown paths still reach Starlette's 404 and 405 handling.
    """

    def __init__(
        self,
        table: dict[str, dict[str, Endpoint]],
        templated: list[tuple[re.Pattern[str], dict[str, Endpoint]]],
        fallback: ASGIApp,
    ) -> None:
        self.table = table
        self.templated = templated
        self.fallback = fallback

    def _lookup(self, scope: Scope) -> dict[str, Endpoint] | None:
        methods = self.table.get(scope["path"])
        if methods is not None:
            return methods
        for pattern, candidates in self.templated:
            found = pattern.fullmatch(scope["path"])
            if found is not None:
                scope["path_params"] = found.groupdict()
                return candidates
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        methods = self._lookup(scope) if scope["type"] == "http" else None
        if methods is None:
            await self.fallback(scope, receive, send)
            return
        endpoint = methods.get(scope["method"])
        if endpoint is None and scope["method"] == "HEAD":
            endpoint = methods.get("GET")
        if endpoint is None:
            allowed = ", ".join(sorted(methods))
            error = MethodNotAllowedError(f"{scope['method']} is not allowed on {scope['path']}; use {allowed}")
            await error_response(error, {"Allow": allowed})(scope, receive, send)
            return
        response = await endpoint(Request(scope, receive))
        await response(scope, receive, send)


def build_api_app(runtime: Runtime, keys: KeyRing | None = None, caps: Registry = registry) -> ASGIApp:
    """The PRISM-API app: one route per capability in ``caps``, plus ``/healthz``, ``/metrics/`` and the docs."""
    keys = keys or KeyRing(runtime.settings)
    routes: list[BaseRoute] = [
        Route("/healthz", _healthz, methods=["GET"]),
        Route("/metrics/", metrics_endpoint, methods=["GET"]),
        Route("/openapi.json", _openapi(runtime, keys), methods=["GET"]),
        Route("/docs", _docs, methods=["GET"]),
    ]
    table: dict[str, dict[str, Endpoint]] = {}
    by_template: dict[str, dict[str, Endpoint]] = {}
    for cap in caps:
        target = by_template if cap.path_params else table
        target.setdefault(cap.path, {})[cap.method] = _endpoint(runtime, keys, cap)
    templated = [(path_regex(path), methods) for path, methods in by_template.items()]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    app.state.runtime = runtime
    return SecurityHeaders(_Envelope(HttpMetrics(_Router(table, templated, app), runtime, caps)), csp=DOCS_CSP)
