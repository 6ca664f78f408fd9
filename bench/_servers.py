"""The servers the foundation benchmark measures, run in their own process (``python bench/_servers.py``).

Four listeners, each doing the same work (read the latest system sample and answer the SystemMetrics model):
PRISM's REST bridge, a bare Starlette route, PRISM's MCP server, and a bare MCP SDK server with one tool.
"""

from __future__ import annotations

import asyncio
import json
import sys

import uvicorn
from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from prism_mcp.capability import Principal, Scope, registry
from prism_mcp.config import load_settings
from prism_mcp.http_bridge import build_api_app
from prism_mcp.runtime import Runtime
from prism_mcp.server import mcp_http_app, transport_security
from prism_mcp.serving import Listener, serve_all
from prism_mcp.store import Store
from prism_mcp.tools import load_all
from prism_mcp.tools.monitoring import SystemMetrics

KEY = "bench-key-0123456789"


def bare_starlette(runtime: Runtime) -> Starlette:
    cap = registry.get("monitoring_metrics")
    assert cap is not None
    principal = Principal("bench", Scope.ADMIN)

    async def metrics(request: Request) -> Response:
        from prism_mcp.capability import Call

        result = await cap.handler(Call(runtime, principal, "rest", "r", cap))
        return Response(result.model_dump_json(), media_type="application/json")

    return Starlette(routes=[Route("/monitoring/metrics", metrics)])


def bare_mcp(runtime: Runtime) -> Starlette:
    cap = registry.get("monitoring_metrics")
    assert cap is not None
    server = MCPServer(name="bare", log_level="WARNING")

    async def monitoring_metrics() -> SystemMetrics:
        from prism_mcp.capability import Call

        result = await cap.handler(Call(runtime, Principal("bench", Scope.ADMIN), "mcp", "r", cap))
        assert isinstance(result, SystemMetrics)
        return result

    server.add_tool(monitoring_metrics, structured_output=True)
    return server.streamable_http_app(
        stateless_http=True, json_response=True, transport_security=transport_security(runtime)
    )


async def main(redis_url: str, ports: list[int]) -> None:
    load_all()
    settings = load_settings(API_KEY=KEY, REDIS_URL=redis_url, PRISM_KEY_PREFIX="bench:", PRISM_LOG_LEVEL="WARNING")
    runtime = Runtime(settings, Store(redis_url, prefix="bench:"), services=frozenset({"api", "mcp"}))
    await runtime.start()
    listeners = [
        Listener("prism-rest", build_api_app(runtime), "127.0.0.1", ports[0]),
        Listener("bare-rest", bare_starlette(runtime), "127.0.0.1", ports[1]),
        Listener("prism-mcp", mcp_http_app(runtime), "127.0.0.1", ports[2]),
        Listener("bare-mcp", bare_mcp(runtime), "127.0.0.1", ports[3]),
    ]
    stop = asyncio.Event()

    def ready() -> None:
        print(json.dumps({"ready": True}), flush=True)

    loop = asyncio.get_running_loop()
    loop.add_reader(sys.stdin.fileno(), stop.set)
    await serve_all(listeners, stop, on_ready=ready)
    await runtime.stop()


if __name__ == "__main__":
    import logging

    logging.disable(logging.WARNING)
    uvicorn.config.LOGGING_CONFIG = {"version": 1}
    import uvloop

    uvloop.run(main(sys.argv[1], [int(p) for p in sys.argv[2:6]]))
