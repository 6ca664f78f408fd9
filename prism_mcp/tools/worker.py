"""Worker: the scheduled jobs (``/worker/jobs``, ``/worker/runs``) and backups (``/backups``).

The worker itself (saq, the tick scheduler, heartbeats) lives in :mod:`prism_mcp.worker`; these capabilities
show and steer it from any surface. Restoring a backup is deliberately not a capability: it replaces live
state wholesale, so it is ``prism restore FILE`` on the machine, with a confirmation.
"""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field
from redis.exceptions import ResponseError

from prism_mcp.capability import Call, Scope, capability, registry
from prism_mcp.config import ConfigError
from prism_mcp.errors import ForbiddenError, InvalidInputError, NotFoundError, PrismError
from prism_mcp.runtime import Runtime, dashboard_section
from prism_mcp.store.connection import CONNECTION_ERRORS, redis_errors
from prism_mcp.worker import heartbeat as _heartbeat
from prism_mcp.worker.backup import (
    Listed,
    apply_retention,
    backup_dir,
    copy_rdb,
    list_backups,
    rdb_path_for,
    write_backup,
)
from prism_mcp.worker.queue import open_queue
from prism_mcp.worker.runs import JobRun, history, last_runs, running
from prism_mcp.worker.schedule import JobSpec, load_schedule, next_tick
from prism_mcp.worker.service import enqueue_run

__all__ = ["BackupInfo", "BackupList", "JobInfo", "JobList", "RunList", "RunQueued"]

logger = logging.getLogger(__name__)

