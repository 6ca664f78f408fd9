"""The security capabilities over real servers on loopback: blocking, events, alerts, summary, audit, limits."""

from __future__ import annotations

from typing import Any

import httpx

from prism_mcp.runtime import Runtime, dashboard_sections
from prism_mcp.security.addresses import parse_network
from prism_mcp.security.blocklist import block
from prism_mcp.store import Store
from tests.conftest import ADMIN_KEY, OPERATOR_KEY, READ_KEY
from tests.mcp_client import mcp_client
from tests.security.helpers import MCP_HEADERS, MCP_INITIALIZE, bearer, client_from, events_of, eventually


async def _ip_action(api: httpx.AsyncClient, **body: Any) -> httpx.Response:
    return await api.post("/security/ips/action", json=body)


async def test_blocked_address_gets_403_on_every_port_and_unblocking_restores_access(
    api: httpx.AsyncClient, api_url: str, mcp_url: str
) -> None:
    blocked = await _ip_action(api, action="block", ip_address="127.0.0.2", reason="Suspicious activity")
    assert blocked.status_code == 200, blocked.text
    assert blocked.json()["data"]["entry"]["ip_address"] == "127.0.0.2/32"

    async with client_from("127.0.0.2", api_url, READ_KEY) as rest, client_from("127.0.0.2", mcp_url, READ_KEY) as mcp:
        refused_rest = await rest.get("/security/ips")
        refused_unknown = await rest.get("/no/such/route")
        refused_mcp = await mcp.post(mcp_url, json=MCP_INITIALIZE, headers=MCP_HEADERS)
        assert [refused_rest.status_code, refused_unknown.status_code, refused_mcp.status_code] == [403, 403, 403]
        assert refused_rest.json()["error"]["code"] == "address_blocked"
        assert refused_mcp.json()["error"]["code"] == "address_blocked"

        lifted = await _ip_action(api, action="unblock", ip_address="127.0.0.2")
        assert lifted.json()["data"]["changed"] is True
        assert (await rest.get("/security/ips")).status_code == 200
        assert (await mcp.post(mcp_url, json=MCP_INITIALIZE, headers=MCP_HEADERS)).status_code == 200

    events = await eventually(lambda: events_of(api_url, "blocked_request"))
    assert {e["details"]["port"] for e in events} == {"api", "mcp"}
    assert all(e["client_ip"] == "127.0.0.2" for e in events)
    actions = await eventually(lambda: events_of(api_url, "ip_action"))
    assert [e["details"]["action"] for e in actions] == ["unblock", "block"]


async def test_a_blocked_range_refuses_every_address_in_it(api: httpx.AsyncClient, api_url: str) -> None:
    await _ip_action(api, action="block", ip_address="127.0.0.2/31", reason="range")
    async with client_from("127.0.0.3", api_url, READ_KEY) as client:
        assert (await client.get("/security/ips")).status_code == 403


async def test_a_block_with_a_ttl_lifts_by_itself(api: httpx.AsyncClient, api_url: str) -> None:
    await _ip_action(api, action="block", ip_address="127.0.0.2", reason="short", ttl_seconds=1)
    async with client_from("127.0.0.2", api_url, READ_KEY) as client:
        assert (await client.get("/security/ips")).status_code == 403

        async def admitted() -> bool:
            return (await client.get("/security/ips")).status_code == 200

        await eventually(admitted, within=5)
    assert (await api.get("/security/ips")).json()["data"]["count"] == 0


async def test_never_block_addresses_and_bad_addresses_are_refused_with_422(api: httpx.AsyncClient) -> None:
    for target in ("127.0.0.1", "127.0.0.0/8", "::1", "0.0.0.0/0", "::ffff:127.0.0.1"):
        response = await _ip_action(api, action="block", ip_address=target, reason="x")
        assert response.status_code == 422, target
        assert "PRISM_NEVER_BLOCK" in response.json()["error"]["message"]
    bad = await _ip_action(api, action="block", ip_address="not-an-ip", reason="x")
    assert bad.status_code == 422
    assert bad.json()["error"]["details"]["field"] == "ip_address"
    assert (await api.get("/security/ips")).json()["data"]["count"] == 0


async def test_ip_actions_need_the_admin_scope(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url, headers=bearer(OPERATOR_KEY)) as client:
        response = await client.post("/security/ips/action", json={"action": "block", "ip_address": "10.1.2.3"})
    assert response.status_code == 403


async def test_scope_denial_is_403_and_a_security_event_on_rest_and_mcp(api_url: str, mcp_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url, headers=bearer(READ_KEY)) as client:
        denied = await client.post("/security/audit")
    assert denied.status_code == 403
    async with mcp_client(mcp_url, READ_KEY) as mcp:
        result = await mcp.call_tool("security_audit", {})
    assert result.is_error

    async def both_surfaces() -> list[dict[str, Any]] | None:
        events = await events_of(api_url, "scope_denied")
        return events if {e["details"]["surface"] for e in events} == {"rest", "mcp"} else None

    events = await eventually(both_surfaces)
    assert all(e["principal"].startswith("k:") and e["client_ip"] == "127.0.0.1" for e in events)


