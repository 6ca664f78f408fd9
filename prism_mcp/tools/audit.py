"""The audit trail: every state change any caller made, on any surface."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field

from prism_mcp.capability import Call, Scope, capability

__all__ = ["AuditEvent", "AuditTrail"]


class AuditEvent(BaseModel):
    id: str = Field(description="Stream id; later events have larger ids.")
    timestamp: datetime
    capability: str
    principal: str = Field(description="Who called: a key's fingerprint name, or worker, notifier.")
    key: str = Field(description="Short fingerprint of the key used; never the key.")
    surface: str = Field(description="rest, mcp, cli, worker or web.")
    request_id: str
    outcome: str
    arguments: dict[str, Any] = Field(description="The arguments given; secrets appear as ***.")


class AuditTrail(BaseModel):
    events: list[AuditEvent]
    count: int


def _event(entry_id: str, fields: dict[str, str]) -> AuditEvent:
    return AuditEvent(
        id=entry_id,
        timestamp=datetime.fromisoformat(fields["ts"]),
        capability=fields.get("capability", ""),
        principal=fields.get("principal", ""),
        key=fields.get("key", ""),
        surface=fields.get("surface", ""),
        request_id=fields.get("request_id", ""),
        outcome=fields.get("outcome", ""),
        arguments=json.loads(fields.get("arguments") or "{}"),
    )


@capability("GET /audit/events", scope=Scope.OPERATE, read_only=True)
async def audit_events(
    call: Call,
    limit: Annotated[int, Field(ge=1, le=1000, description="Most recent events to return (1-1000).")] = 50,
    name: Annotated[
        str | None,
        Field(pattern=r"^[a-z][a-z0-9_]{2,63}$", description="Only events of this capability, e.g. logs_cleanup."),
    ] = None,
) -> AuditTrail:
    """The audit trail of state changes, newest first: who called which capability, from where, with what.

    Every call that changes state (archive, cleanup, block, settings, …) is recorded, on every surface.
    """
    store = call.runtime.store
    entries = await store.redis.xrevrange(store.key("audit"), count=limit if name is None else 10_000)
    events = [_event(entry_id, fields) for entry_id, fields in entries]
    if name is not None:
        events = [e for e in events if e.capability == name][:limit]
    return AuditTrail(events=events, count=len(events))
