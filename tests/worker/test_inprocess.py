"""The worker inside a runtime (as `prism up` runs it): jobs go through invoke as `worker` and are audited."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest

from prism_mcp.config import Settings
from prism_mcp.runtime import Runtime
from prism_mcp.store import Store
from prism_mcp.worker.runs import JobRun, history


@pytest.fixture
async def worker_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    jobs = {"backup": {"capability": "backup_create", "cron": "* * * * * *"}}
    configured = settings.model_copy(
        update={"worker_jobs": json.dumps(jobs), "worker_default_jobs": False, "worker_poll_interval": 0.1}
    )
    assert configured.redis_url is not None
    store = Store(configured.redis_url, prefix=configured.key_prefix)
    runtime = Runtime(configured, store, services=frozenset({"worker"}))
    await runtime.start()
    yield runtime
    keys = [key async for key in store.redis.scan_iter(match=store.prefix + "*")]
    if keys:
        await store.redis.unlink(*keys)
    await runtime.stop()


async def _first_run(runtime: Runtime) -> JobRun:
    deadline = time.monotonic() + 20
    while not (runs := await history(runtime.store, 10, "backup")):
        assert time.monotonic() < deadline, "no backup run within 20 s"
        await asyncio.sleep(0.1)
    return runs[-1]


async def test_a_scheduled_job_is_audited_as_the_worker_principal(worker_runtime: Runtime) -> None:
    run = await _first_run(worker_runtime)
    audit = await worker_runtime.store.redis.xrange(worker_runtime.store.key("audit"))
    events = [fields for _, fields in audit if fields["request_id"] == run.run_id]

    assert run.status == "succeeded"
    assert run.trigger == "schedule"
    assert [(e["capability"], e["principal"], e["surface"], e["outcome"]) for e in events] == [
        ("backup_create", "worker", "worker", "ok")
    ]
    assert list((worker_runtime.settings.data_path / "backups").glob("prism-*.jsonl.gz"))


@pytest.fixture
async def probe_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    jobs = {"probe": {"capability": "health_detailed", "cron": None}}
    configured = settings.model_copy(update={"worker_jobs": json.dumps(jobs), "worker_default_jobs": False})
    store = Store(configured.redis_url or "", prefix=configured.key_prefix)
    runtime = Runtime(configured, store, services=frozenset({"worker"}))
    await runtime.start()
    yield runtime
    keys = [key async for key in store.redis.scan_iter(match=store.prefix + "*")]
    if keys:
        await store.redis.unlink(*keys)
    await runtime.stop()


async def test_a_run_delivered_again_after_it_succeeded_is_skipped_not_run_twice(probe_runtime: Runtime) -> None:
    from prism_mcp.worker.queue import open_queue
    from prism_mcp.worker.schedule import JobSpec
    from prism_mcp.worker.service import enqueue_run

    spec = JobSpec("probe", "health_detailed", None)
    queue = open_queue(probe_runtime.store)
    await queue.connect()
    try:
        run_id = await enqueue_run(queue, probe_runtime.settings, spec, tick=1_000_000.0)
        first = await _wait_for_result(queue, run_id, "result")
        # saq accepts the same key again once the run has finished, as a late replica's enqueue would be.
        await enqueue_run(queue, probe_runtime.settings, spec, tick=1_000_000.0)
        second = await _wait_for_result(queue, run_id, "skipped")
    finally:
        await queue.disconnect()

    runs = await history(probe_runtime.store, 10, "probe")
    assert first["run_id"] == second["run_id"] == run_id
    assert [(r.run_id, r.attempt, r.status) for r in runs] == [(run_id, 1, "succeeded")]


async def _wait_for_result(queue: object, run_id: str, field: str) -> dict[str, object]:
    deadline = time.monotonic() + 20
    while True:
        job = await queue.job(run_id)  # type: ignore[attr-defined]
        if job is not None and job.status == "complete" and isinstance(job.result, dict) and field in job.result:
            return job.result
        assert time.monotonic() < deadline, f"run {run_id} never completed with {field!r}: {job!r}"
        await asyncio.sleep(0.05)
