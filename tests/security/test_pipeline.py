"""Alert rules on security events: brute force, rate-limit storms, scanning, suspicious payloads, auto-block."""

from __future__ import annotations

import httpx
import pytest

from prism_mcp.alerts import Alert, list_alerts
from prism_mcp.config import Settings
from prism_mcp.runtime import Runtime
from prism_mcp.security_events import SecurityEvent
from tests.conftest import OPERATOR_KEY, READ_KEY
from tests.security.helpers import bearer, client_from, eventually, stored_events


@pytest.fixture
def settings(settings: Settings) -> Settings:
    update = {
        "brute_force_threshold": 3,
        "scan_threshold": 3,
        "rate_limit_storm_threshold": 2,
        "rate_limit": "2/minute",
        "auto_block": True,
        "auto_block_ttl": 60,
    }
    return settings.model_copy(update=update)


# Each key may make two calls a minute here (for the storm rule), so the tests read state from Redis directly.
async def _security_alert(runtime: Runtime, fingerprint: str) -> Alert | None:
    alerts = await list_alerts(runtime.store, status="firing", category="security")
    return next((a for a in alerts if a.fingerprint == fingerprint), None)


async def test_brute_force_raises_a_critical_alert_and_auto_blocks_the_address(api_url: str, runtime: Runtime) -> None:
    async with client_from("127.0.0.2", api_url) as attacker:
        for _ in range(3):
            assert (await attacker.get("/security/ips", headers=bearer("guess"))).status_code == 401

        alert = await eventually(lambda: _security_alert(runtime, "security:brute_force:127.0.0.2"))
        assert (alert.category, alert.severity) == ("security", "critical")
        assert alert.details["count"] == 3

        async def refused() -> bool:
            return (await attacker.get("/security/ips", headers=bearer(READ_KEY))).status_code == 403

        await eventually(refused)
    async with httpx.AsyncClient(base_url=api_url, headers=bearer(OPERATOR_KEY)) as operator:
        blocked = (await operator.get("/security/ips")).json()["data"]["blocked"]
        assert [(b["ip_address"], b["blocked_by"]) for b in blocked] == [("127.0.0.2/32", "auto-block")]
        assert blocked[0]["expires_at"] is not None
        resolved = await operator.post("/security/alerts/resolve", json={"alert_id": alert.id})
        assert resolved.json()["data"]["status"] == "resolved"
        assert await _security_alert(runtime, "security:brute_force:127.0.0.2") is None


async def test_many_404s_from_one_address_raise_a_scanning_alert(api_url: str, runtime: Runtime) -> None:
    async with client_from("127.0.0.3", api_url) as scanner:
        for path in ("/wp-login.php", "/.env", "/admin"):
            assert (await scanner.get(path)).status_code == 404
    alert = await eventually(lambda: _security_alert(runtime, "security:scanning:127.0.0.3"))
    assert alert.severity == "warning"


async def test_a_rate_limit_storm_raises_an_alert(api_url: str, runtime: Runtime) -> None:
    async with client_from("127.0.0.4", api_url, READ_KEY) as client:
        statuses = [(await client.get("/security/ips")).status_code for _ in range(4)]
    assert statuses == [200, 200, 429, 429]
    await eventually(lambda: _security_alert(runtime, "security:rate_limit_storm:127.0.0.4"))


async def test_suspicious_payloads_are_recorded_and_raise_an_alert(api_url: str, runtime: Runtime) -> None:
    async with client_from("127.0.0.5", api_url, READ_KEY) as client:
        await client.get("/security/events", params={"type": "x' OR 1=1--"})
        await client.get("/%2e%2e/%2e%2e/etc/passwd")
        await client.get("/security/ips", headers={"User-Agent": "sqlmap/1.8"})

    async def three() -> list[SecurityEvent] | None:
        events = await stored_events(runtime, "suspicious_request")
        return events if len(events) == 3 else None

    events = await eventually(three)
    kinds = {kind for event in events for kind in event.details["kinds"]}
    assert {"sql_injection", "path_traversal", "scanner_user_agent"} <= kinds
    assert all(e.client_ip == "127.0.0.5" for e in events)
    await eventually(lambda: _security_alert(runtime, "security:suspicious_payload:127.0.0.5"))