async def test_events_filter_by_type_and_since_and_bound_the_limit(api: httpx.AsyncClient, api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url) as anonymous:
        for _ in range(3):
            await anonymous.get("/security/ips", headers=bearer("wrong"))
    failures = await eventually(lambda: events_of(api_url, "auth_failure"))
    assert len(failures) == 3
    assert len((await api.get("/security/events", params={"limit": 2})).json()["data"]["events"]) == 2
    later = await api.get("/security/events", params={"since": "2999-01-01T00:00:00Z"})
    assert later.json()["data"]["count"] == 0
    for limit in (0, 1001):
        response = await api.get("/security/events", params={"limit": limit})
        assert response.status_code == 422
        assert response.json()["error"]["details"]["field"] == "limit"


async def test_rate_limits_list_each_client_and_reset_clears_it(api: httpx.AsyncClient, api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url, headers=bearer(READ_KEY)) as reader:
        for _ in range(4):
            assert (await reader.get("/security/ips")).status_code == 200

    async def listed() -> dict[str, Any] | None:
        clients = (await api.get("/security/rate-limits")).json()["data"]["clients"]
        return next((c for c in clients if c["hits"] == 4), None)

    reader_stats = await eventually(listed)
    assert reader_stats["limit_name"] == "requests"
    assert reader_stats["client"].startswith("key:")
    reset = await api.post("/security/rate-limits/reset", json={"client": reader_stats["client"]})
    assert reset.json()["data"]["cleared"] == [reader_stats["client"]]
    after = (await api.get("/security/rate-limits")).json()["data"]
    assert next(c for c in after["clients"] if c["client"] == reader_stats["client"])["hits"] == 0
    assert after["backend"] == "redis"
    everything = await api.post("/security/rate-limits/reset")
    assert everything.json()["data"]["count"] >= 2


async def test_summary_counts_events_offenders_blocks_and_alerts(
    api: httpx.AsyncClient, api_url: str, mcp_url: str
) -> None:
    async with client_from("127.0.0.2", api_url) as stranger:
        for _ in range(2):
            await stranger.get("/security/ips", headers=bearer("wrong"))
    await _ip_action(api, action="block", ip_address="10.9.8.0/24", reason="test")

    async def counted() -> dict[str, Any] | None:
        data: dict[str, Any] = (await api.get("/security/summary")).json()["data"]
        return data if data["events_by_type"].get("auth_failure") == 2 else None

    summary = await eventually(counted)
    assert summary["events_by_severity"]["warning"] >= 2
    assert summary["top_offenders"][0] == {"ip_address": "127.0.0.2", "events": 2}
    assert [b["ip_address"] for b in summary["blocked"]] == ["10.9.8.0/24"]
    async with mcp_client(mcp_url, READ_KEY) as mcp:
        resource = await mcp.read_resource("prism://security/summary")
    assert '"auth_failure":2' in resource.contents[0].text  # type: ignore[union-attr]


async def test_audit_stores_a_report_with_the_summary_and_recent_events(api_url: str, runtime: Runtime) -> None:
    async with httpx.AsyncClient(base_url=api_url, headers=bearer(OPERATOR_KEY)) as operator:
        await operator.get("/security/ips", headers=bearer("wrong"))
        await eventually(lambda: events_of(api_url, "auth_failure"))
        response = await operator.post("/security/audit")
    report = response.json()["data"]
    assert response.status_code == 200
    assert report["id"].startswith("audit-")
    assert report["summary"]["events_by_type"]["auth_failure"] == 1
    assert any("failed authentication" in finding for finding in report["findings"])
    stored = await runtime.store.redis.lrange(runtime.store.key("security", "audits"), 0, -1)
    assert [report["id"] in raw for raw in stored] == [True]


async def test_resolving_an_unknown_security_alert_is_404(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url, headers=bearer(OPERATOR_KEY)) as operator:
        response = await operator.post("/security/alerts/resolve", json={"alert_id": "al-000000000000"})
    assert response.status_code == 404
    assert "GET /security/alerts" in response.json()["error"]["message"]


async def test_dashboard_section_and_health_report_the_security_state(api: httpx.AsyncClient, runtime: Runtime) -> None:
    await _ip_action(api, action="block", ip_address="10.0.0.9", reason="x")
    section = await dashboard_sections()["security"](runtime)
    assert section["blocked"] == 1
    assert section["rate_limiter"] == "redis"
    health = (await api.get("/healthz/detailed")).json()["data"]
    assert {"name": "security", "status": "healthy"}.items() <= next(
        c for c in health["components"] if c["name"] == "security"
    ).items()
    assert ADMIN_KEY not in str(section)


async def test_a_block_made_by_another_process_reaches_this_one(api_url: str, runtime: Runtime) -> None:
    other_store = Store(runtime.store.url, prefix=runtime.store.prefix)
    other = Runtime(runtime.settings, other_store, services=frozenset())
    await block(other, parse_network("127.0.0.2"), reason="from a replica", ttl_seconds=None, by="replica")
    await other_store.close()
    async with client_from("127.0.0.2", api_url, READ_KEY) as client:

        async def refused() -> bool:
            return (await client.get("/security/ips")).status_code == 403

        await eventually(refused, within=5)
