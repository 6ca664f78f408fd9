"""The log capabilities over REST and MCP, on a real Redis: stats, search, ingest, archive, cleanup, listing."""

from __future__ import annotations

import os
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from prism_mcp.runtime import Runtime, dashboard_sections
from tests.conftest import ADMIN_KEY, READ_KEY
from tests.mcp_client import mcp_client


def record(ts: datetime, level: str = "INFO", service: str = "billing", event: str = "charge_done", **fields: Any):
    return {"timestamp": ts.isoformat(), "level": level, "service": service, "event": event, "fields": fields}


def hour_start(now: datetime) -> datetime:
    return now.replace(minute=0, second=0, microsecond=0)


async def ingest(api: httpx.AsyncClient, records: list[dict[str, Any]]) -> None:
    response = await api.post("/monitoring/logs", json={"records": records})
    assert response.status_code == 200, response.text
    assert response.json()["data"]["accepted"] == len(records)


async def test_stats_agree_with_records_written_across_services_and_hours(api: httpx.AsyncClient) -> None:
    base = hour_start(datetime.now(UTC))
    written = []
    for k in range(1, 6):
        for i in range(k):
            written.append(record(base - timedelta(hours=k, minutes=-10 - i), "ERROR", "billing", "charge_failed"))
        written.append(record(base - timedelta(hours=k, minutes=-30), "INFO", "shop", "order_placed"))
        written.append(record(base - timedelta(hours=k, minutes=-40), "WARNING", "search", "slow_query"))
    written.append(record(base - timedelta(hours=30), "CRITICAL", "billing", "ledger_corrupt"))
    await ingest(api, written)

    for hours in (3, 24, 48):
        stats = (await api.get("/monitoring/logs/stats", params={"hours": hours})).json()["data"]
        since = datetime.fromisoformat(stats["since"])
        inside = [r for r in written if datetime.fromisoformat(r["timestamp"]) >= since]
        expected_services = Counter(r["service"] for r in inside)
        for service in ("billing", "shop", "search"):
            assert stats["by_service"].get(service, 0) == expected_services[service], (hours, service)
        per_hour = Counter(hour_start(datetime.fromisoformat(r["timestamp"])) for r in inside)
        series = {datetime.fromisoformat(h["hour"]): h["total"] for h in stats["hourly"]}
        assert len(stats["hourly"]) == hours
        for hour, n in per_hour.items():
            assert series[hour] == n
        top = {e["event"]: e["count"] for e in stats["top_errors"]}
        assert top.get("charge_failed", 0) == sum(1 for r in inside if r["event"] == "charge_failed")
    assert top["ledger_corrupt"] == 1
    assert stats["top_errors"][0] == {"event": "charge_failed", "count": 15}
    assert 0 < stats["error_rate_percent"] <= 100


