"""The MCP server generated from the registry (PRISM-MCP): Streamable HTTP on 8062, and stdio.

Tools and resources are built from the capability declarations: a tool's input schema comes from a wrapper
whose signature is the declaration's parameters, its output schema from the declared result model. Every call
goes through :func:`prism_mcp.capability.invoke` with the principal of the bearer key (HTTP) or of ``API_KEY``
(stdio), so MCP enforces exactly the policy REST does and answers with the same messages.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from mcp_types import Resource as MCPResource
from mcp_types import Tool as MCPTool
from pydantic import BaseModel
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from prism_mcp.auth import KeyRing, current_principal
from prism_mcp.capability import Capability, Principal, Registry, invoke, registry, validate_arguments
from prism_mcp.errors import InvalidApiKeyError, MethodNotAllowedError, PrismError
from prism_mcp.http_bridge.envelope import error_response
from prism_mcp.http_bridge.gate import admit
from prism_mcp.http_bridge.hardening import SecurityHeaders
from prism_mcp.listing import compact_tool
from prism_mcp.resources.prompts import register_prompts
from prism_mcp.runtime import Runtime

__all__ = ["INSTRUCTIONS", "McpGate", "build_mcp_server", "mcp_http_app"]

logger = logging.getLogger(__name__)

INSTRUCTIONS = """\
PRISM operates a running system: health, system and request metrics, logs, performance, security, \
notifications, scheduled jobs and backups. Every tool is also a REST route on the PRISM API.

Start with the resource prism://monitoring/health (or the tool read_resource with that URI): overall_status is \
healthy, degraded or unhealthy, and `reasons` says why. prism://health/detailed shows each component; \
prism://monitoring/metrics gives CPU, memory, disk and network; ops_diagnose matches the evidence against the \
runbooks (prism://runbooks). Every resource is JSON. Tool outputs are outlined by field name here; their full \
schemas are in the API's /openapi.json. Tools marked read-only are safe to call at any time; destructive tools \
(cleanup, cache clear, rate-limit reset) change state and are audited. An error names the parameter at fault \
and the bound it broke; fix that argument and call again."""


def _error_result(error: PrismError) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=error.message)], is_error=True)


def _principal() -> Principal:
    principal = current_principal.get()
    if principal is None:
        raise InvalidApiKeyError()
    return principal


def _tool(runtime: Runtime, cap: Capability) -> Callable[..., Awaitable[Any]]:
    async def tool(ctx: Context, **arguments: Any) -> BaseModel | CallToolResult:
        progress = ctx.report_progress if cap.long_running else None
        try:
            return await invoke(runtime, cap, _principal(), arguments, surface="mcp", progress=progress)
        except PrismError as exc:
            return _error_result(exc)

    context = inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context)
    params = [context, *cap.params]
    # The SDK reads the signature for the input schema and the annotations for the context parameter.
    tool.__signature__ = inspect.Signature(params, return_annotation=cap.output_model)  # type: ignore[attr-defined]
    tool.__annotations__ = {p.name: p.annotation for p in params} | {"return": cap.output_model}
    tool.__name__ = cap.name
    tool.__doc__ = cap.description
    return tool


def _resource(runtime: Runtime, cap: Capability) -> Callable[..., Awaitable[str]]:
    async def read(**arguments: str) -> str:
        try:
            result = await invoke(runtime, cap, _principal(), arguments, surface="mcp")
        except PrismError as exc:
            raise ResourceError(exc.message) from exc
        return result.model_dump_json()

    # A template resource (prism://runbooks/{runbook_id}) receives its URI's placeholders as arguments.
    params = [p.replace(annotation=str, default=inspect.Parameter.empty) for p in cap.params]
    read.__signature__ = inspect.Signature(params, return_annotation=str)  # type: ignore[attr-defined]
    read.__annotations__ = {p.name: str for p in params} | {"return": str}
    read.__name__ = cap.name
    return read


def _annotations(cap: Capability) -> ToolAnnotations:
    # The destructive and idempotent hints only mean something for a tool that changes state.
    if cap.read_only:
        return ToolAnnotations(read_only_hint=True, open_world_hint=False)
    return ToolAnnotations(
        read_only_hint=False,
        destructive_hint=cap.destructive,
        idempotent_hint=cap.idempotent,
        open_world_hint=False,
    )


