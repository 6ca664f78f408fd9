"""Alerts: list and resolve them, and evaluate the thresholds into them (``monitoring_evaluate``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, Field

from prism_mcp import alerts
from prism_mcp.alerts import Alert, AlertCategory, AlertStatus
from prism_mcp.capability import Call, Scope, capability
from prism_mcp.errors import NotFoundError
from prism_mcp.thresholds import EvaluationResult, evaluate

__all__ = ["AlertList", "ResolvedAlert"]


def _blank_is_none(value: object) -> object:
    # `?status=&category=` (a filter left empty) means no filter, as a shell script would write it.
    return None if value == "" else value


Blank = BeforeValidator(_blank_is_none)


class AlertList(BaseModel):
    alerts: list[Alert]
    count: int
    firing: int


class ResolvedAlert(BaseModel):
    alert: Alert
    was_firing: bool


@capability("GET /monitoring/alerts", scope=Scope.READ, read_only=True)
async def alerts_list(
    call: Call,
    status: Annotated[AlertStatus | None, Blank, Field(description="firing or resolved.")] = None,
    category: Annotated[AlertCategory | None, Blank, Field(description="system, performance or security.")] = None,
    limit: Annotated[int, Field(ge=1, le=1000, description="At most this many alerts.")] = 100,
) -> AlertList:
    """Alerts of every area (system, performance, security), newest change first.

    Each has severity, status, first and last seen, count and the runbook id that addresses it. Resolve one with
    `alerts_resolve`; a threshold alert whose condition persists fires again at the next
    evaluation.
    """
    found = await alerts.list_alerts(call.runtime.store, status=status, category=category, limit=limit)
    return AlertList(alerts=found, count=len(found), firing=sum(a.status == "firing" for a in found))


@capability("POST /monitoring/alerts/resolve", scope=Scope.OPERATE, idempotent=True)
async def alerts_resolve(
    call: Call,
    id: Annotated[str, Field(pattern=r"^al-[0-9a-f]{12}$", description="The alert's id.")],
) -> ResolvedAlert:
    """Mark one alert resolved by id; resolving a resolved alert changes nothing.

    Records who resolved it. Fails with not_found for an unknown id (list ids with `alerts_list`).
    """
    store = call.runtime.store
    current = await alerts.get_alert(store, id)
    if current is None:
        raise NotFoundError(f"no alert with id {id!r}; list them with GET /monitoring/alerts")
    resolved = await alerts.resolve(store, id, by=call.principal.name)
    return ResolvedAlert(alert=resolved, was_firing=current.status == "firing")


@capability("POST /monitoring/evaluate", scope=Scope.OPERATE, idempotent=False)
async def monitoring_evaluate(call: Call) -> EvaluationResult:
    """Evaluate the thresholds now and fire, escalate or resolve their alerts, with hysteresis.

    Measures: CPU, memory, disk; p95 response time and error rate over 5 minutes. The hysteresis is shared by
    every replica. A level rises at once; it falls only after `PRISM_ALERT_CLEAR_EVALUATIONS` evaluations in a row
    below the
    threshold minus `PRISM_ALERT_CLEAR_MARGIN`, so a value at a threshold does not flap. The worker runs this every
    minute; call it to evaluate at once.
    """
    return await evaluate(call.runtime)
