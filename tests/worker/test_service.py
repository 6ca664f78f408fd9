"""Two real `prism worker` processes on one Redis: ticks run once, failures retry, a killed worker is survived.

The two processes are shared by the tests of this module (starting a PRISM process costs seconds on this
machine); the test that kills one of them comes last.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from prism_mcp.capability import invoke, registry
from prism_mcp.config import Settings, load_settings
from prism_mcp.runtime import Runtime
from prism_mcp.store import Store
from prism_mcp.worker.heartbeat import live_processes, read_beats
from prism_mcp.worker.queue import open_queue
from prism_mcp.worker.runs import JobRun, history, running
from prism_mcp.worker.schedule import JobSpec, ticks_between
from prism_mcp.worker.service import enqueue_run
from tests.conftest import ADMIN, ADMIN_KEY

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
JOBS = {
    "probe": {"capability": "health_detailed", "cron": "* * * * * *"},
    "broken": {"capability": "read_resource", "cron": "* * * * * */5", "arguments": {"uri": "prism://no/such/thing"}},
    "pause": {"capability": "slow_probe", "cron": None, "arguments": {"seconds": 6}},
}
T = TypeVar("T")


@dataclass
class Workers:
    settings: Settings
    env: dict[str, str]
    processes: list[subprocess.Popen[bytes]]


def _env(redis_url: str, data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "REDIS_URL": redis_url,
        "API_KEY": ADMIN_KEY,
        "PRISM_KEY_PREFIX": f"w{uuid.uuid4().hex[:10]}:",
        "PRISM_DATA_DIR": str(data_dir),
        "PRISM_WORKER_DEFAULT_JOBS": "false",
        "PRISM_WORKER_JOBS": json.dumps(JOBS),
        "PRISM_WORKER_RETRY_DELAY": "0.2",
        "PRISM_WORKER_RETRY_MAX_DELAY": "0.5",
        "PRISM_WORKER_JOB_HEARTBEAT": "2",
        "PRISM_WORKER_POLL_INTERVAL": "0.2",
        "PRISM_HEARTBEAT_INTERVAL": "0.5",
        "PRISM_SAMPLE_INTERVAL": "1",
        "PRISM_LOG_LEVEL": "WARNING",
    }


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    launcher = "import tests.worker.plugin; from prism_mcp.cli import main; main()"
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-c", launcher, "worker"], cwd=ROOT, env=env, stdout=out, stderr=out)


@pytest.fixture(scope="module")
def workers(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    data_dir = tmp_path_factory.mktemp("workers")
    env = _env(redis_url, data_dir)
    keys = {k: v for k, v in env.items() if k.startswith(("PRISM_", "REDIS_URL", "API_KEY"))}
    settings = load_settings(**keys)
    processes = [_start_worker(env, data_dir / f"worker{n}.log") for n in (1, 2)]
    yield Workers(settings, env, processes)
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture
async def store(workers: Workers) -> AsyncIterator[Store]:
    settings = workers.settings
    assert settings.redis_url is not None
    store = Store(settings.redis_url, prefix=settings.key_prefix, timeout=settings.redis_timeout)
    yield store
    await store.close()


async def eventually(probe: Callable[[], Awaitable[T | None]], seconds: float, what: str) -> T:
    """Poll ``probe`` until it returns something truthy, at most ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        found = await probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:g} s waiting for {what}")
        await asyncio.sleep(0.2)


async def _alive_workers(store: Store) -> list[str]:
    beats = await read_beats(store)
    return [beat.process for beat in live_processes(beats, "worker", time.time())]


async def _both_alive(store: Store) -> list[str] | None:
    alive = await _alive_workers(store)
    return alive if len(alive) == 2 else None


async def _runs(store: Store, job: str) -> list[JobRun]:
    return await history(store, 1000, job)


def _tick_of(run: JobRun) -> float:
    assert run.tick is not None
    return run.tick.timestamp()


async def test_two_workers_run_every_tick_exactly_once(workers: Workers, store: Store) -> None:
    await eventually(lambda: _both_alive(store), 60, "both workers' heartbeats")
    start = time.time() + 1
    end = start + 10
    expected = list(ticks_between("* * * * * *", start, end))

    async def window_done() -> list[JobRun] | None:
        runs = await _runs(store, "probe")
        return runs if {_tick_of(r) for r in runs} >= set(expected) else None

    runs = await eventually(window_done, 40, "a probe run for every tick of the window")
    in_window = [_tick_of(r) for r in runs if start < _tick_of(r) <= end]
    seen = [(r.run_id, r.attempt, r.status, r.worker) for r in runs]
    assert sorted(in_window) == expected, seen
    assert all(run.status == "succeeded" and run.attempt == 1 for run in runs), seen
    assert len({run.run_id for run in runs}) == len(runs)


