"""The worker's schedule: which capability runs when, with which arguments.

The default schedule is the operations guide's maintenance done by hand (定期メンテナンス), on a timer. Every job
can be changed, disabled or added with ``PRISM_WORKER_JOBS``, a JSON object keyed by job name::

    PRISM_WORKER_JOBS='{"backup": {"cron": "0 4 * * *"}, "logs_cleanup": {"cron": null},
                        "probe": {"capability": "monitoring_health", "cron": "*/10 * * * * *"}}'

A ``cron`` of ``null`` disables a job's timer (it can still be run by hand). Crons are UTC, five fields, or six
with seconds last (croniter's order). ``PRISM_WORKER_DEFAULT_JOBS=false`` drops the defaults entirely.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from prism_mcp.config import ConfigError, Settings

__all__ = ["DEFAULT_JOBS", "JobSpec", "load_schedule", "next_tick", "ticks_between"]


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One job: a capability called by name with fixed arguments, on a cron (or by hand only)."""

    name: str
    capability: str
    cron: str | None
    arguments: dict[str, Any] = field(default_factory=dict)
    retries: int | None = None
    timeout: int | None = None


DEFAULT_JOBS: tuple[JobSpec, ...] = (
    JobSpec("monitoring_evaluate", "monitoring_evaluate", "* * * * *"),
    # Archive before cleanup, so that nothing is deleted before it is archived.
    JobSpec("logs_archive", "logs_archive", "0 2 * * *", {"days_old": 7}),
    JobSpec("logs_cleanup", "logs_cleanup", "30 2 * * *", {"days_old": 30}),
    JobSpec("backup", "backup_create", "0 3 * * *"),
    JobSpec("daily_report", "notifications_send_daily_report", "0 0 * * *"),
    JobSpec("performance_optimize", "performance_optimize", "0 4 * * 0"),
    JobSpec("security_audit", "security_audit", "30 4 * * 0"),
)


class _Override(BaseModel):
    model_config = ConfigDict(extra="forbid")

    capability: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{2,63}$")
    cron: str | None = "keep"
    arguments: dict[str, Any] | None = None
    retries: int | None = Field(default=None, ge=1, le=20)
    timeout: int | None = Field(default=None, ge=1, le=86_400)

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        if value in (None, "keep"):
            return value
        if not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a cron (five fields, or six with seconds last)")
        return value


def _overrides(raw: str) -> dict[str, _Override]:
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"PRISM_WORKER_JOBS: expected a JSON object of jobs ({exc.msg} at {exc.pos})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"PRISM_WORKER_JOBS: expected a JSON object of jobs, got {type(data).__name__}")
    result = {}
    for name, body in data.items():
        try:
            result[str(name)] = _Override.model_validate(body)
        except ValidationError as exc:
            error = exc.errors(include_url=False)[0]
            where = ".".join(str(part) for part in error["loc"]) or "job"
            raise ConfigError(f"PRISM_WORKER_JOBS: job {name!r}, {where}: {error['msg']}") from exc
    return result


def _apply(base: JobSpec | None, name: str, override: _Override) -> JobSpec:
    if base is None:
        if override.capability is None or override.cron == "keep":
            raise ConfigError(f"PRISM_WORKER_JOBS: new job {name!r} needs both 'capability' and 'cron'")
        base = JobSpec(name, override.capability, None)
    return JobSpec(
        name=name,
        capability=override.capability or base.capability,
        cron=base.cron if override.cron == "keep" else override.cron,
        arguments=base.arguments if override.arguments is None else override.arguments,
        retries=override.retries or base.retries,
        timeout=override.timeout or base.timeout,
    )


def load_schedule(settings: Settings) -> list[JobSpec]:
    """The defaults (unless turned off) with ``PRISM_WORKER_JOBS`` applied; :class:`ConfigError` if it is bad."""
    jobs = {job.name: job for job in DEFAULT_JOBS} if settings.worker_default_jobs else {}
    for name, override in _overrides(settings.worker_jobs).items():
        jobs[name] = _apply(jobs.get(name), name, override)
    return list(jobs.values())


def next_tick(cron: str, after: float) -> float:
    """The first tick of ``cron`` strictly after ``after`` (epoch seconds, UTC)."""
    start = datetime.fromtimestamp(after, UTC)
    return float(croniter(cron, start).get_next(float))


def ticks_between(cron: str, since: float, until: float) -> Iterator[float]:
    """Every tick of ``cron`` in ``(since, until]``, oldest first."""
    schedule = croniter(cron, datetime.fromtimestamp(since, UTC))
    while (tick := float(schedule.get_next(float))) <= until:
        yield tick
