"""PRISM-WORKER: the scheduled jobs, run by saq on PRISM's Redis, once per tick however many workers run.

Every worker process runs a small scheduler and a saq worker. The scheduler looks at each job's cron every
``PRISM_WORKER_POLL_INTERVAL`` seconds; for a tick that is due it first claims the tick with ``SET NX`` on
``<prefix>worker:tick:<job>:<tick>``, and only the process that wins the claim enqueues the run. saq's own cron
support is not used because its uniqueness holds only while a job is still queued: a replica whose enqueue
arrives after the tick's run has finished would run the tick a second time.

Any worker then takes the run from the queue and calls the job's capability through
:func:`prism_mcp.capability.invoke` as the principal ``worker`` (surface ``worker``), so it is scoped, validated
and audited like any caller. A failed attempt is recorded and retried by saq with exponential backoff
(``PRISM_WORKER_RETRIES`` attempts in all). While an attempt runs it touches its saq job; a worker that dies
mid-job stops touching it, and another worker's sweep retries the run after ``PRISM_WORKER_JOB_HEARTBEAT``
seconds. saq delivers a run at least once (its sweep can also race a worker that has just taken a run), so
each attempt holds a per-run lock and a run that has succeeded is never run again (:class:`_RunGuard`).
Nothing a job raises reaches the worker loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from saq import Worker
from saq.types import Context, PartialTimersDict

from prism_mcp.capability import Principal, Scope, invoke, registry
from prism_mcp.config import Settings
from prism_mcp.errors import PrismError
from prism_mcp.runtime import Runtime, background_task
from prism_mcp.store.connection import CONNECTION_ERRORS, Store
from prism_mcp.worker.queue import PrismQueue, open_queue
from prism_mcp.worker.runs import JobRun, process_id, record_finished, record_started, settle_lost_attempts
from prism_mcp.worker.schedule import JobSpec, load_schedule, ticks_between

__all__ = ["JOB_FUNCTION", "WORKER", "enqueue_run", "scheduled_jobs"]

logger = logging.getLogger(__name__)

WORKER = Principal("worker", Scope.ADMIN, "worker")
JOB_FUNCTION = "prism_job"
# A tick is claimed only while it is younger than this; claims live twice as long, so a late replica can
# never claim a tick again after its claim has expired.
CLAIM_GRACE = 60.0
SHUTDOWN_GRACE = 2
DONE_TTL = 86_400


def scheduled_jobs(settings: Settings) -> list[JobSpec]:
    """The jobs with a cron whose capability is in this build; a job whose area has not landed is skipped."""
    return [job for job in load_schedule(settings) if job.cron and registry.get(job.capability)]


def _attempts(settings: Settings, job: JobSpec) -> int:
    return job.retries or settings.worker_retries


async def enqueue_run(queue: PrismQueue, settings: Settings, job: JobSpec, *, tick: float | None = None) -> str:
    """Put one run of ``job`` on the queue, now; returns its run id."""
    run_id = f"{job.name}@{int(tick)}" if tick is not None else f"{job.name}@m{uuid.uuid4().hex[:12]}"
    await queue.enqueue(
        JOB_FUNCTION,
        key=run_id,
        timeout=job.timeout or settings.worker_job_timeout,
        heartbeat=settings.worker_job_heartbeat,
        retries=_attempts(settings, job),
        retry_delay=settings.worker_retry_delay,
        retry_backoff=settings.worker_retry_max_delay,
        ttl=3600,
        job=job.name,
        capability=job.capability,
        arguments=job.arguments,
        tick=tick,
    )
    return run_id


class TickScheduler:
    """Claims each due tick of each job once across all workers and enqueues its run."""

    def __init__(self, runtime: Runtime, queue: PrismQueue, jobs: list[JobSpec]) -> None:
        self.runtime = runtime
        self.queue = queue
        self.jobs = jobs
        self.seen: dict[str, float] = {}

    async def run(self) -> None:
        interval = self.runtime.settings.worker_poll_interval
        while True:
            for job in self.jobs:
                try:
                    await self._catch_up(job, time.time())
                except CONNECTION_ERRORS:
                    logger.warning("tick_claim_failed", extra={"job": job.name})
            await asyncio.sleep(interval)

    async def _catch_up(self, job: JobSpec, now: float) -> None:
        # A process starting up takes ticks from now on; ticks missed while no worker ran are not replayed.
        first = now - 2 * self.runtime.settings.worker_poll_interval
        since = max(self.seen.get(job.name, first), now - CLAIM_GRACE)
        for tick in ticks_between(job.cron or "", since, now):
            if await self._claim(job, tick):
                await self._enqueue(job, tick)
            self.seen[job.name] = tick

    def _claim_key(self, job: JobSpec, tick: float) -> str:
        return self.runtime.store.key("worker", "tick", job.name, int(tick))

    async def _claim(self, job: JobSpec, tick: float) -> bool:
        claimed = await self.runtime.store.redis.set(
            self._claim_key(job, tick), process_id(), nx=True, ex=int(CLAIM_GRACE * 2)
        )
        return bool(claimed)

    async def _enqueue(self, job: JobSpec, tick: float) -> None:
        try:
            await enqueue_run(self.queue, self.runtime.settings, job, tick=tick)
        except CONNECTION_ERRORS:
            # Give the tick back, so that this or another worker can claim it again once Redis answers.
            with contextlib.suppress(*CONNECTION_ERRORS):
                await self.runtime.store.redis.delete(self._claim_key(job, tick))
            raise
        logger.info("tick_enqueued", extra={"job": job.name, "tick": tick})


class JobContext(Context, total=False):
    runtime: Runtime


async def _touch_while_running(saq_job: Any, store: Store, lock: str, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        with contextlib.suppress(*CONNECTION_ERRORS):
            await saq_job.update()
            await store.redis.pexpire(lock, int(every * 3000))


class _RunGuard:
    """At most one attempt of a run at a time, and none after one succeeded.

    saq delivers a run at least once: its sweep can put a run back on the queue while a worker has just taken
    it, and it retries a run whose worker went quiet. An attempt first takes ``worker:lock:<run>`` (kept alive
    while it runs, expiring soon after its worker dies) and skips quietly if another attempt holds it or
    ``worker:done:<run>`` says the run already succeeded.
    """

    def __init__(self, store: Store, run: JobRun, heartbeat: float) -> None:
        self.store = store
        self.lock = store.key("worker", "lock", run.run_id)
        self.done = store.key("worker", "done", run.run_id)
        self.owner = f"{run.worker}#{run.attempt}"
        self.ttl_ms = int(heartbeat * 1000)

    async def acquire(self) -> bool:
        if await self.store.redis.exists(self.done):
            return False
        return bool(await self.store.redis.set(self.lock, self.owner, nx=True, px=self.ttl_ms))

    async def release(self, succeeded: bool) -> None:
        with contextlib.suppress(*CONNECTION_ERRORS):
            if succeeded:
                await self.store.redis.set(self.done, self.owner, ex=DONE_TTL)
            if await self.store.redis.get(self.lock) == self.owner:
                await self.store.redis.delete(self.lock)


def _new_run(saq_job: Any, job: str, capability: str, tick: float | None) -> JobRun:
    return JobRun(
        run_id=saq_job.key,
        job=job,
        capability=capability,
        trigger="manual" if tick is None else "schedule",
        tick=None if tick is None else datetime.fromtimestamp(tick, UTC),
        attempt=saq_job.attempts,
        max_attempts=saq_job.retries,
        status="running",
        started_at=datetime.now(UTC),
        worker=process_id(),
    )


async def _finish(store: Store, run: JobRun, keep: int, started: float, error: BaseException | None) -> None:
    run.finished_at = datetime.now(UTC)
    run.duration_ms = round((time.perf_counter() - started) * 1000, 3)
    if error is None:
        run.status, run.outcome = "succeeded", "ok"
    else:
        run.status = "retrying" if run.attempt < run.max_attempts else "failed"
        run.outcome = error.code if isinstance(error, PrismError) else "internal_error"
        run.error = (error.message if isinstance(error, PrismError) else str(error) or type(error).__name__)[:2000]
    with contextlib.suppress(*CONNECTION_ERRORS):
        await record_finished(store, run, keep)
    fields = {"job": run.job, "run_id": run.run_id, "attempt": run.attempt, "status": run.status}
    logger.info("job_finished", extra=fields | {"outcome": run.outcome, "duration_ms": run.duration_ms})


async def run_job(
    ctx: JobContext, *, job: str, capability: str, arguments: dict[str, Any], tick: float | None
) -> dict[str, Any]:
    """saq's job function: one attempt of one run, recorded; raising makes saq retry or fail the run."""
    runtime: Runtime = ctx["runtime"]
    saq_job: Any = ctx["job"]
    run = _new_run(saq_job, job, capability, tick)
    heartbeat = runtime.settings.worker_job_heartbeat
    guard = _RunGuard(runtime.store, run, heartbeat)
    if not await guard.acquire():
        logger.info("job_duplicate_skipped", extra={"job": job, "run_id": run.run_id, "attempt": run.attempt})
        return {"run_id": run.run_id, "skipped": "another attempt of this run is running or has succeeded"}
    started = time.perf_counter()
    with contextlib.suppress(*CONNECTION_ERRORS):
        await settle_lost_attempts(runtime.store, run, runtime.settings.worker_history)
        await record_started(runtime.store, run)
    toucher = asyncio.create_task(_touch_while_running(saq_job, runtime.store, guard.lock, heartbeat / 3))
    succeeded = False
    try:
        cap = registry.get(capability)
        if cap is None:
            raise PrismError(f"capability {capability!r} is not in this PRISM build; the job cannot run here")
        result = await invoke(runtime, cap, WORKER, arguments, surface="worker", request_id=run.run_id)
        succeeded = True
    except asyncio.CancelledError:
        # saq timed the attempt out, or the worker is stopping; either way saq retries the run if it may.
        cancelled = PrismError("the attempt was cancelled: it ran past its timeout or its worker stopped")
        await _finish(runtime.store, run, runtime.settings.worker_history, started, cancelled)
        raise
    except Exception as exc:
        await _finish(runtime.store, run, runtime.settings.worker_history, started, exc)
        raise
    finally:
        toucher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await toucher
        await guard.release(succeeded)
    await _finish(runtime.store, run, runtime.settings.worker_history, started, None)
    return {"run_id": run.run_id, "result": result.model_dump(mode="json")}