class _ValidateFirst:
    """Check scope and arguments against the declaration before the SDK does.

    The SDK validates tool arguments against the generated schema and answers with pydantic's long text; doing
    it here first gives an MCP caller the same short message, naming the field, that REST gives.
    """

    def __init__(self, runtime: Runtime, caps: Registry) -> None:
        self.runtime = runtime
        self.caps = caps

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method != "tools/call" or not ctx.params:
            return await call_next(ctx)
        cap = self.caps.get(str(ctx.params.get("name", "")))
        if cap is None or cap.is_resource:
            return await call_next(ctx)
        try:
            principal = _principal()
            if not principal.allows(cap.scope):
                # Refused through invoke, so the denial reaches the observers (a security event) as on REST.
                await invoke(self.runtime, cap, principal, {}, surface="mcp")
            validate_arguments(cap, ctx.params.get("arguments") or {})
        except PrismError as exc:
            return _error_result(exc)
        return await call_next(ctx)


class PrismMCPServer(MCPServer):
    """The SDK's server with a listing kept small: an agent pays for every byte of ``tools/list``."""

    async def list_tools(self) -> list[MCPTool]:
        return [compact_tool(tool) for tool in await super().list_tools()]

    async def list_resources(self) -> list[MCPResource]:
        # Every resource is JSON (the instructions say so, and each read says so); the listing need not repeat it.
        return [res.model_copy(update={"mime_type": None}) for res in await super().list_resources()]


def build_mcp_server(runtime: Runtime, caps: Registry = registry) -> MCPServer:
    """An MCP server with one tool or resource per capability in ``caps``."""
    server = PrismMCPServer(
        name="prism",
        title="PRISM operations server",
        instructions=INSTRUCTIONS,
        version=runtime.version,
        log_level=runtime.settings.log_level,  # type: ignore[arg-type]
        middleware=[_ValidateFirst(runtime, caps)],
    )
    for cap in caps:
        if cap.is_resource:
            server.resource(
                cap.resource_uri or "",
                name=cap.name,
                description=cap.summary,
                mime_type="application/json",
            )(_resource(runtime, cap))
        else:
            server.add_tool(
                _tool(runtime, cap),
                name=cap.name,
                description=cap.summary,
                annotations=_annotations(cap),
                structured_output=True,
            )
    register_prompts(server, runtime)
    return server


def transport_security(runtime: Runtime) -> TransportSecuritySettings:
    """Host and Origin allowlists: loopback on any port, plus ``PRISM_ALLOWED_HOSTS``/``_ORIGINS``."""
    settings = runtime.settings
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*", *settings.allowed_hosts]
    origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*", *settings.allowed_origins]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


class McpGate:
    """ASGI layer in front of the Streamable HTTP app: the gate (guards and key), then the principal.

    ``GET /healthz`` answers without a key, as on the API port, for container health checks.

    In stateless mode a ``GET /mcp`` would open an SSE stream on which nothing is ever sent, holding
    connections and shutdown; it is answered 405, as the transport allows.
    """

    def __init__(self, app: ASGIApp, runtime: Runtime, keys: KeyRing) -> None:
        self.app = app
        self.runtime = runtime
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from prism_mcp.http_bridge.app import liveness, request_info

        if scope["path"] == "/healthz" and scope["method"] in ("GET", "HEAD"):
            await liveness(self.runtime)(scope, receive, send)
            return
        request = Request(scope)
        info = request_info(self.runtime, request, "mcp")
        try:
            principal = await admit(self.runtime, self.keys, info)
            if request.method == "GET":
                raise MethodNotAllowedError("this server is stateless: POST JSON-RPC messages to /mcp")
        except PrismError as exc:
            headers = dict(info.response_headers)
            if isinstance(exc, InvalidApiKeyError):
                headers["WWW-Authenticate"] = 'Bearer realm="prism"'
            if isinstance(exc, MethodNotAllowedError):
                headers["Allow"] = "POST, DELETE"
            await error_response(exc, headers)(scope, receive, send)
            return
        token = current_principal.set(principal)
        try:
            await self.app(scope, receive, self._with_headers(send, info.response_headers))
        finally:
            current_principal.reset(token)

    @staticmethod
    def _with_headers(send: Send, extra: dict[str, str]) -> Send:
        if not extra:
            return send
        encoded = [(k.lower().encode(), v.encode()) for k, v in extra.items()]

        async def sender(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *encoded]}
            await send(message)

        return sender


def mcp_http_app(runtime: Runtime, keys: KeyRing | None = None, caps: Registry = registry) -> ASGIApp:
    """The PRISM-MCP ASGI app: Streamable HTTP at ``/mcp``, stateless, behind the gate."""
    server = build_mcp_server(runtime, caps)
    app = server.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=True,
        # Answers stream as server-sent events so that progress notifications of long work (archive,
        # cleanup, backup) reach the client before the result; each request is still one POST.
        json_response=False,
        transport_security=transport_security(runtime),
        max_request_body_size=runtime.settings.max_body_bytes,
    )
    return SecurityHeaders(McpGate(app, runtime, keys or KeyRing(runtime.settings)))
