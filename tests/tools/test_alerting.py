"""Alert capabilities over REST: list with filters and bounds, resolve by id with the operate scope."""

from __future__ import annotations

import httpx

from prism_mcp import alerts
from prism_mcp.runtime import Runtime
from tests.conftest import OPERATOR_KEY, READ_KEY


async def _fire(runtime: Runtime, fingerprint: str, category: alerts.AlertCategory) -> str:
    alert, _ = await alerts.fire(
        runtime.store,
        fingerprint=fingerprint,
        category=category,
        severity="warning",
        title="t",
        message="m",
        source="test",
    )
    return alert.id


async def test_alerts_list_filters_by_status_and_category(runtime: Runtime, api: httpx.AsyncClient) -> None:
    system = await _fire(runtime, "test:system", "system")
    security = await _fire(runtime, "test:security", "security")
    await alerts.resolve(runtime.store, security, by="test")

    firing = (await api.get("/monitoring/alerts", params={"status": "firing"})).json()["data"]
    secure = (await api.get("/monitoring/alerts", params={"category": "security"})).json()["data"]
    unfiltered = (await api.get("/monitoring/alerts", params={"status": "", "category": ""})).json()["data"]
    one = (await api.get("/monitoring/alerts", params={"limit": 1})).json()["data"]

    assert [a["id"] for a in firing["alerts"]] == [system]
    assert [(a["id"], a["status"]) for a in secure["alerts"]] == [(security, "resolved")]
    assert (unfiltered["count"], unfiltered["firing"]) == (2, 1)
    assert one["count"] == 1


async def test_alerts_list_limit_outside_1_to_1000_is_refused_naming_the_field(api: httpx.AsyncClient) -> None:
    for limit in (0, 1001):
        response = await api.get("/monitoring/alerts", params={"limit": limit})
        assert response.status_code == 422
        assert response.json()["error"]["details"]["field"] == "limit"


async def test_an_operator_resolves_an_alert_by_id_and_a_reader_may_not(runtime: Runtime, api_url: str) -> None:
    aid = await _fire(runtime, "test:resolve", "performance")
    async with httpx.AsyncClient(base_url=api_url, headers={"Authorization": f"Bearer {READ_KEY}"}) as reader:
        refused = await reader.post("/monitoring/alerts/resolve", json={"id": aid})
    async with httpx.AsyncClient(base_url=api_url, headers={"Authorization": f"Bearer {OPERATOR_KEY}"}) as operator:
        first = await operator.post("/monitoring/alerts/resolve", params={"id": aid})
        again = await operator.post("/monitoring/alerts/resolve", json={"id": aid})
        unknown = await operator.post("/monitoring/alerts/resolve", json={"id": "al-000000000000"})
        malformed = await operator.post("/monitoring/alerts/resolve", json={"id": "prism:alerts:doc:x"})

    assert refused.status_code == 403
    body = first.json()["data"]
    assert (body["alert"]["status"], body["was_firing"]) == ("resolved", True)
    assert body["alert"]["resolved_by"] != ""
    assert again.json()["data"]["was_firing"] is False
    assert unknown.status_code == 404
    assert malformed.status_code == 422
    assert (await alerts.get_alert(runtime.store, aid)).status == "resolved"  # type: ignore[union-attr]


async def test_evaluate_needs_the_operate_scope(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url, headers={"Authorization": f"Bearer {READ_KEY}"}) as reader:
        refused = await reader.post("/monitoring/evaluate")
    async with httpx.AsyncClient(base_url=api_url, headers={"Authorization": f"Bearer {OPERATOR_KEY}"}) as operator:
        done = await operator.post("/monitoring/evaluate")
    assert refused.status_code == 403
    measures = [m["measure"] for m in done.json()["data"]["measures"]]
    assert measures == ["cpu", "memory", "disk", "response_time", "error_rate"]
