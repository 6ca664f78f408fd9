"""The Notion ops journal against a local fake Notion, through the official notion-client by base URL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from prism_mcp import alerts
from prism_mcp.config import Settings
from tests.agentic_fakes import DATABASE_ID, NOTION_KEY, FakeNotion, prism, serve
from tests.conftest import free_port


@pytest.fixture
async def notion() -> AsyncIterator[FakeNotion]:
    fake = FakeNotion()
    async with serve(fake.app()) as url:
        fake.url = url
        yield fake


def journal(notion: FakeNotion, key: str = NOTION_KEY, **more: object) -> dict[str, object]:
    return {
        "notion_api_key": SecretStr(key),
        "notion_database_id": DATABASE_ID,
        "notion_base_url": notion.url,
        "notion_requests_per_second": 50.0,
    } | more


async def fire_cpu(runtime_store: object) -> alerts.Alert:
    alert, _ = await alerts.fire(
        runtime_store,  # type: ignore[arg-type]
        fingerprint="threshold:cpu",
        category="system",
        severity="warning",
        title="High CPU usage",
        message="CPU at 91 % (warning 80 %)",
        source="thresholds",
        runbook="high-cpu",
    )
    return alert


async def test_an_alert_page_is_created_once_and_updated_when_it_resolves(
    settings: Settings, notion: FakeNotion
) -> None:
    async with prism(settings, **journal(notion)) as (runtime, api):
        alert = await fire_cpu(runtime.store)
        first = (await api.post("/integrations/notion/sync")).json()["data"]
        rerun = (await api.post("/integrations/notion/sync")).json()["data"]
        await alerts.resolve(runtime.store, alert.id, by="test")
        resolved = (await api.post("/integrations/notion/sync")).json()["data"]
        status = (await api.get("/integrations/notion/status")).json()["data"]

    pages = notion.by_fingerprint("threshold:cpu")
    assert (first["created"], rerun["created"], rerun["unchanged"], resolved["updated"]) == (1, 0, 1, 1)
    assert first["remaining"] == 0
    assert len(pages) == 1
    assert pages[0]["properties"]["Status"] == {"select": {"name": "resolved"}}
    assert pages[0]["parent"] == {"type": "data_source_id", "data_source_id": notion.data_source}
    yesterday = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    assert len(notion.by_fingerprint(f"report:daily:{yesterday}")) == 1
    assert first["daily_report_page"] is not None
    assert rerun["daily_report_page"] is None
    assert status["configured"] is True
    assert status["last_error"] is None
    assert status["pages_tracked"] == 2


async def test_a_lost_page_map_finds_the_existing_page_instead_of_duplicating(
    settings: Settings, notion: FakeNotion
) -> None:
    async with prism(settings, **journal(notion)) as (runtime, api):
        await fire_cpu(runtime.store)
        await api.post("/integrations/notion/sync", params={"daily_report": "false"})
        await runtime.store.redis.delete(runtime.store.key("notion", "pages"), runtime.store.key("notion", "synced"))
        again = (await api.post("/integrations/notion/sync", params={"daily_report": "false"})).json()["data"]
    assert (again["created"], again["updated"]) == (0, 1)
    assert len(notion.by_fingerprint("threshold:cpu")) == 1


async def test_a_429_with_retry_after_is_waited_out_and_the_sync_succeeds(
    settings: Settings, notion: FakeNotion
) -> None:
    async with prism(settings, **journal(notion)) as (runtime, api):
        await fire_cpu(runtime.store)
        notion.rate_limit_next = 1
        response = await api.post("/integrations/notion/sync", params={"daily_report": "false"})
    assert response.status_code == 200
    assert response.json()["data"]["created"] == 1
    assert notion.requests[:2] == [f"GET /v1/databases/{DATABASE_ID}"] * 2
    assert len(notion.by_fingerprint("threshold:cpu")) == 1


async def test_a_bad_key_fails_the_sync_with_notion_api_error_and_shows_in_health(
    settings: Settings, notion: FakeNotion
) -> None:
    async with prism(settings, **journal(notion, key="secret_wrong")) as (runtime, api):
        await fire_cpu(runtime.store)
        sync = await api.post("/integrations/notion/sync")
        status = (await api.get("/integrations/notion/status")).json()["data"]
        health = (await api.get("/healthz/detailed")).json()["data"]
    component = next(c for c in health["components"] if c["name"] == "notion")
    assert sync.status_code == 502
    assert sync.json()["error"]["message"].startswith("Notion API error: 401 unauthorized")
    assert "check NOTION_API_KEY" in sync.json()["error"]["message"]
    assert status["last_error"].startswith("Notion API error: 401")
    assert component["status"] == "degraded"
    assert component["reason"].startswith("Notion API error: 401 unauthorized")
    assert "secret_wrong" not in sync.text + str(health)


async def test_health_reports_notion_healthy_and_caches_the_probe(settings: Settings, notion: FakeNotion) -> None:
    async with prism(settings, **journal(notion)) as (_, api):
        first = (await api.get("/healthz/detailed")).json()["data"]
        second = (await api.get("/healthz/detailed")).json()["data"]
    component = next(c for c in first["components"] if c["name"] == "notion")
    assert component["status"] == "healthy"
    assert component["details"]["journal"] is True
    assert next(c for c in second["components"] if c["name"] == "notion") == component
    assert notion.requests.count("GET /v1/users/me") == 1


async def test_without_notion_settings_sync_says_what_to_set_and_health_omits_it(settings: Settings) -> None:
    async with prism(settings) as (_, api):
        sync = await api.post("/integrations/notion/sync")
        health = (await api.get("/healthz/detailed")).json()["data"]
    assert sync.status_code == 409
    assert "set NOTION_API_KEY and NOTION_DATABASE_ID" in sync.json()["error"]["message"]
    assert "notion" not in {c["name"] for c in health["components"]}


async def test_two_workers_journal_a_fired_alert_into_one_page(settings: Settings, notion: FakeNotion) -> None:
    worker = frozenset({"worker"})
    options = journal(notion, notion_sync_interval=1.0)
    async with prism(settings, worker, **options) as (one, _), prism(settings, worker, **options):
        await fire_cpu(one.store)
        await wait_for(lambda: len(notion.pages) >= 2)  # the alert and yesterday's report
        status_key = one.store.key("notion", "status")
        seen = await one.store.redis.hget(status_key, "last_attempt_at")
        later = await poll(lambda: one.store.redis.hget(status_key, "last_attempt_at"), lambda v: v != seen)
    assert later != seen
    assert len(notion.pages) == 2
    assert len(notion.by_fingerprint("threshold:cpu")) == 1


async def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {seconds:g} s")
        await asyncio.sleep(0.05)


async def poll(read: Callable[[], Awaitable[object]], done: Callable[[object], bool], seconds: float = 10.0) -> object:
    deadline = time.monotonic() + seconds
    while not done(value := await read()):
        if time.monotonic() > deadline:
            raise AssertionError(f"no change within {seconds:g} s")
        await asyncio.sleep(0.05)
    return value


async def test_an_unreachable_notion_is_a_notion_api_error_saying_where_it_looked(settings: Settings) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    options = {"notion_api_key": SecretStr(NOTION_KEY), "notion_database_id": DATABASE_ID, "notion_base_url": nowhere}
    async with prism(settings, **options) as (_, api):
        sync = await api.post("/integrations/notion/sync")
        health = (await api.get("/healthz/detailed")).json()["data"]
    component = next(c for c in health["components"] if c["name"] == "notion")
    assert sync.status_code == 502
    assert sync.json()["error"]["message"] == (
        f"Notion API error: cannot reach {nowhere} (ConnectError); check NOTION_BASE_URL and the network"
    )
    assert component["status"] == "degraded"
    assert "cannot reach" in component["reason"]