JobName = Annotated[
    str, Field(description="A job name, as listed by worker_jobs (e.g. backup).", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
]


class JobInfo(BaseModel):
    name: str
    capability: str
    arguments: dict[str, object]
    schedule: str | None = Field(description="The cron (UTC; six fields means seconds last); null: by hand only.")
    scheduled: bool = Field(description="Whether the worker runs it on its schedule.")
    not_scheduled_reason: str | None = None
    next_run: datetime | None
    last_run: JobRun | None = Field(description="The latest finished attempt: outcome, duration, error.")
    running: list[JobRun] = Field(description="Attempts in progress now.")


class JobList(BaseModel):
    jobs: list[JobInfo]
    workers_alive: int = Field(description="Worker processes with a fresh heartbeat.")


class RunQueued(BaseModel):
    run_id: str = Field(description="Find this run in worker_runs once a worker has taken it.")
    job: str
    capability: str
    queued_at: datetime
    workers_alive: int = Field(description="0 means no worker is running: the run waits until one starts.")


class RunList(BaseModel):
    runs: list[JobRun] = Field(description="Finished attempts, newest first.")
    running: list[JobRun] = Field(description="Attempts in progress.")


def _schedule(call: Call) -> list[JobSpec]:
    try:
        return load_schedule(call.runtime.settings)
    except ConfigError as exc:
        raise PrismError(exc.message) from exc


def _reason(job: JobSpec) -> str | None:
    if registry.get(job.capability) is None:
        return f"capability {job.capability} is not in this PRISM build"
    return None if job.cron else "no cron: runs only by hand (worker_run_job)"


async def _workers_alive(call: Call) -> int:
    return await _alive(call.runtime)


async def _alive(runtime: Runtime) -> int:
    beats = await _heartbeat.read_beats(runtime.store)
    return len(_heartbeat.live_processes(beats, "worker", time.time()))


@dashboard_section("worker")
async def worker_dashboard(runtime: Runtime) -> dict[str, object]:
    """Workers alive and each job's last outcome, for the monitoring dashboard (two Redis reads)."""
    try:
        last = await last_runs(runtime.store)
        alive = await _alive(runtime)
    except CONNECTION_ERRORS:
        return {"error": "Redis connection failed"}
    jobs = {
        name: {"status": run.status, "finished_at": run.finished_at, "error": run.error} for name, run in last.items()
    }
    return {"workers_alive": alive, "last_runs": jobs}


@capability("GET /worker/jobs", scope=Scope.READ, read_only=True)
async def worker_jobs(call: Call) -> JobList:
    """Every worker job: its capability and arguments, its cron, next run, last run (outcome, duration, error).

    A job whose capability is not in this PRISM build is listed with `scheduled: false` and the reason. Times
    are UTC. Change the schedule with PRISM_WORKER_JOBS; run a job now with worker_run_job.
    """
    jobs = _schedule(call)
    now = time.time()
    async with redis_errors():
        last = await last_runs(call.runtime.store)
        active = await running(call.runtime.store)
        alive = await _workers_alive(call)
    infos = []
    for job in jobs:
        reason = _reason(job)
        infos.append(
            JobInfo(
                name=job.name,
                capability=job.capability,
                arguments=job.arguments,
                schedule=job.cron,
                scheduled=reason is None,
                not_scheduled_reason=reason,
                next_run=datetime.fromtimestamp(next_tick(job.cron, now), UTC) if job.cron and not reason else None,
                last_run=last.get(job.name),
                running=[run for run in active if run.job == job.name],
            )
        )
    return JobList(jobs=infos, workers_alive=alive)


@capability("POST /worker/jobs/run", scope=Scope.OPERATE, idempotent=False)
async def worker_run_job(call: Call, job: JobName) -> RunQueued:
    """Run one worker job now, by name, outside its schedule; answers at once with the run's id.

    The run goes through the same queue as scheduled runs (retried on failure, recorded in worker_runs). The
    caller's key must hold the scope the job's capability needs. Unknown names are refused with the list.
    """
    jobs = {spec.name: spec for spec in _schedule(call)}
    spec = jobs.get(job)
    if spec is None:
        raise NotFoundError(f"no worker job {job!r}; known jobs: {', '.join(jobs) or 'none'}")
    cap = registry.get(spec.capability)
    if cap is None:
        raise InvalidInputError("job", f"{job} calls {spec.capability}, which is not in this PRISM build")
    if not call.principal.allows(cap.scope):
        raise ForbiddenError(f"job {job} calls {cap.name}, which needs the {cap.scope.value} scope", needed=cap.scope)
    queue, queued_at = open_queue(call.runtime.store), datetime.now(UTC)
    try:
        async with redis_errors():
            await queue.connect()
            run_id = await enqueue_run(queue, call.runtime.settings, spec)
            alive = await _workers_alive(call)
    finally:
        with contextlib.suppress(Exception):
            await queue.disconnect()
    logger.info("job_queued", extra={"job": job, "run_id": run_id, "principal": call.principal.name})
    return RunQueued(run_id=run_id, job=job, capability=spec.capability, queued_at=queued_at, workers_alive=alive)


@capability("GET /worker/runs", scope=Scope.READ, read_only=True)
async def worker_runs(
    call: Call,
    limit: Annotated[int, Field(ge=1, le=1000, description="How many finished attempts to return, newest first.")] = 50,
    job: Annotated[str | None, Field(description="Only this job's runs.", pattern=r"^[A-Za-z0-9_.-]{1,64}$")] = None,
) -> RunList:
    """The history of job runs, newest first: each attempt's outcome, duration, error and worker.

    A failed attempt that will be retried has status `retrying`; the last failed attempt `failed`. History is
    capped at PRISM_WORKER_HISTORY attempts.
    """
    async with redis_errors():
        runs = await history(call.runtime.store, limit, job)
        active = await running(call.runtime.store)
    return RunList(runs=runs, running=[run for run in active if job is None or run.job == job])


class BackupInfo(BaseModel):
    name: str = Field(description="The file name under PRISM_DATA_DIR/backups.")
    path: str
    created_at: datetime | None
    keys: int | None = Field(description="How many PRISM keys the backup holds.")
    size_bytes: int
    sha256: str | None = Field(description="From the .sha256 file beside it (sha256sum -c checks it).")
    rdb_file: str | None = Field(description="The embedded Valkey's RDB copied beside it, if any.")


class BackupCreated(BackupInfo):
    seconds: float
    removed: list[str] = Field(description="Older backups deleted to keep PRISM_BACKUP_KEEP.")
    notes: list[str] = Field(description="Anything that did not go as planned, such as an RDB copy that failed.")


class BackupList(BaseModel):
    backups: list[BackupInfo] = Field(description="Newest first.")
    directory: str
    keep: int = Field(description="PRISM_BACKUP_KEEP: how many are kept.")


def _info(listed: Listed) -> BackupInfo:
    return BackupInfo(
        name=listed.path.name,
        path=str(listed.path),
        created_at=listed.created_at,
        keys=listed.keys,
        size_bytes=listed.size_bytes,
        sha256=listed.sha256,
        rdb_file=listed.rdb.name if listed.rdb else None,
    )


def _embedded_rdb(call: Call) -> Path | None:
    runtime = call.runtime
    embedded = runtime.state.get("embedded")
    if embedded is not None:
        return Path(embedded.rdb_path)
    if runtime.state.get("redis_origin") == "shared-embedded":
        return runtime.settings.data_path / "valkey" / "dump.rdb"
    return None


@capability("POST /backups", scope=Scope.OPERATE, long_running=True, idempotent=False)
async def backup_create(call: Call) -> BackupCreated:
    """Back up every PRISM key to a checksummed file under PRISM_DATA_DIR/backups, now; reports progress.

    The file keeps each key's type, value and remaining TTL and restores into any Redis or Valkey with
    `prism restore FILE`. With the embedded Valkey the RDB file is also saved (BGSAVE) and copied beside it.
    Only the newest PRISM_BACKUP_KEEP backups are kept.
    """
    runtime, started = call.runtime, time.perf_counter()
    directory = backup_dir(runtime.settings.data_path)
    await call.report(0, None, "reading keys")

    async def progress(done: int, total: int) -> None:
        await call.report(done, total, f"{done}/{total} keys")

    async with redis_errors():
        written = await write_backup(runtime.store, directory, progress)
        notes = await _copy_rdb(call, rdb_path_for(written.path))
    removed = apply_retention(directory, runtime.settings.backup_keep)
    listed = next(item for item in list_backups(directory) if item.path == written.path)
    logger.info("backup_written", extra={"file": written.path.name, "keys": written.keys, "removed": removed})
    return BackupCreated(
        **_info(listed).model_dump(), seconds=round(time.perf_counter() - started, 3), removed=removed, notes=notes
    )


async def _copy_rdb(call: Call, target: Path) -> list[str]:
    source = _embedded_rdb(call)
    if source is None:
        return []
    await call.report(1, 1, "saving the RDB file (BGSAVE)")
    try:
        await copy_rdb(call.runtime.store, source, target, call.runtime.settings.backup_rdb_timeout)
    except (TimeoutError, OSError, ResponseError) as exc:
        logger.warning("rdb_copy_failed", extra={"error": str(exc)})
        return [f"RDB copy failed: {exc}; the logical backup is complete"]
    return []


@capability("GET /backups", scope=Scope.READ, read_only=True)
async def backup_list(call: Call) -> BackupList:
    """The backups kept under PRISM_DATA_DIR/backups, newest first, with key count, size, sha256 and RDB file.

    Restore one on the PRISM machine with `prism restore PATH` (it verifies the checksum first).
    """
    directory = backup_dir(call.runtime.settings.data_path)
    return BackupList(
        backups=[_info(listed) for listed in list_backups(directory)],
        directory=str(directory),
        keep=call.runtime.settings.backup_keep,
    )