async def test_search_pages_newest_first_and_every_record_exactly_once(api: httpx.AsyncClient) -> None:
    base = datetime.now(UTC) - timedelta(hours=2)
    # Three records share each millisecond, and the series crosses an hour boundary: the cursor must hold.
    written = [
        record(base - timedelta(minutes=9 * (i // 3)), "ERROR" if i % 4 == 0 else "INFO", "shop", f"step_{i}")
        for i in range(45)
    ]
    await ingest(api, written)

    seen: list[dict[str, Any]] = []
    cursor = None
    for _ in range(10):
        params: dict[str, Any] = {"service": "shop", "limit": 7}
        if cursor:
            params["cursor"] = cursor
        page = (await api.get("/monitoring/logs", params=params)).json()["data"]
        seen += page["records"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(r["event"] for r in seen) == sorted(r["event"] for r in written)
    times = [r["timestamp"] for r in seen]
    assert times == sorted(times, reverse=True)

    errors = (await api.get("/monitoring/logs", params={"service": "shop", "level": "ERROR"})).json()["data"]
    assert {r["level"] for r in errors["records"]} == {"ERROR"}
    assert len(errors["records"]) == sum(1 for r in written if r["level"] == "ERROR")
    found = (await api.get("/monitoring/logs", params={"q": "STEP_13"})).json()["data"]
    assert [r["event"] for r in found["records"]] == ["step_13"]


async def test_secret_fields_of_pushed_records_are_masked(api: httpx.AsyncClient) -> None:
    await ingest(api, [record(datetime.now(UTC), service="vault", api_key="sk-live-123", user="ann")])
    page = (await api.get("/monitoring/logs", params={"service": "vault"})).json()["data"]
    assert page["records"][0]["fields"] == {"api_key": "***", "user": "ann"}
    assert "sk-live-123" not in str(page)


@pytest.mark.parametrize(
    ("method", "path", "params", "body", "field"),
    [
        ("GET", "/monitoring/logs/stats", {"hours": 0}, None, "hours"),
        ("GET", "/monitoring/logs/stats", {"hours": 721}, None, "hours"),
        ("GET", "/monitoring/logs", {"limit": 100000}, None, "limit"),
        ("GET", "/monitoring/logs", {"cursor": "not-a-cursor"}, None, "cursor"),
        ("POST", "/monitoring/logs/archive", {"days_old": -1}, None, "days_old"),
        ("POST", "/monitoring/logs/cleanup", {"days_old": -1}, None, "days_old"),
        ("POST", "/monitoring/logs", {}, {"records": []}, "records"),
        ("POST", "/monitoring/logs", {}, {"records": [{"level": "INFO"}] * 1001}, "records"),
    ],
)
async def test_bad_input_gets_422_naming_the_field(
    api: httpx.AsyncClient, method: str, path: str, params: dict[str, Any], body: Any, field: str
) -> None:
    response = await api.request(method, path, params=params, json=body)
    assert response.status_code == 422
    assert response.json()["error"]["details"]["field"] == field


async def test_one_malformed_record_refuses_the_batch_and_writes_nothing(api: httpx.AsyncClient) -> None:
    now = datetime.now(UTC)
    batch = [record(now, service="intake") for _ in range(5)]
    batch[3]["level"] = "LOUD"
    response = await api.post("/monitoring/logs", json={"records": batch})
    future = await api.post("/monitoring/logs", json={"records": [record(now + timedelta(days=1), service="intake")]})

    assert response.status_code == 422
    assert response.json()["error"]["details"]["field"] == "records.3.level"
    assert future.json()["error"]["details"]["field"] == "records.0.timestamp"
    stats = (await api.get("/monitoring/logs/stats", params={"hours": 48})).json()["data"]
    assert "intake" not in stats["by_service"]


async def test_pushing_records_needs_the_operate_scope(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url, headers={"Authorization": f"Bearer {READ_KEY}"}) as client:
        refused = await client.post("/monitoring/logs", json={"records": [record(datetime.now(UTC))]})
        allowed = await client.get("/monitoring/logs/stats")
    assert refused.status_code == 403
    assert allowed.status_code == 200


async def test_archive_then_cleanup_moves_old_days_to_files_and_deletes_old_files(api: httpx.AsyncClient) -> None:
    now = datetime.now(UTC)
    ages = {40: 4, 10: 6, 2: 3}
    await ingest(
        api, [record(now - timedelta(days=d, minutes=i), service="shop") for d, n in ages.items() for i in range(n)]
    )

    archived = (await api.post("/monitoring/logs/archive", params={"days_old": 7})).json()["data"]
    assert archived["archived"] == archived["removed_from_redis"] == 10
    assert sorted(f["records"] for f in archived["files"]) == [4, 6]
    left = (await api.get("/monitoring/logs", params={"service": "shop"})).json()["data"]["records"]
    assert len(left) == 3
    again = (await api.post("/monitoring/logs/archive", params={"days_old": 7})).json()["data"]
    assert (again["archived"], again["files"]) == (0, [])

    listing = (await api.get("/monitoring/logs/archives")).json()["data"]
    assert listing["total_records"] == 10
    assert all(f["verified"] and f["size_bytes"] > 0 and f["service"] == "shop" for f in listing["files"])

    dry = (await api.post("/monitoring/logs/cleanup", params={"days_old": 30, "dry_run": "true"})).json()["data"]
    assert [f["records"] for f in dry["files"]] == [4]
    assert (dry["deleted"], len((await api.get("/monitoring/logs/archives")).json()["data"]["files"])) == (0, 2)
    done = (await api.post("/monitoring/logs/cleanup", params={"days_old": 30})).json()["data"]
    assert done["deleted"] == 1
    assert done["freed_bytes"] > 0
    remaining = (await api.get("/monitoring/logs/archives")).json()["data"]
    assert [f["records"] for f in remaining["files"]] == [6]


async def test_archive_and_cleanup_send_mcp_progress_notifications_over_streamable_http(
    api: httpx.AsyncClient, mcp_url: str
) -> None:
    now = datetime.now(UTC)
    await ingest(api, [record(now - timedelta(days=d), service="shop") for d in (35, 20, 9)])
    progress: dict[str, list[tuple[float, float | None]]] = {"logs_archive": [], "logs_cleanup": []}
    async with mcp_client(mcp_url, ADMIN_KEY) as client:
        for name, arguments in (("logs_archive", {"days_old": 7}), ("logs_cleanup", {"days_old": 30})):

            async def on_progress(done: float, total: float | None, message: str | None, name: str = name) -> None:
                progress[name].append((done, total))

            result = await client.call_tool(name, arguments, progress_callback=on_progress)
            assert not result.is_error, result
    assert progress["logs_archive"] == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert progress["logs_cleanup"] == [(0, 1), (1, 1)]


async def test_mcp_tool_errors_name_the_field(mcp_url: str) -> None:
    async with mcp_client(mcp_url, ADMIN_KEY) as client:
        bad = await client.call_tool("logs_stats", {"hours": 0})
        good = await client.call_tool("logs_stats", {"hours": 2})
    assert bad.is_error
    assert bad.content[0].text.startswith("hours: ")
    assert good.structured_content is not None
    assert len(good.structured_content["hourly"]) == 2


async def test_dashboard_section_summarises_the_last_day(api: httpx.AsyncClient, runtime: Runtime) -> None:
    now = datetime.now(UTC)
    await ingest(api, [record(now, "ERROR", "shop", "boom"), record(now, "INFO", "shop", "fine")])
    section = await dashboard_sections()["logs"](runtime)
    assert section["errors_24h"] >= 1
    assert section["total_24h"] >= 2
    assert section["dropped_24h"] == 0


async def test_archive_over_streamable_http_answers_with_its_counts(api: httpx.AsyncClient, mcp_url: str) -> None:
    await ingest(api, [record(datetime.now(UTC) - timedelta(days=9), service="shop")])
    async with mcp_client(mcp_url, ADMIN_KEY) as client:
        result = await client.call_tool("logs_archive", {"days_old": 7})
    assert not result.is_error
    assert result.structured_content is not None
    assert result.structured_content["archived"] == 1


async def test_archive_over_stdio_sends_progress_notifications(api: httpx.AsyncClient, runtime: Runtime) -> None:
    await ingest(api, [record(datetime.now(UTC) - timedelta(days=d), service="shop") for d in (11, 10)])
    settings = runtime.settings
    env = {
        "API_KEY": ADMIN_KEY,
        "REDIS_URL": settings.redis_url or "",
        "PRISM_DATA_DIR": str(settings.data_path),
        "PRISM_KEY_PREFIX": settings.key_prefix,
        "PYTHONPATH": os.getcwd(),
    }
    params = StdioServerParameters(
        command=sys.executable, args=["-c", "from prism_mcp.cli import main; main()", "mcp", "--stdio"], env=env
    )
    progress: list[tuple[float, float | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total))

    async with Client(params) as client:
        result = await client.call_tool("logs_archive", {"days_old": 7}, progress_callback=on_progress)
    assert not result.is_error, result
    assert result.structured_content is not None
    assert result.structured_content["archived"] == 2
    assert progress == [(0, 2), (1, 2), (2, 2)]
