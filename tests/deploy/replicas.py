"""Helpers for the scale-out tests: PRISM processes started side by side, and a round-robin TCP proxy.

:class:`Replicas` starts ``prism`` subprocesses with one environment (one Redis, one key prefix) and stops them
with SIGTERM, then SIGKILL after a bounded wait. :class:`RoundRobinProxy` forwards each new loopback connection
to the next upstream port in turn and counts how many each one served, so a test can show that consecutive
requests of one client reached different replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx

T = TypeVar("T")
PRISM = [sys.executable, "-m", "prism_mcp"]


async def eventually(probe: Callable[[], Awaitable[T | None]], seconds: float, what: str, every: float = 0.2) -> T:
    """Poll ``probe`` until it returns something truthy, at most ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        found = await probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:g} s waiting for {what}")
        await asyncio.sleep(every)


@dataclass
class Replica:
    service: str
    process: subprocess.Popen[bytes]
    log: Path
    port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tail(self, lines: int = 20) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Replicas:
    """PRISM processes sharing one environment; each writes its output to its own log file in ``workdir``."""

    env: dict[str, str]
    workdir: Path
    started: list[Replica] = field(default_factory=list)

    def start(self, service: str, port: int | None = None) -> Replica:
        args = ["serve", service] if service in {"api", "mcp"} else [service]
        env = {**self.env, "PYTHONFAULTHANDLER": "1"}
        if port is not None:
            env[f"PRISM_{service.upper()}_PORT"] = str(port)
        log = self.workdir / f"{service}-{len(self.started)}.log"
        with log.open("ab") as out:
            process = subprocess.Popen([*PRISM, *args], cwd=self.workdir, env=env, stdout=out, stderr=out)
        replica = Replica(service, process, log, port)
        self.started.append(replica)
        return replica

    def of(self, service: str) -> list[Replica]:
        return [r for r in self.started if r.service == service]

    def check_running(self) -> None:
        for replica in self.started:
            if replica.process.poll() is not None:
                raise AssertionError(f"{replica.service} exited with {replica.process.returncode}:\n{replica.tail()}")

    async def wait_listening(self, seconds: float) -> None:
        """Until every replica with a port answers ``GET /healthz`` (no key, so no rate limit is spent)."""
        async with httpx.AsyncClient(timeout=2) as client:
            for replica in self.started:
                if replica.port is None:
                    continue

                async def answers(replica: Replica = replica) -> bool:
                    self.check_running()
                    with contextlib.suppress(httpx.TransportError):
                        return (await client.get(f"{replica.url}/healthz")).status_code == 200
                    return False

                await eventually(answers, seconds, f"{replica.service} on port {replica.port}")

    async def stop(self, seconds: float) -> dict[int, int]:
        """SIGTERM every live process, SIGABRT then SIGKILL what is left after ``seconds``; each pid's exit code."""
        for replica in self.started:
            if replica.process.poll() is None:
                replica.process.send_signal(signal.SIGTERM)
        await self._wait_all(seconds)
        # A straggler first gets SIGABRT, so that faulthandler (PYTHONFAULTHANDLER) writes its threads' stacks
        # to its log, the only clue to what held its stop; then SIGKILL.
        for replica in self.started:
            if replica.process.poll() is None:
                replica.process.send_signal(signal.SIGABRT)
        await self._wait_all(3)
        for replica in self.started:
            if replica.process.poll() is None:
                replica.process.kill()
                replica.process.wait(timeout=10)
        return {r.process.pid: r.process.returncode for r in self.started}

    async def _wait_all(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while any(r.process.poll() is None for r in self.started) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)

    def unclean(self) -> str:
        """The log tail of every process that did not exit with 0, for an assertion message."""
        failed = [r for r in self.started if r.process.returncode != 0]
        return "\n".join(f"{r.service} pid {r.process.pid} -> {r.process.returncode}:\n{r.tail(40)}" for r in failed)


class RoundRobinProxy:
    """A loopback TCP proxy: connection n goes to ``upstreams[n % len(upstreams)]``."""

    def __init__(self, upstreams: list[int]) -> None:
        self.upstreams = upstreams
        self.served: Counter[int] = Counter()
        self._connections = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        port = self.upstreams[self._connections % len(self.upstreams)]
        self._connections += 1
        self.served[port] += 1
        up_writer: asyncio.StreamWriter | None = None
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self._tasks.discard(task)
            writer.close()
            if up_writer is not None:
                up_writer.close()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    # Either side may reset the connection when it is done with it; that ends this direction, nothing more.
    with contextlib.suppress(ConnectionError):
        while chunk := await source.read(65536):
            sink.write(chunk)
            await sink.drain()
    with contextlib.suppress(ConnectionError, OSError):
        if sink.can_write_eof():
            sink.write_eof()
        else:
            sink.close()
