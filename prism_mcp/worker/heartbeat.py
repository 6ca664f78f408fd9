"""Heartbeats of worker and notifier processes, and the health component that reads them.

Each process running the worker or the notifier writes ``<prefix>heartbeat:<service>:<host:pid>`` every
``PRISM_HEARTBEAT_INTERVAL`` seconds, with a TTL of :data:`TTL_INTERVALS` intervals, and records the beat in
``<prefix>heartbeat:known``. The ``heartbeats`` component is degraded when a known process's beat is older than
:data:`STALE_INTERVALS` intervals (stalled) or its key has expired (gone without stopping). A process that stops
cleanly removes both, and a service never seen is not reported at all, so ``prism serve api`` alone stays healthy.
A vanished process is forgotten after ``PRISM_HEARTBEAT_FORGET`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from prism_mcp.runtime import ComponentStatus, Runtime, background_task, health_check
from prism_mcp.store.connection import CONNECTION_ERRORS, Store
from prism_mcp.worker.runs import process_id

__all__ = ["HEARTBEAT_SERVICES", "STALE_INTERVALS", "TTL_INTERVALS", "Beat", "live_processes", "read_beats"]

logger = logging.getLogger(__name__)

HEARTBEAT_SERVICES = ("worker", "notifier")
STALE_INTERVALS = 3
TTL_INTERVALS = 12


def _key(store: Store, service: str, process: str) -> str:
    return store.key("heartbeat", service, process)


def _known_key(store: Store) -> str:
    return store.key("heartbeat", "known")


async def beat(runtime: Runtime, services: list[str], process: str) -> None:
    """Write this process's heartbeat for each of ``services``."""
    store, interval = runtime.store, runtime.settings.heartbeat_interval
    now = time.time()
    ttl_ms = int(interval * TTL_INTERVALS * 1000)
    async with store.redis.pipeline(transaction=False) as pipe:
        for service in services:
            body = {"pid": os.getpid(), "started_at": runtime.started_at.isoformat(), "beat_at": now}
            body["interval"] = interval
            pipe.set(_key(store, service, process), json.dumps(body), px=ttl_ms)
            pipe.hset(_known_key(store), f"{service}|{process}", json.dumps({"beat_at": now, "interval": interval}))
        await pipe.execute()


async def _farewell(store: Store, services: list[str], process: str) -> None:
    with contextlib.suppress(*CONNECTION_ERRORS):
        await store.redis.delete(*(_key(store, service, process) for service in services))
        await store.redis.hdel(_known_key(store), *(f"{service}|{process}" for service in services))


@background_task("heartbeat", services=HEARTBEAT_SERVICES)
async def run_heartbeat(runtime: Runtime) -> None:
    """Beat every interval for the life of the process; on a clean stop, say goodbye."""
    services = sorted(set(HEARTBEAT_SERVICES) & runtime.services)
    process = process_id()
    try:
        while True:
            try:
                await beat(runtime, services, process)
            except CONNECTION_ERRORS:
                logger.warning("heartbeat_failed", extra={"services": services, "worker": process})
            await asyncio.sleep(runtime.settings.heartbeat_interval)
    finally:
        await asyncio.shield(_farewell(runtime.store, services, process))


@dataclass(frozen=True, slots=True)
class Beat:
    service: str
    process: str
    beat_at: float
    interval: float
    alive: bool

    def age(self, now: float) -> float:
        return max(0.0, now - self.beat_at)


async def read_beats(store: Store) -> list[Beat]:
    """Every known process's last beat, and whether its heartbeat key is still present."""
    known: dict[str, str] = await store.redis.hgetall(_known_key(store))
    entries = []
    for field, raw in sorted(known.items()):
        service, _, process = field.partition("|")
        data: dict[str, Any] = json.loads(raw)
        entries.append((service, process, float(data["beat_at"]), float(data["interval"])))
    async with store.redis.pipeline(transaction=False) as pipe:
        for service, process, _, _ in entries:
            pipe.exists(_key(store, service, process))
        present = await pipe.execute() if entries else []
    return [Beat(s, p, at, i, bool(alive)) for (s, p, at, i), alive in zip(entries, present, strict=True)]


def live_processes(beats: list[Beat], service: str, now: float) -> list[Beat]:
    return [b for b in beats if b.service == service and b.alive and b.age(now) <= STALE_INTERVALS * b.interval]


def _problem(beat: Beat, now: float) -> str | None:
    age = beat.age(now)
    if not beat.alive:
        return f"{beat.service} {beat.process} missing: last heartbeat {age:.0f} s ago, it did not stop cleanly"
    if age > STALE_INTERVALS * beat.interval:
        return (
            f"{beat.service} {beat.process} stale: last heartbeat {age:.1f} s ago (expected every {beat.interval:g} s)"
        )
    return None


async def _prune(store: Store, beats: list[Beat], forget: float, now: float) -> list[Beat]:
    old = [b for b in beats if not b.alive and b.age(now) > forget]
    if old:
        await store.redis.hdel(_known_key(store), *(f"{b.service}|{b.process}" for b in old))
    return [b for b in beats if b not in old]


@health_check("heartbeats")
async def heartbeats_health(runtime: Runtime) -> ComponentStatus | None:
    """Each worker and notifier process with its last beat; degraded with the reason when one is stale or gone."""
    try:
        beats = await read_beats(runtime.store)
        now = time.time()
        beats = await _prune(runtime.store, beats, runtime.settings.heartbeat_forget, now)
    except CONNECTION_ERRORS:
        return ComponentStatus(name="heartbeats", status="unhealthy", reason="Redis connection failed")
    if not beats:
        return None
    problems = [p for b in beats if (p := _problem(b, now))]
    details = {
        service: [
            {"process": b.process, "last_beat_seconds_ago": round(b.age(now), 2), "state": _state(b, now)}
            for b in beats
            if b.service == service
        ]
        for service in HEARTBEAT_SERVICES
    }
    status = "degraded" if problems else "healthy"
    return ComponentStatus(name="heartbeats", status=status, reason="; ".join(problems) or None, details=details)


def _state(beat: Beat, now: float) -> str:
    if not beat.alive:
        return "missing"
    return "stale" if beat.age(now) > STALE_INTERVALS * beat.interval else "alive"
