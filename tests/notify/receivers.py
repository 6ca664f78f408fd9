"""Local stand-ins for Slack and an SMTP relay, speaking the real protocols over loopback sockets.

:class:`WebhookReceiver` is a uvicorn server that records every POST (arrival time, path, JSON body) and answers
from a script (``500`` then ``200``, ``429`` with ``Retry-After``, a redirect, a delayed answer).
:class:`MailReceiver` is an aiosmtpd server that records every message it accepts.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from prism_mcp.serving import Listener, QuietServer, start_server
from tests.conftest import free_port


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    body: str = "ok"


@dataclass
class Arrival:
    at: float
    path: str
    body: dict[str, Any]


async def wait_until(check: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``check`` every 20 ms until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.02)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0, what: str = "condition") -> None:
    """Like :func:`wait_until` for a check that must await (a Redis read)."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.05)


class WebhookReceiver:
    """An incoming-webhook server on 127.0.0.1; answers ``script`` replies in order, then ``default``."""

    def __init__(self) -> None:
        self.port = free_port()
        self.arrivals: list[Arrival] = []
        self.answered = 0
        self.script: list[Reply] = []
        self.default = Reply()
        self._server: QuietServer | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def host_port(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, path: str = "/services/T000/B000/secret0token") -> str:
        return f"http://{self.host_port}{path}"

    @property
    def in_flight(self) -> int:
        return len(self.arrivals) - self.answered

    def texts(self) -> list[str]:
        return [str(a.body.get("text", "")) for a in self.arrivals]

    async def _hook(self, request: Request) -> Response:
        body = await request.json()
        self.arrivals.append(Arrival(time.monotonic(), request.url.path, body))
        reply = self.script.pop(0) if self.script else self.default
        try:
            if reply.delay:
                await asyncio.sleep(reply.delay)
        finally:
            self.answered += 1
        return Response(reply.body, status_code=reply.status, headers=reply.headers)

    async def start(self) -> WebhookReceiver:
        app = Starlette(routes=[Route("/{path:path}", self._hook, methods=["POST"])])
        self._server, self._task = await start_server(Listener("webhook", app, "127.0.0.1", self.port))
        return self

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task


class _Recorder:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 Message accepted"


class MailReceiver:
    """An SMTP server (aiosmtpd) on 127.0.0.1 that keeps every message it accepts."""

    def __init__(self) -> None:
        self.port = free_port()
        self._recorder = _Recorder()
        self._controller = Controller(self._recorder, hostname="127.0.0.1", port=self.port)

    @property
    def messages(self) -> list[tuple[list[str], EmailMessage]]:
        return self._recorder.messages

    def subjects(self) -> list[str]:
        return [str(message["Subject"]) for _, message in self.messages]

    def start(self) -> MailReceiver:
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller.server is not None:
            self._controller.stop()
