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
