"""The REST bridge over a real uvicorn server on loopback."""

from __future__ import annotations

import httpx

from prism_mcp.capability import registry
from tests.conftest import READ_KEY


async def test_healthz_is_public_and_enveloped(api_url: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{api_url}/healthz")
    body = response.json()
    assert response.status_code == 200
    assert body["success"] is True
    assert body["data"]["status"] == "ok"
    assert body["timestamp"].endswith("Z")


async def test_guide_reads_overall_status_and_cpu_percent(api: httpx.AsyncClient) -> None:
    health = (await api.get("/monitoring/health")).json()
    metrics = (await api.get("/monitoring/metrics")).json()
    assert health["data"]["overall_status"] in {"healthy", "degraded", "unhealthy"}
    assert 0.0 <= metrics["data"]["cpu_percent"] <= 100.0


async def test_every_registry_route_refuses_a_missing_or_wrong_key(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url) as client:
        for cap in registry:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {READ_KEY}"}):
                response = await client.request(cap.method, cap.path, headers=headers)
                assert response.status_code == 401, (cap.name, headers)
                assert response.json()["error"]["message"] == "Invalid API key"


async def test_bad_input_gets_422_naming_the_field(api: httpx.AsyncClient) -> None:
    response = await api.get("/resources/read", params={"uri": "file:///etc/passwd"})
    error = response.json()["error"]
    assert response.status_code == 422
    assert error["details"]["field"] == "uri"
    assert error["message"].startswith("uri: ")


async def test_unknown_route_and_method_answer_in_the_envelope(api: httpx.AsyncClient) -> None:
    missing = await api.get("/no/such/route")
    wrong = await api.delete("/monitoring/health")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (405, "method_not_allowed")
