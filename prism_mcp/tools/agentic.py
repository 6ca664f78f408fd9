"""The agentic layer's capabilities: diagnosis, the Notion ops journal, and the health of Notion and the model."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import Annotated

import openai
from pydantic import BaseModel, Field

from prism_mcp.capability import Call, Scope, capability
from prism_mcp.config import Settings
from prism_mcp.diagnosis import Diagnosis, diagnose
from prism_mcp.errors import PrismError
from prism_mcp.llm import openai_client, openai_reason
from prism_mcp.notion import (
    NOTION_ERRORS,
    NotionSyncResult,
    RequestPacer,
    is_configured,
    journal_status,
    notion_client,
    notion_reason,
    sync_journal,
)
from prism_mcp.runtime import ComponentStatus, Runtime, background_task, health_check
from prism_mcp.store.connection import CONNECTION_ERRORS

__all__ = ["NotionStatus"]

logger = logging.getLogger(__name__)

# Inside the detailed health's 3 s bound per check.
PROBE_TIMEOUT = 2.5


@capability("POST /ops/diagnose", scope=Scope.OPERATE, read_only=True)
async def ops_diagnose(
    call: Call,
    symptom: Annotated[
        str | None, Field(max_length=500, description="What is wrong, in words or the error text seen.")
    ] = None,
    use_llm: Annotated[bool, Field(description="Also ask the model (when OPENAI_API_KEY is set).")] = True,
) -> Diagnosis:
    """Diagnose PRISM from live evidence: findings by rule, each with its runbook and calls to make.

    Reads health, thresholds, performance, log and security evidence. With OPENAI_API_KEY a model also ranks
    causes (llm_causes); calls it recommends are kept only if they exist and validate. Executes nothing.
    """
    return await diagnose(call, symptom, use_llm)


def pacer(runtime: Runtime) -> RequestPacer:
    """The process's one Notion pacer, shared by syncs and health probes."""
    found = runtime.state.get("notion_pacer")
    if not isinstance(found, RequestPacer):
        found = runtime.state["notion_pacer"] = RequestPacer(runtime.settings.notion_requests_per_second)
    return found


class NotionStatus(BaseModel):
    configured: bool = Field(description="NOTION_API_KEY and NOTION_DATABASE_ID are both set.")
    database_id: str | None
    last_sync_at: datetime | None
    last_attempt_at: datetime | None
    last_error: str | None = Field(description="Why the last sync failed (`Notion API error: …`); null if it worked.")
    last_result: NotionSyncResult | None
    pages_tracked: int = Field(description="Alerts and reports with a page in the journal.")


@capability("GET /integrations/notion/status", scope=Scope.READ, read_only=True)
async def integrations_notion_status(call: Call) -> NotionStatus:
    """The Notion ops journal: configured or not, the last sync and its error, how many pages it tracks."""
    settings = call.runtime.settings
    record, tracked = await journal_status(call.runtime.store)
    result = record.get("last_result")
    return NotionStatus(
        configured=is_configured(settings),
        database_id=settings.notion_database_id,
        last_sync_at=record.get("last_sync_at") or None,
        last_attempt_at=record.get("last_attempt_at") or None,
        last_error=(f"Notion API error: {record['last_error']}" if record.get("last_error") else None),
        last_result=NotionSyncResult.model_validate_json(result) if result else None,
        pages_tracked=tracked,
    )


@capability("POST /integrations/notion/sync", scope=Scope.OPERATE, idempotent=True)
async def integrations_notion_sync(
    call: Call,
    daily_report: Annotated[bool, Field(description="Also write yesterday's daily report page if missing.")] = True,
) -> NotionSyncResult:
    """Write alerts into the Notion journal now: a page per fingerprint, updated on resolve, never duplicated.

    Fails with `Notion API error: <reason>` (fix the key or wait, then call again: done work is kept) and
    with 409 when Notion is not configured or a sync is already running.
    """
    runtime = call.runtime
    return await sync_journal(runtime.settings, runtime.store, pacer(runtime), daily_report=daily_report)


