"""Client addresses behind trusted proxies: the rightmost untrusted X-Forwarded-For hop, and only then."""

from __future__ import annotations

import httpx
import pytest

from prism_mcp.config import Settings
from prism_mcp.runtime import Runtime
from prism_mcp.security.addresses import resolve_client
from tests.security.helpers import bearer


@pytest.fixture
def settings(settings: Settings) -> Settings:
    update = {"trusted_proxies": ["127.0.0.1", "10.0.0.0/8"], "auth_failure_limit": "3/minute"}
    return settings.model_copy(update=update)


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("127.0.0.1", "203.0.113.7", "203.0.113.7"),
        ("127.0.0.1", "6.6.6.6, 203.0.113.7, 10.1.1.1", "203.0.113.7"),
        ("127.0.0.1", "10.1.1.1, 10.2.2.2", "10.1.1.1"),
        ("127.0.0.1", "203.0.113.7, garbage", "127.0.0.1"),
        ("127.0.0.1", "", "127.0.0.1"),
        ("127.0.0.5", "203.0.113.7", "127.0.0.5"),
        ("::ffff:127.0.0.1", "2001:db8::1", "2001:db8::1"),
    ],
)
async def test_client_address_is_the_rightmost_untrusted_hop_behind_a_trusted_peer(
    runtime: Runtime, peer: str, forwarded: str, client: str
) -> None:
    assert resolve_client(runtime, peer, {"x-forwarded-for": forwarded}) == client


async def test_clients_behind_a_trusted_proxy_are_limited_one_by_one(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url, headers=bearer("wrong")) as client:
        first = [(await client.get("/security/ips", headers={"X-Forwarded-For": "203.0.113.1"})).status_code]
        first += [(await client.get("/security/ips", headers={"X-Forwarded-For": "203.0.113.1"})).status_code]
        first += [(await client.get("/security/ips", headers={"X-Forwarded-For": "203.0.113.1"})).status_code]
        first += [(await client.get("/security/ips", headers={"X-Forwarded-For": "203.0.113.1"})).status_code]
        other = await client.get("/security/ips", headers={"X-Forwarded-For": "203.0.113.2"})
    assert first == [401, 401, 401, 429]
    assert other.status_code == 401