async def test_a_failing_job_is_retried_and_recorded_while_other_jobs_run(workers: Workers, store: Store) -> None:
    async def failed_run() -> list[JobRun] | None:
        runs = await _runs(store, "broken")
        finals = [r for r in runs if r.status == "failed"]
        return [r for r in runs if r.run_id == finals[0].run_id] if finals else None

    attempts = sorted(await eventually(failed_run, 30, "a broken run to fail for good"), key=lambda r: r.attempt)
    assert [(r.attempt, r.status) for r in attempts] == [(1, "retrying"), (2, "retrying"), (3, "failed")]
    assert all(r.outcome == "not_found" and "prism://no/such/thing" in (r.error or "") for r in attempts)
    given_up = attempts[-1].finished_at
    assert given_up is not None

    async def probe_after_failure() -> list[JobRun] | None:
        return [r for r in await _runs(store, "probe") if r.started_at > given_up] or None

    await eventually(probe_after_failure, 15, "a probe run after the failure")
    assert len(await _alive_workers(store)) == 2


async def test_killing_a_worker_mid_job_leaves_the_other_running_the_next_ticks(workers: Workers, store: Store) -> None:
    await eventually(lambda: _both_alive(store), 30, "both workers' heartbeats")
    queue = open_queue(store)
    try:
        await queue.connect()
        run_id = await enqueue_run(queue, workers.settings, JobSpec("pause", "slow_probe", None, {"seconds": 6}))
    finally:
        await queue.disconnect()

    async def pause_running() -> JobRun | None:
        return next((r for r in await running(store) if r.run_id == run_id), None)

    victim = await eventually(pause_running, 30, "the pause job to start")
    pid = int(victim.worker.rsplit(":", 1)[1])
    process = next(p for p in workers.processes if p.pid == pid)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    killed_at = time.time()

    async def probe_after_kill() -> list[JobRun] | None:
        runs = [r for r in await _runs(store, "probe") if _tick_of(r) > killed_at + 1]
        return runs if len(runs) >= 3 else None

    later = await eventually(probe_after_kill, 30, "probe ticks after the kill")
    assert {r.worker for r in later} == {workers_survivor(workers, pid)}

    async def pause_retried() -> JobRun | None:
        return next((r for r in await _runs(store, "pause") if r.run_id == run_id and r.status == "succeeded"), None)

    retried = await eventually(pause_retried, 40, "the killed pause run to be retried by the survivor")
    lost = [r for r in await _runs(store, "pause") if r.run_id == run_id and r.outcome == "worker_lost"]
    assert retried.attempt >= 2
    assert retried.worker == workers_survivor(workers, pid)
    assert [(r.attempt, r.worker) for r in lost] == [(victim.attempt, victim.worker)]


async def test_a_killed_worker_makes_health_degraded_with_the_reason(workers: Workers, store: Store) -> None:
    dead = next((p for p in workers.processes if p.poll() is not None), None)
    if dead is None:  # run on its own, without the test above having killed one
        await eventually(lambda: _both_alive(store), 60, "both workers' heartbeats")
        dead = workers.processes[0]
        dead.send_signal(signal.SIGKILL)
        dead.wait(timeout=10)
    runtime = Runtime(workers.settings, store, services=frozenset({"cli"}))
    health = registry.get("monitoring_health")
    assert health is not None

    async def degraded() -> Any:
        result = await invoke(runtime, health, ADMIN, {}, surface="internal")
        reasons = [r for r in result.model_dump()["reasons"] if r.startswith("heartbeats:")]
        return result if reasons else None

    result = await eventually(degraded, 20, "health to report the killed worker")
    assert result.overall_status in {"degraded", "unhealthy"}
    assert any(f":{dead.pid} " in reason and "worker" in reason for reason in result.reasons)


def workers_survivor(workers: Workers, killed_pid: int) -> str:
    import socket

    survivor = next(p for p in workers.processes if p.pid != killed_pid)
    return f"{socket.gethostname()}:{survivor.pid}"
