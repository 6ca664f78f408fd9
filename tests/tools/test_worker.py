"""The worker's capabilities over REST: jobs, runs, running a job now, backups."""

from __future__ import annotations

import json

import httpx
import pytest

from prism_mcp.capability import registry
from prism_mcp.config import Settings
from prism_mcp.runtime import Runtime
from prism_mcp.worker.queue import open_queue
from prism_mcp.worker.schedule import DEFAULT_JOBS
from tests.conftest import OPERATOR_KEY, READ_KEY


async def test_worker_jobs_lists_the_default_schedule_and_skips_absent_capabilities(api: httpx.AsyncClient) -> None:
    body = (await api.get("/worker/jobs")).json()["data"]
    jobs = {job["name"]: job for job in body["jobs"]}

    assert list(jobs) == [job.name for job in DEFAULT_JOBS]
    assert jobs["logs_archive"]["arguments"] == {"days_old": 7}
    assert jobs["logs_cleanup"]["arguments"] == {"days_old": 30}
    for job in jobs.values():
        present = registry.get(job["capability"]) is not None
        assert job["scheduled"] is present
        assert (job["next_run"] is not None) is present
        assert (job["not_scheduled_reason"] is None) is present
    assert body["workers_alive"] == 0


@pytest.fixture
def with_probe_job(runtime: Runtime, settings: Settings) -> Settings:
    jobs = {"probe": {"capability": "monitoring_health", "cron": None}, "backup": {"cron": "15 3 * * *"}}
    runtime.settings = settings.model_copy(update={"worker_jobs": json.dumps(jobs)})
    return runtime.settings


async def test_prism_worker_jobs_setting_adds_and_reschedules_jobs(
    api: httpx.AsyncClient, with_probe_job: Settings
) -> None:
    jobs = {job["name"]: job for job in (await api.get("/worker/jobs")).json()["data"]["jobs"]}

    assert jobs["backup"]["schedule"] == "15 3 * * *"
    assert jobs["probe"]["scheduled"] is False
    assert "runs only by hand" in jobs["probe"]["not_scheduled_reason"]


async def test_run_job_queues_a_run_and_answers_with_its_id(
    api: httpx.AsyncClient, runtime: Runtime, with_probe_job: Settings
) -> None:
    response = await api.post("/worker/jobs/run", params={"job": "probe"})
    data = response.json()["data"]

    queue = open_queue(runtime.store)
    try:
        await queue.connect()
        queued = await queue.job(data["run_id"])
    finally:
        await queue.disconnect()
    assert response.status_code == 200
    assert data["run_id"].startswith("probe@m")
    assert data["workers_alive"] == 0
    assert queued is not None
    assert queued.kwargs == {"job": "probe", "capability": "monitoring_health", "arguments": {}, "tick": None}


async def test_run_job_refuses_an_unknown_job_with_the_known_names(api: httpx.AsyncClient) -> None:
    response = await api.post("/worker/jobs/run", json={"job": "no_such_job"})
    error = response.json()["error"]
    assert response.status_code == 404
    assert "no worker job 'no_such_job'" in error["message"]
    assert "backup" in error["message"]


async def test_run_job_needs_the_operate_scope(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url) as client:
        denied = await client.post("/worker/jobs/run?job=backup", headers={"Authorization": f"Bearer {READ_KEY}"})
    assert denied.status_code == 403


@pytest.mark.parametrize("limit", [0, 1001, "many"])
async def test_worker_runs_limit_outside_1_to_1000_is_a_422_naming_limit(api: httpx.AsyncClient, limit: object) -> None:
    response = await api.get("/worker/runs", params={"limit": limit})
    assert response.status_code == 422
    assert response.json()["error"]["details"]["field"] == "limit"


async def test_backups_over_rest_create_then_list(api_url: str, runtime: Runtime) -> None:
    await runtime.store.redis.hset(runtime.store.key("demo"), mapping={"a": "1"})
    headers = {"Authorization": f"Bearer {OPERATOR_KEY}"}
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=30) as client:
        created = (await client.post("/backups")).json()["data"]
        listing = (await client.get("/backups")).json()["data"]

    assert created["keys"] >= 1
    assert created["rdb_file"] is None
    assert [b["name"] for b in listing["backups"]] == [created["name"]]
    assert listing["keep"] == 7


async def test_backup_create_is_an_mcp_tool_returning_the_backup(mcp_url: str, runtime: Runtime) -> None:
    from tests.conftest import ADMIN_KEY
    from tests.mcp_client import mcp_client

    await runtime.store.redis.set(runtime.store.key("demo"), "1")

    async with mcp_client(mcp_url, ADMIN_KEY) as client:
        result = await client.call_tool("backup_create", {})

    assert not result.is_error
    assert result.structured_content is not None
    assert result.structured_content["keys"] >= 1
    assert result.structured_content["name"].startswith("prism-")


async def test_the_dashboard_section_shows_each_jobs_last_outcome(runtime: Runtime) -> None:
    from datetime import UTC, datetime

    from prism_mcp.tools.worker import worker_dashboard
    from prism_mcp.worker.runs import JobRun, record_finished

    now = datetime.now(UTC)
    failed = JobRun(
        run_id="backup@1",
        job="backup",
        capability="backup_create",
        trigger="manual",
        attempt=3,
        max_attempts=3,
        status="failed",
        outcome="internal_error",
        error="disk full",
        started_at=now,
        finished_at=now,
        worker="h:1",
    )
    await record_finished(runtime.store, failed, keep=10)

    section = await worker_dashboard(runtime)

    assert section["workers_alive"] == 0
    assert section["last_runs"] == {"backup": {"status": "failed", "finished_at": now, "error": "disk full"}}