@background_task("notion_journal", services=("worker",))
async def notion_journal_loop(runtime: Runtime) -> None:
    """Sync the journal every NOTION_SYNC_INTERVAL seconds; one worker per tick (a Redis SET NX claim)."""
    settings = runtime.settings
    if not is_configured(settings):
        return
    interval = settings.notion_sync_interval
    while True:
        tick = int(time.time() // interval)
        await _sync_tick(runtime, tick, interval)
        await asyncio.sleep(interval - time.time() % interval)


async def _sync_tick(runtime: Runtime, tick: int, interval: float) -> None:
    store = runtime.store
    try:
        if not await store.redis.set(store.key("notion", "tick", tick), "1", nx=True, px=int(interval * 2000)):
            return
        await sync_journal(runtime.settings, store, pacer(runtime), daily_report=True)
    except PrismError as exc:
        logger.warning("notion_sync_skipped", extra={"reason": exc.message})
    except CONNECTION_ERRORS:
        logger.warning("notion_sync_skipped", extra={"reason": "Redis connection failed"})


# --- detailed health -------------------------------------------------------------------------------------------


def _remember(runtime: Runtime, name: str, probe: ComponentStatus, ttl: float) -> ComponentStatus:
    runtime.state[f"health:{name}"] = (time.monotonic() + ttl, probe)
    return probe


def _from_cache(runtime: Runtime, name: str) -> tuple[bool, ComponentStatus | None]:
    entry = runtime.state.get(f"health:{name}")
    if isinstance(entry, tuple) and entry[0] > time.monotonic():
        return True, entry[1]
    return False, None


@health_check("notion")
async def notion_health(runtime: Runtime) -> ComponentStatus | None:
    """Notion reachable and the key accepted (GET /v1/users/me), cached PRISM_INTEGRATION_HEALTH_TTL seconds."""
    settings = runtime.settings
    if settings.notion_api_key is None:
        return None
    hit, status = _from_cache(runtime, "notion")
    if hit:
        return status
    return _remember(runtime, "notion", await _probe_notion(runtime, settings), settings.integration_health_ttl)


async def _probe_notion(runtime: Runtime, settings: Settings) -> ComponentStatus:
    client = notion_client(settings, pacer(runtime), timeout=PROBE_TIMEOUT, retries=0)
    started = time.perf_counter()
    try:
        me = await client.users.me()
    except NOTION_ERRORS as exc:
        reason = f"Notion API error: {notion_reason(exc, settings.notion_base_url)}"
        return ComponentStatus(name="notion", status="degraded", reason=reason)
    finally:
        await client.aclose()
    latency = round((time.perf_counter() - started) * 1000, 3)
    details = {"bot": str(me.get("name") or me.get("id") or ""), "journal": is_configured(settings)}
    return ComponentStatus(name="notion", status="healthy", latency_ms=latency, details=details)


@health_check("openai")
async def openai_health(runtime: Runtime) -> ComponentStatus | None:
    """The model's server reachable and the key accepted (GET /v1/models: no tokens spent), cached."""
    settings = runtime.settings
    if settings.openai_api_key is None:
        return None
    hit, status = _from_cache(runtime, "openai")
    if hit:
        return status
    return _remember(runtime, "openai", await _probe_openai(settings), settings.integration_health_ttl)


async def _probe_openai(settings: Settings) -> ComponentStatus:
    client = openai_client(settings, timeout=PROBE_TIMEOUT)
    started = time.perf_counter()
    try:
        models = [model.id async for model in client.models.list()]
    except openai.OpenAIError as exc:
        return ComponentStatus(name="openai", status="degraded", reason=openai_reason(exc)[1])
    finally:
        await client.close()
    latency = round((time.perf_counter() - started) * 1000, 3)
    details = {"model": settings.openai_model, "models_offered": len(models)}
    if settings.openai_model not in models:
        reason = f"the server does not offer OPENAI_MODEL={settings.openai_model!r}; it offers {len(models)} other(s)"
        return ComponentStatus(name="openai", status="degraded", reason=reason, latency_ms=latency, details=details)
    return ComponentStatus(name="openai", status="healthy", latency_ms=latency, details=details)