def _saq_worker(runtime: Runtime, queue: PrismQueue) -> Worker[JobContext]:
    settings = runtime.settings
    sweep = max(1, settings.worker_job_heartbeat // 2)
    worker: Worker[JobContext] = Worker(
        queue,
        functions=[(JOB_FUNCTION, run_job)],
        id=process_id(),
        concurrency=settings.worker_concurrency,
        timers=PartialTimersDict(schedule=1, worker_info=10, sweep=sweep, abort=1),
        # Dequeue waits are bounded so that a stopping worker notices within a second. saq's upkeep loops
        # sleep through the whole grace period, so it is short: a run still going is cancelled and put back
        # on the queue for another worker, which keeps a stop quick and loses nothing.
        dequeue_timeout=1.0,
        shutdown_grace_period_s=SHUTDOWN_GRACE,
    )
    # saq would install its own SIGTERM/SIGINT handlers, replacing PRISM's: the process handles signals once.
    worker.SIGNALS = []
    worker.context["runtime"] = runtime
    return worker


@background_task("worker", services=("worker",))
async def run_worker(runtime: Runtime) -> None:
    """The saq worker and the tick scheduler, for the life of the process."""
    # saq logs every enqueue, dequeue and finish at INFO; PRISM logs one job_finished line per attempt itself.
    logging.getLogger("saq").setLevel(logging.WARNING)
    jobs = scheduled_jobs(runtime.settings)
    queue = open_queue(runtime.store)
    worker = _saq_worker(runtime, queue)
    logger.info("worker_started", extra={"jobs": [job.name for job in jobs], "worker": process_id()})
    try:
        await queue.connect()
        await asyncio.gather(worker.start(), TickScheduler(runtime, queue, jobs).run())
    finally:
        await worker.stop()
        with contextlib.suppress(*CONNECTION_ERRORS):
            await queue.disconnect()
