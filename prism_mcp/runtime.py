"""What one PRISM process holds while it runs: settings, the store, observers, and background tasks.

Areas plug into a process without editing it: :func:`background_task` adds a long-running coroutine to the
services that need it, :func:`health_check` adds a component to the detailed health, and
:func:`dashboard_section` adds a section to the monitoring dashboard.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from prism_mcp import __version__
from prism_mcp.config import Settings
from prism_mcp.store.connection import CONNECTION_ERRORS, Store

if TYPE_CHECKING:
    from prism_mcp.capability import Call, Capability, Observer

__all__ = [
    "ComponentStatus",
    "Runtime",
    "Service",
    "background_task",
    "cancel_and_wait",
    "dashboard_section",
    "health_check",
    "on_runtime_start",
]

logger = logging.getLogger(__name__)

Service = Literal["api", "mcp", "web", "worker", "notifier", "stdio", "cli"]
Status = Literal["healthy", "degraded", "unhealthy"]

AUDIT_MAXLEN = 10_000
STOP_SECONDS = 10.0


class ComponentStatus(BaseModel):
    """One component of the detailed health: its status and, unless healthy, why."""

    name: str
    status: Status
    reason: str | None = None
    latency_ms: float | None = None
    details: dict[str, Any] = {}


@dataclass(frozen=True, slots=True)
class _Task:
    name: str
    run: Callable[[Runtime], Awaitable[None]]
    services: frozenset[str]


_TASKS: list[_Task] = []
HealthCheck = Callable[["Runtime"], Awaitable[ComponentStatus | None]]
_HEALTH_CHECKS: dict[str, HealthCheck] = {}
DashboardSection = Callable[["Runtime"], Awaitable[Any]]
_DASHBOARD: dict[str, DashboardSection] = {}


def background_task(
    name: str, *, services: tuple[str, ...]
) -> Callable[[Callable[[Runtime], Awaitable[None]]], Callable[[Runtime], Awaitable[None]]]:
    """Run the decorated coroutine for as long as a process running one of ``services`` lives."""

    def register(fn: Callable[[Runtime], Awaitable[None]]) -> Callable[[Runtime], Awaitable[None]]:
        _TASKS.append(_Task(name, fn, frozenset(services)))
        return fn

    return register


RuntimeHook = Callable[["Runtime"], None]
_HOOKS: list[RuntimeHook] = []


def on_runtime_start(fn: RuntimeHook) -> RuntimeHook:
    """Call ``fn(runtime)`` when any runtime starts, before its tasks: the place to add observers."""
    _HOOKS.append(fn)
    return fn


def health_check(name: str) -> Callable[[HealthCheck], HealthCheck]:
    """Add a component to the detailed health; the check returns ``None`` where it does not apply."""

    def register(fn: HealthCheck) -> HealthCheck:
        _HEALTH_CHECKS[name] = fn
        return fn

    return register


def dashboard_section(name: str) -> Callable[[DashboardSection], DashboardSection]:
    """Add a section to ``GET /monitoring/dashboard``; it should be cheap or cached."""

    def register(fn: DashboardSection) -> DashboardSection:
        _DASHBOARD[name] = fn
        return fn

    return register


def health_checks() -> Mapping[str, HealthCheck]:
    return _HEALTH_CHECKS


def dashboard_sections() -> Mapping[str, DashboardSection]:
    return _DASHBOARD


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]], seconds: float) -> set[asyncio.Task[Any]]:
    """Cancel ``tasks`` and wait up to ``seconds`` for them to end; returns the ones still running.

    Cancels again every 50 ms until each takes: on Python 3.11 a cancellation that lands while redis-py is
    opening a connection can be swallowed (the task goes on), and a loop that treats the failed command as an
    outage would then run for ever. The next cancellation reaches the loop's sleep.
    """
    pending = set(tasks)
    deadline = time.monotonic() + seconds
    while pending and time.monotonic() < deadline:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.05)
    return pending


class Runtime:
    """The shared state of one PRISM process, whichever services it runs."""

    def __init__(self, settings: Settings, store: Store, *, services: frozenset[str]) -> None:
        self.settings = settings
        self.store = store
        self.services = services
        self.version = __version__
        self.started_monotonic = time.monotonic()
        self.started_at = datetime.now(UTC)
        self.observers: list[Observer] = []
        self.in_flight = 0
        """Invocations running in this process now (kept by :func:`~prism_mcp.capability.invoke`)."""
        self.state: dict[str, Any] = {}
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def uptime_seconds(self) -> float:
        return time.monotonic() - self.started_monotonic

    async def start(self) -> None:
        """Run the start hooks, then start every background task one of this process's services needs."""
        for hook in _HOOKS:
            hook(self)
        for task in _TASKS:
            if task.services & self.services:
                self._tasks.append(asyncio.create_task(self._supervise(task), name=f"prism:{task.name}"))

    async def _supervise(self, task: _Task) -> None:
        # A background task that dies is restarted after a pause: a crash must not stop health sampling,
        # log shipping or alert evaluation for the rest of the process's life.
        while True:
            try:
                await task.run(self)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("background_task_crashed", extra={"task": task.name})
                await asyncio.sleep(1.0)

    async def stop(self) -> None:
        """Cancel the background tasks (each flushes what it holds), then close the store.

        A task that has not finished within :data:`STOP_SECONDS` is left behind and named in the log: a
        cancellation stuck inside a client library must not keep the process from exiting.
        """
        pending = await cancel_and_wait(self._tasks, STOP_SECONDS)
        for task in pending:
            logger.warning("background_task_stuck_at_stop", extra={"task": task.get_name()})
            for task in self._tasks:
                if task.done() and not task.cancelled():
                    task.exception()  # retrieved, so an error at shutdown is not reported as never seen
        self._tasks.clear()
        await self.store.close()

    async def audit(self, cap: Capability, call: Call, arguments: Mapping[str, Any], outcome: str) -> None:
        """Append one audit event for a state change; secrets among the arguments are masked."""
        shown = {k: ("***" if k in cap.secret_params else v) for k, v in arguments.items()}
        event = {
            "ts": datetime.now(UTC).isoformat(),
            "capability": cap.name,
            "principal": call.principal.name,
            "key": call.principal.fingerprint,
            "surface": call.surface,
            "request_id": call.request_id,
            "outcome": outcome,
            "arguments": json.dumps(shown, default=str)[:2000],
        }
        try:
            await self.store.redis.xadd(self.store.key("audit"), event, maxlen=AUDIT_MAXLEN, approximate=True)
        except CONNECTION_ERRORS:
            logger.warning("audit_write_failed", extra={"capability": cap.name, "request_id": call.request_id})
