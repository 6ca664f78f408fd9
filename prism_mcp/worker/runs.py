"""The record of job runs in Redis: what is running now, the last run of each job, and a capped history.

Every attempt of every run is one :class:`JobRun`. ``<prefix>worker:runs`` is a list, newest first, trimmed to
``PRISM_WORKER_HISTORY`` entries; ``<prefix>worker:last`` holds each job's latest attempt; and
``<prefix>worker:running`` the attempts in progress, by run id.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from prism_mcp.store.connection import Store

__all__ = [
    "JobRun",
    "RunStatus",
    "history",
    "last_runs",
    "process_id",
    "record_finished",
    "record_started",
    "running",
    "settle_lost_attempts",
]

RunStatus = Literal["running", "succeeded", "retrying", "failed"]


def process_id() -> str:
    """This process as the worker that ran a job: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


class JobRun(BaseModel):
    run_id: str = Field(description="The run's id; all attempts of one run share it.")
    job: str
    capability: str
    trigger: Literal["schedule", "manual"]
    tick: datetime | None = Field(default=None, description="The scheduled tick this run serves; null if manual.")
    attempt: int = Field(description="1 for the first attempt; retries count up.")
    max_attempts: int
    status: RunStatus
    outcome: str | None = Field(default=None, description="ok, or the error code of a failed attempt.")
    error: str | None = Field(default=None, description="The error message of a failed attempt.")
    started_at: datetime
    finished_at: datetime | None = None
    duration_ms: float | None = None
    worker: str = Field(description="The process that ran the attempt (host:pid).")


def _keys(store: Store) -> tuple[str, str, str]:
    return store.key("worker", "runs"), store.key("worker", "last"), store.key("worker", "running")


async def record_started(store: Store, run: JobRun) -> None:
    _, _, running_key = _keys(store)
    await store.redis.hset(running_key, f"{run.run_id}#{run.attempt}", run.model_dump_json())


async def record_finished(store: Store, run: JobRun, keep: int) -> None:
    """Move an attempt from running to the history and the job's last run, in one transaction."""
    runs_key, last_key, running_key = _keys(store)
    body = run.model_dump_json()
    async with store.redis.pipeline(transaction=True) as pipe:
        pipe.hdel(running_key, f"{run.run_id}#{run.attempt}")
        pipe.lpush(runs_key, body)
        pipe.ltrim(runs_key, 0, keep - 1)
        pipe.hset(last_key, run.job, body)
        await pipe.execute()


async def history(store: Store, limit: int, job: str | None = None) -> list[JobRun]:
    """Finished attempts, newest first; with ``job``, only that job's (searched within the kept history)."""
    runs_key, _, _ = _keys(store)
    if job is None:
        return [JobRun.model_validate_json(raw) for raw in await store.redis.lrange(runs_key, 0, limit - 1)]
    found = []
    for raw in await store.redis.lrange(runs_key, 0, -1):
        run = JobRun.model_validate_json(raw)
        if run.job == job:
            found.append(run)
            if len(found) == limit:
                break
    return found


async def last_runs(store: Store) -> dict[str, JobRun]:
    _, last_key, _ = _keys(store)
    raw: dict[str, str] = await store.redis.hgetall(last_key)
    return {job: JobRun.model_validate_json(body) for job, body in raw.items()}


async def running(store: Store) -> list[JobRun]:
    """Attempts recorded as running, oldest first (one whose worker died stays until the worker is forgotten)."""
    _, _, running_key = _keys(store)
    raw: dict[str, str] = await store.redis.hgetall(running_key)
    runs = [JobRun.model_validate_json(body) for body in raw.values()]
    return sorted(runs, key=lambda run: run.started_at)


async def settle_lost_attempts(store: Store, run: JobRun, keep: int) -> int:
    """Record earlier attempts of ``run`` still marked running as lost: their worker died mid-job.

    saq retries such a run once its worker stops touching it; the attempt that died never recorded its end.
    Returns how many were settled.
    """
    _, _, running_key = _keys(store)
    settled = 0
    for attempt in range(1, run.attempt):
        raw = await store.redis.hget(running_key, f"{run.run_id}#{attempt}")
        if raw is None:
            continue
        lost = JobRun.model_validate_json(raw)
        lost.status, lost.outcome, lost.finished_at = "retrying", "worker_lost", run.started_at
        lost.error = f"worker {lost.worker} stopped during this attempt without finishing it"
        await record_finished(store, lost, keep)
        settled += 1
    return settled
