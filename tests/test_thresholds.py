"""Thresholds into alerts: real readings crossing configured thresholds, with hysteresis shared in Redis."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from prism_mcp.alerts import Alert, list_alerts
from prism_mcp.config import ConfigError, load_settings
from prism_mcp.outbox import outbox_key
from prism_mcp.runtime import Runtime
from prism_mcp.telemetry import telemetry_of
from prism_mcp.thresholds import EvaluationResult, step
from tests.monitoring_support import call, replica

LIMITS = (80.0, 95.0)


def _measure(result: EvaluationResult, name: str) -> tuple[str, str]:
    found = next(m for m in result.measures if m.measure == name)
    return found.level, found.action


async def _alerts_about(runtime: Runtime, fingerprint: str, **filters: Any) -> list[Alert]:
    # Only the measure under test: CPU on a shared machine may cross its own threshold at any time.
    return [a for a in await list_alerts(runtime.store, **filters) if a.fingerprint == fingerprint]


async def _transitions(runtime: Runtime, fingerprint: str) -> list[tuple[str, str]]:
    entries = await runtime.store.redis.xrange(outbox_key(runtime.store))
    out = []
    for _, fields in entries:
        payload = json.loads(fields["payload"])
        if payload["alert"]["fingerprint"] == fingerprint:
            out.append((payload["transition"], payload["alert"]["severity"]))
    return out


async def test_threshold_crossed_then_cleared_fires_one_alert_that_resolves_not_a_storm(runtime: Runtime) -> None:
    # Memory in use is always above 1 % and, on this machine, far below 50 % minus the clearing margin.
    crossed = replica(runtime, PRISM_MEMORY_WARNING=1, PRISM_ALERT_CLEAR_EVALUATIONS=3)
    cleared = replica(runtime, PRISM_MEMORY_WARNING=50, PRISM_ALERT_CLEAR_EVALUATIONS=3)
    try:
        firing = [_measure(await call(crossed, "monitoring_evaluate"), "memory") for _ in range(5)]
        alerts_while_firing = await _alerts_about(runtime, "threshold:memory")
        clearing = [_measure(await call(cleared, "monitoring_evaluate"), "memory") for _ in range(4)]
    finally:
        await crossed.store.close()
        await cleared.store.close()

    assert firing == [("warning", "fired")] + [("warning", "refreshed")] * 4
    assert [(a.fingerprint, a.status, a.count) for a in alerts_while_firing] == [("threshold:memory", "firing", 5)]
    assert clearing == [("warning", "held"), ("warning", "held"), ("ok", "resolved"), ("ok", "none")]
    (alert,) = await _alerts_about(runtime, "threshold:memory")
    assert (alert.status, alert.resolved_by, alert.runbook) == ("resolved", "monitoring_evaluate", "high-memory")
    transitions = [t for t, _ in await _transitions(runtime, "threshold:memory")]
    assert (transitions.count("fired"), transitions.count("resolved")) == (1, 1)
    assert transitions[-1] == "resolved"


async def test_severity_escalates_to_critical_and_comes_back_to_warning(runtime: Runtime) -> None:
    severe = replica(runtime, PRISM_MEMORY_WARNING=1, PRISM_MEMORY_CRITICAL=2, PRISM_ALERT_CLEAR_EVALUATIONS=1)
    milder = replica(runtime, PRISM_MEMORY_WARNING=1, PRISM_MEMORY_CRITICAL=90, PRISM_ALERT_CLEAR_EVALUATIONS=1)
    try:
        first = _measure(await call(milder, "monitoring_evaluate"), "memory")
        second = _measure(await call(severe, "monitoring_evaluate"), "memory")
        third = _measure(await call(milder, "monitoring_evaluate"), "memory")
    finally:
        await severe.store.close()
        await milder.store.close()

    assert [first, second, third] == [("warning", "fired"), ("critical", "escalated"), ("warning", "deescalated")]
    assert await _transitions(runtime, "threshold:memory") == [
        ("fired", "warning"),
        ("repeat", "critical"),
        ("repeat", "warning"),
    ]
    (alert,) = await _alerts_about(runtime, "threshold:memory", status="firing")
    assert (alert.severity, alert.count) == ("warning", 3)


async def test_slow_responses_raise_a_performance_alert_from_the_request_figures(runtime: Runtime) -> None:
    strict = replica(runtime, PRISM_RESPONSE_TIME_WARNING=0.000001, PRISM_ALERT_MIN_REQUESTS=2)
    try:
        for _ in range(3):
            await call(runtime, "monitoring_metrics")
        await telemetry_of(runtime).flush()
        # The strict replica reads the figures the first runtime recorded: they are shared through Redis.
        result = await call(strict, "monitoring_evaluate")
    finally:
        await strict.store.close()

    level, action = _measure(result, "response_time")
    assert (level, action) == ("warning", "fired")
    (alert,) = await _alerts_about(runtime, "threshold:response_time", category="performance")
    assert (alert.fingerprint, alert.runbook) == ("threshold:response_time", "slow-responses")


async def test_too_little_traffic_is_not_judged(runtime: Runtime) -> None:
    strict = replica(runtime, PRISM_ERROR_RATE_WARNING=0.001, PRISM_ALERT_MIN_REQUESTS=1000)
    try:
        result = await call(strict, "monitoring_evaluate")
    finally:
        await strict.store.close()
    error_rate = next(m for m in result.measures if m.measure == "error_rate")
    assert (error_rate.value, error_rate.level) == (None, "ok")


@pytest.mark.parametrize(
    ("values", "levels"),
    [
        # Hovering around the warning threshold: fires once, never flaps back to ok.
        ([81, 79, 81, 79, 81, 79], ["warning"] * 6),
        # Falls well below (under 72 = 80 minus 10 %): clears only on the third calm evaluation.
        ([81, 50, 50, 50], ["warning", "warning", "warning", "ok"]),
        # A calm run broken by the dead band starts again.
        ([81, 50, 50, 75, 50, 50, 50], ["warning"] * 6 + ["ok"]),
        # Straight to critical, then down to warning (not ok) when the value sits between the levels.
        ([96, 82, 82, 82], ["critical", "critical", "critical", "warning"]),
    ],
)
def test_hysteresis_step_sequences(values: list[float], levels: list[str]) -> None:
    level, calm, seen = "ok", 0, []
    for value in values:
        level, calm, _ = step(value, level, calm, LIMITS, margin=0.1, needed=3)  # type: ignore[arg-type]
        seen.append(level)
    assert seen == levels


async def test_replicas_evaluating_at_once_share_one_alert_and_one_hysteresis(runtime: Runtime) -> None:
    replicas = [replica(runtime, PRISM_MEMORY_WARNING=1) for _ in range(2)]
    try:
        results = await asyncio.gather(*(call(r, "monitoring_evaluate") for r in replicas * 3))
    finally:
        for r in replicas:
            await r.store.close()

    actions = sorted(_measure(result, "memory")[1] for result in results)
    assert actions == ["fired"] + ["refreshed"] * 5
    (alert,) = await _alerts_about(runtime, "threshold:memory")
    assert (alert.status, alert.count) == ("firing", 6)


def test_threshold_overrides_reach_the_thresholds_and_a_bad_one_names_its_variable() -> None:
    settings = load_settings(PRISM_CPU_WARNING=42, PRISM_ALERT_CLEAR_EVALUATIONS=5)
    assert (settings.thresholds.cpu_warning, settings.thresholds.alert_clear_evaluations) == (42, 5)
    with pytest.raises(ConfigError, match=r"^PRISM_ALERT_CLEAR_MARGIN: "):
        load_settings(PRISM_ALERT_CLEAR_MARGIN=0.9)
