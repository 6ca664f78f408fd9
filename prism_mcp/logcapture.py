"""Capture of every PRISM process's log events into Redis, without slowing the code that logs.

The logging pipeline hands each event to a :class:`~prism_mcp.logsetup.CaptureSink`, a bounded buffer in memory.
The ``log_writer`` background task drains it in batches and writes each batch in one pipeline. When Redis is
down or slow (a write takes longer than ``PRISM_LOG_WRITE_TIMEOUT``) the batch is counted as dropped; when the
buffer is full new events are counted as dropped. Drops are never silent: the count is in the ``logs`` health
component, and is added to the hour's ``dropped`` counter (read by ``logs_stats``) once Redis answers again.

This module also writes the one ``request_finished`` summary line per capability call, on every surface, and
per request refused for its key (which never reaches a capability).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from prism_mcp.capability import Call, Capability
from prism_mcp.errors import PrismError
from prism_mcp.http_bridge.gate import RequestInfo, auth_failure_hook, pre_auth_guard
from prism_mcp.logsetup import CaptureSink, add_sink, current_service, remove_sink, service_for_surface
from prism_mcp.logstore import record_from_event, write_records
from prism_mcp.runtime import ComponentStatus, Runtime, background_task, health_check, on_runtime_start
from prism_mcp.store.connection import CONNECTION_ERRORS

__all__ = ["WriterState", "flush", "writer_state"]

logger = logging.getLogger(__name__)

STATE_KEY = "logs.writer"
# A drop this recent makes the logs component degraded; older ones are history, kept in the counters.
DROP_DEGRADED_SECONDS = 300.0
FAILURE_BACKOFF_SECONDS = 1.0
SHUTDOWN_FLUSH_SECONDS = 3.0
WRITE_FAILURES: tuple[type[BaseException], ...] = (*CONNECTION_ERRORS, RedisError, TimeoutError)


@dataclass(slots=True)
class WriterState:
    """What one process's log writer has done: for health, stats and the dashboard."""

    sink: CaptureSink
    written: int = 0
    reported_drops: int = 0
    last_drop_at: float | None = None
    failing_since: float | None = None
    last_error: str | None = None
    batches: int = 0
    seen_drops: int = 0

    @property
    def unreported_drops(self) -> int:
        return self.sink.dropped - self.reported_drops

    def note_drops(self) -> None:
        if self.sink.dropped != self.seen_drops:
            self.seen_drops = self.sink.dropped
            self.last_drop_at = time.monotonic()


def writer_state(runtime: Runtime) -> WriterState | None:
    state = runtime.state.get(STATE_KEY)
    return state if isinstance(state, WriterState) else None


