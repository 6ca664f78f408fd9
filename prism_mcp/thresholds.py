"""Thresholds into alerts, with hysteresis kept in Redis so that every replica continues the same state.

One evaluation reads CPU, memory and disk from the sampler, and the p95 response time and error rate of the last
5 minutes from the request telemetry, and compares each with its warning and critical threshold:

- a value at or above a higher level than the current one raises the level at once (fire, or escalate
  warning -> critical);
- a value at the current level refreshes the alert (``last_seen``, ``count``);
- the level only comes down after the value has stayed below the level's threshold minus
  ``PRISM_ALERT_CLEAR_MARGIN`` (a fraction of the threshold) for ``PRISM_ALERT_CLEAR_EVALUATIONS`` evaluations in a
  row; it then drops to the level the value is at (de-escalate critical -> warning, or resolve). A value in between
  holds the level and restarts the count, so a value hovering at a threshold fires once and does not flap.

The state per measure (``level calm-count``) lives in the hash ``thresholds:state`` and is updated under WATCH, so
two replicas evaluating at the same moment never lose a step. The worker schedules one evaluation a minute.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field
from redis.exceptions import WatchError

from prism_mcp import alerts
from prism_mcp.alerts import AlertCategory
from prism_mcp.capability import registry
from prism_mcp.config import Thresholds
from prism_mcp.errors import ConflictError
from prism_mcp.runtime import Runtime
from prism_mcp.sampler import latest_sample
from prism_mcp.telemetry import WindowData, read_windows

__all__ = [
    "RULES",
    "EvaluationResult",
    "Level",
    "MeasureEvaluation",
    "Rule",
    "evaluate",
    "level_of",
    "readings",
    "step",
]

logger = logging.getLogger(__name__)

Level = Literal["ok", "warning", "critical"]
Measure = Literal["cpu", "memory", "disk", "response_time", "error_rate"]
Action = Literal["none", "fired", "escalated", "refreshed", "held", "deescalated", "resolved"]
_RANK: dict[str, int] = {"ok": 0, "warning": 1, "critical": 2}
_RETRIES = 10
SOURCE = "monitoring_evaluate"


@dataclass(frozen=True, slots=True)
class Rule:
    measure: Measure
    category: AlertCategory
    title: str
    label: str
    unit: str
    runbook: str

    def limits(self, thresholds: Thresholds) -> tuple[float, float]:
        return getattr(thresholds, f"{self.measure}_warning"), getattr(thresholds, f"{self.measure}_critical")

    @property
    def fingerprint(self) -> str:
        return f"threshold:{self.measure}"


RULES: tuple[Rule, ...] = (
    Rule("cpu", "system", "High CPU usage", "CPU", "%", "high-cpu"),
    Rule("memory", "system", "High memory usage", "memory", "%", "high-memory"),
    Rule("disk", "system", "Disk filling up", "disk", "%", "daily-maintenance"),
    Rule("response_time", "performance", "Slow API responses", "p95 response time (5 min)", "s", "slow-responses"),
    Rule("error_rate", "performance", "High API error rate", "error rate (5 min)", "%", "error-rate"),
)


class MeasureEvaluation(BaseModel):
    measure: Measure
    value: float | None = Field(description="Null on too little traffic.")
    unit: str
    warning: float
    critical: float
    level: Level
    previous_level: Level
    action: Action
    calm_evaluations: int
    alert_id: str | None = None


class EvaluationResult(BaseModel):
    evaluated_at: datetime
    measures: list[MeasureEvaluation]
    clear_margin: float
    clear_evaluations: int


def level_of(value: float | None, warning: float, critical: float) -> Level:
    if value is None:
        return "ok"
    return "critical" if value >= critical else "warning" if value >= warning else "ok"


def step(
    value: float | None, previous: Level, calm: int, limits: tuple[float, float], margin: float, needed: int
) -> tuple[Level, int, Action]:
    """One hysteresis step: the new level, the new calm count, and the action it implies."""
    warning, critical = limits
    now = level_of(value, warning, critical)
    if _RANK[now] > _RANK[previous]:
        return now, 0, "fired" if previous == "ok" else "escalated"
    if previous == "ok":
        return "ok", 0, "none"
    if now == previous:
        return previous, 0, "refreshed"
    threshold = critical if previous == "critical" else warning
    if value is not None and value >= threshold * (1 - margin):
        return previous, 0, "held"
    if calm + 1 < needed:
        return previous, calm + 1, "held"
    lowered = level_of(value, warning * (1 - margin), critical * (1 - margin))
    return lowered, 0, "resolved" if lowered == "ok" else "deescalated"


async def readings(runtime: Runtime, window: WindowData | None = None) -> dict[str, float | None]:
    """The current value of every measure; response time and error rate are ``None`` on too little traffic.

    ``window`` is the last 5 minutes of request figures when the caller has read them already.
    """
    sample = await latest_sample(runtime)
    if window is None:
        window = (await read_windows(runtime, ["5m"]))["5m"]
    limits = runtime.settings.thresholds
    quick = [name for name in window.capabilities if not _long_running(name)]
    served = window.merged(quick)
    errors = window.merged()
    p95 = served.percentile(0.95) if served.count >= limits.alert_min_requests else None
    rate = 100.0 * errors.errors / errors.count if errors.count >= limits.alert_min_requests else None
    return {
        "cpu": sample.cpu_percent,
        "memory": sample.memory_percent,
        "disk": sample.disk_percent,
        "response_time": p95,
        "error_rate": rate,
    }


def _long_running(name: str) -> bool:
    # Archive, backup and other long work would otherwise read as slow responses.
    cap = registry.get(name)
    return cap is not None and cap.long_running


def _parse(raw: str | None) -> tuple[Level, int]:
    if not raw:
        return "ok", 0
    level, _, calm = raw.partition(" ")
    if level not in _RANK:
        return "ok", 0
    return level, int(calm or 0)  # type: ignore[return-value]


async def evaluate(runtime: Runtime) -> EvaluationResult:
    """Evaluate every rule once, move the shared hysteresis state one step, and fire or resolve alerts."""
    values = await readings(runtime)
    thresholds = runtime.settings.thresholds
    margin, needed = thresholds.alert_clear_margin, thresholds.alert_clear_evaluations
    store = runtime.store
    key = store.key("thresholds", "state")
    for _ in range(_RETRIES):
        async with store.redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(key)
                state: dict[str, str] = await pipe.hgetall(key)
                results = [_evaluate_rule(rule, values, state, thresholds) for rule in RULES]
                pipe.multi()
                pipe.hset(key, mapping={r.measure: f"{r.level} {r.calm_evaluations}" for r in results})
                await pipe.execute()
                break
            except WatchError:
                continue
    else:
        raise ConflictError("threshold state kept changing under concurrent evaluations; call again")
    for rule, result in zip(RULES, results, strict=True):
        result.alert_id = await _act(runtime, rule, result)
    return EvaluationResult(
        evaluated_at=datetime.now(UTC), measures=results, clear_margin=margin, clear_evaluations=needed
    )


def _evaluate_rule(
    rule: Rule, readings: dict[str, float | None], state: dict[str, str], thresholds: Thresholds
) -> MeasureEvaluation:
    previous, calm = _parse(state.get(rule.measure))
    limits = rule.limits(thresholds)
    value = readings[rule.measure]
    level, calm, action = step(
        value, previous, calm, limits, thresholds.alert_clear_margin, thresholds.alert_clear_evaluations
    )
    return MeasureEvaluation(
        measure=rule.measure,
        value=None if value is None else round(value, 4),
        unit=rule.unit,
        warning=limits[0],
        critical=limits[1],
        level=level,
        previous_level=previous,
        action=action,
        calm_evaluations=calm,
    )


async def _act(runtime: Runtime, rule: Rule, result: MeasureEvaluation) -> str | None:
    store = runtime.store
    if result.action in ("fired", "escalated", "refreshed", "deescalated") and result.level != "ok":
        alert, _ = await alerts.fire(
            store,
            fingerprint=rule.fingerprint,
            category=rule.category,
            severity=result.level,
            title=rule.title,
            message=_message(rule, result),
            source=SOURCE,
            details={"value": result.value, "unit": rule.unit, "warning": result.warning, "critical": result.critical},
            runbook=rule.runbook,
        )
        if result.action != "refreshed":
            logger.info("threshold_alert_changed", extra={"measure": rule.measure, "action": result.action})
        return alert.id
    if result.level == "ok":
        # Also on a steady ok: an alert left firing by an evaluation that died between its steps is resolved.
        resolved = await alerts.resolve_fingerprint(store, rule.fingerprint, by=SOURCE)
        if resolved is not None and result.action == "none":
            result.action = "resolved"
        return resolved.id if resolved else None
    return alerts.alert_id(rule.fingerprint)


def _message(rule: Rule, result: MeasureEvaluation) -> str:
    return (
        f"{rule.label} at {result.value:g} {rule.unit} (warning {result.warning:g} {rule.unit}, "
        f"critical {result.critical:g} {rule.unit}); see runbook {rule.runbook}"
    )
