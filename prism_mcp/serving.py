"""Running several uvicorn servers in one event loop, with signals handled once, by PRISM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Generator
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp

__all__ = ["Listener", "QuietServer", "serve_all", "start_server"]

logger = logging.getLogger(__name__)

# A server that still has open connections after this long is closed regardless: an idle SSE or MCP stream
# must not hold shutdown forever.
GRACEFUL_SECONDS = 5


@dataclass(frozen=True, slots=True)
class Listener:
    name: str
    app: ASGIApp
    host: str
    port: int


class QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its owner."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _config(listener: Listener) -> uvicorn.Config:
    return uvicorn.Config(
        listener.app,
        host=listener.host,
        port=listener.port,
        loop="none",
        http="httptools",
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        # uvicorn would otherwise rewrite the client address from X-Forwarded-For for any loopback peer;
        # PRISM decides whom to believe itself (PRISM_TRUSTED_PROXIES, see prism_mcp.security.addresses).
        proxy_headers=False,
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
        timeout_keep_alive=30,
    )


async def start_server(listener: Listener) -> tuple[QuietServer, asyncio.Task[None]]:
    """Start one server and wait until it listens; raises ``OSError`` if it could not bind."""
    server = QuietServer(_config(listener))
    task = asyncio.create_task(server.serve(), name=f"uvicorn:{listener.name}")
    while not server.started:
        if task.done():
            task.result()
            raise OSError(f"{listener.name} could not listen on {listener.host}:{listener.port}")
        await asyncio.sleep(0.01)
    return server, task


async def serve_all(listeners: list[Listener], stop: asyncio.Event, on_ready: Callable[[], None] | None = None) -> None:
    """Serve every listener until ``stop`` is set or one of them fails, then shut all of them down.

    ``on_ready`` is called once every listener accepts connections.
    """
    started: list[tuple[QuietServer, asyncio.Task[None]]] = []
    try:
        for listener in listeners:
            started.append(await start_server(listener))
            logger.info("listening", extra={"service": listener.name, "port": listener.port})
        if on_ready is not None:
            on_ready()
        waiters = [asyncio.create_task(stop.wait())] + [task for _, task in started]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        waiters[0].cancel()
    finally:
        for server, _ in started:
            server.should_exit = True
        for _, task in started:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await task