def _consume_outcome(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


async def _bounded(coro: Coroutine[Any, Any, Any], seconds: float) -> None:
    """Await ``coro`` for at most ``seconds``; raises ``TimeoutError`` after that, or what ``coro`` raised.

    The work runs as its own task and is only asked to stop on timeout, never waited for: a write stuck in a
    dead connection must not hold the writer, nor the shutdown that cancels it.
    """
    task = asyncio.create_task(coro)
    task.add_done_callback(_consume_outcome)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        raise TimeoutError
    task.result()


async def _write_batch(runtime: Runtime, state: WriterState, batch: list[dict[str, Any]]) -> bool:
    settings = runtime.settings
    records = [record_from_event(event) for event in batch]
    drops = state.unreported_drops
    try:
        await _bounded(write_records(runtime.store, records, dropped=drops), settings.log_write_timeout)
    except WRITE_FAILURES as exc:
        state.sink.count_dropped(len(batch))
        state.note_drops()
        if state.failing_since is None:
            state.failing_since = time.monotonic()
            state.last_error = type(exc).__name__
            logger.warning("log_capture_failing", extra={"error": type(exc).__name__, "dropped": len(batch)})
        return False
    state.written += len(records)
    state.reported_drops += drops
    state.batches += 1
    if state.failing_since is not None:
        logger.info("log_capture_recovered", extra={"dropped_total": state.sink.dropped})
        state.failing_since = None
    return True


async def flush(runtime: Runtime, state: WriterState) -> bool:
    """Write everything buffered now, batch by batch; ``False`` as soon as one batch could not be written."""
    size = runtime.settings.log_batch_size
    while batch := state.sink.take(size):
        if not await _write_batch(runtime, state, batch):
            return False
    state.note_drops()
    if state.unreported_drops:
        return await _write_batch(runtime, state, [])
    return True


@background_task("log_writer", services=("api", "mcp", "worker", "notifier", "stdio", "cli"))
async def _log_writer(runtime: Runtime) -> None:
    settings = runtime.settings
    if not settings.log_capture:
        return
    state = writer_state(runtime) or WriterState(CaptureSink(settings.log_queue_size))
    runtime.state[STATE_KEY] = state
    add_sink(state.sink)
    try:
        while True:
            ok = await flush(runtime, state)
            await asyncio.sleep(settings.log_flush_interval if ok else FAILURE_BACKOFF_SECONDS)
    except asyncio.CancelledError:
        remove_sink(state.sink)
        # Shutdown: what is buffered is written before the store closes, within a bound. Whatever goes wrong
        # here, the cancellation must go on: a task that answers it with an error is restarted by its supervisor
        # and would hold the process's stop forever.
        with contextlib.suppress(Exception):
            await _bounded(flush(runtime, state), SHUTDOWN_FLUSH_SECONDS)
        raise


@health_check("logs")
async def _logs_health(runtime: Runtime) -> ComponentStatus | None:
    state = writer_state(runtime)
    if state is None:
        return None
    state.note_drops()
    details = {
        "buffered": len(state.sink.buffer),
        "capacity": state.sink.capacity,
        "written": state.written,
        "dropped": state.sink.dropped,
    }
    recent = state.last_drop_at is not None and time.monotonic() - state.last_drop_at < DROP_DEGRADED_SECONDS
    if state.failing_since is not None:
        reason = f"log records cannot be written to Redis ({state.last_error}); {state.sink.dropped} dropped so far"
        return ComponentStatus(name="logs", status="degraded", reason=reason, details=details)
    if recent:
        reason = f"{state.sink.dropped} log records dropped in this process (Redis slow or down, or buffer full)"
        return ComponentStatus(name="logs", status="degraded", reason=reason, details=details)
    return ComponentStatus(name="logs", status="healthy", details=details)


def _request_finished(cap: Capability, call: Call, outcome: str, status: int, seconds: float) -> None:
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    fields: dict[str, Any] = {
        "request_id": call.request_id,
        "capability": cap.name,
        "surface": call.surface,
        "principal": call.principal.name,
        "outcome": outcome,
        "status": status,
        "duration_ms": round(seconds * 1000.0, 3),
    }
    service = service_for_surface(call.surface)
    if service is not None:
        fields["service"] = service
    logger.log(level, "request_finished", extra=fields)


@on_runtime_start
def _observe_requests(runtime: Runtime) -> None:
    if _request_finished not in runtime.observers:
        runtime.observers.append(_request_finished)


@pre_auth_guard
async def _service_of_port(runtime: Runtime, info: RequestInfo) -> None:
    # In `prism up` one process serves several ports: what a request logs belongs to the port it came in on.
    current_service.set(info.port)


@auth_failure_hook
async def _request_refused(runtime: Runtime, info: RequestInfo, error: PrismError) -> None:
    # A refused key never reaches the invocation path, so its one summary line is written here.
    fields = {
        "service": info.port,
        "method": info.method,
        "path": info.path,
        "client_ip": info.client_ip,
        "outcome": error.code,
        "status": error.status,
    }
    logger.warning("request_finished", extra=fields)
