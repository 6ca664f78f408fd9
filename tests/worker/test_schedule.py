"""The schedule: defaults, PRISM_WORKER_JOBS overrides, ticks with seconds last, and a bad schedule refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from prism_mcp.config import ConfigError, Settings
from prism_mcp.worker.schedule import load_schedule, next_tick, ticks_between

ROOT = Path(__file__).resolve().parents[2]


def _with_jobs(settings: Settings, jobs: object, defaults: bool = True) -> Settings:
    return settings.model_copy(update={"worker_jobs": json.dumps(jobs), "worker_default_jobs": defaults})


def test_overrides_change_disable_and_add_jobs(settings: Settings) -> None:
    jobs = {
        "backup": {"cron": "0 5 * * *"},
        "logs_cleanup": {"cron": None},
        "probe": {"capability": "x_y_z", "cron": "* * * * *"},
    }

    schedule = {job.name: job for job in load_schedule(_with_jobs(settings, jobs))}

    assert schedule["backup"].cron == "0 5 * * *"
    assert schedule["backup"].capability == "backup_create"
    assert schedule["logs_cleanup"].cron is None
    assert schedule["logs_cleanup"].arguments == {"days_old": 30}
    assert schedule["probe"].capability == "x_y_z"


def test_defaults_can_be_dropped(settings: Settings) -> None:
    jobs = {"probe": {"capability": "monitoring_health", "cron": "* * * * *"}}
    assert [job.name for job in load_schedule(_with_jobs(settings, jobs, defaults=False))] == ["probe"]


@pytest.mark.parametrize(
    ("jobs", "message"),
    [
        ({"backup": {"cron": "every day"}}, "job 'backup', cron"),
        ({"new": {"cron": "* * * * *"}}, "needs both 'capability' and 'cron'"),
        ({"backup": {"retries": 0}}, "job 'backup', retries"),
        ({"backup": {"colour": "red"}}, "job 'backup', colour"),
        (["not", "an", "object"], "expected a JSON object of jobs"),
    ],
)
def test_a_bad_schedule_is_refused_naming_the_job_and_field(settings: Settings, jobs: object, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_schedule(_with_jobs(settings, jobs))
    assert caught.value.message.startswith("PRISM_WORKER_JOBS: ")
    assert message in caught.value.message


def test_six_field_crons_take_seconds_last() -> None:
    start = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    ticks = list(ticks_between("* * * * * */15", start, start + 60))
    assert [t - start for t in ticks] == [15, 30, 45, 60]
    assert next_tick("0 3 * * *", start) - start == 15 * 3600


def test_prism_worker_with_a_bad_schedule_exits_at_start_with_the_reason(settings: Settings) -> None:
    env = {
        **os.environ,
        "API_KEY": "k" * 20,
        "REDIS_URL": settings.redis_url or "",
        "PRISM_DATA_DIR": str(settings.data_dir),
    }
    env["PRISM_WORKER_JOBS"] = '{"backup": {"cron": "sometimes"}}'
    done = subprocess.run(
        [sys.executable, "-c", "from prism_mcp.cli import main; main()", "worker"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "PRISM_WORKER_JOBS: job 'backup', cron" in done.stderr
