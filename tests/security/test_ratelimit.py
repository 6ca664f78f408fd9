"""Rate limits at the gate: exact under concurrency, per key across ports, per address for failed keys."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from prism_mcp.config import Settings
from prism_mcp.runtime import Runtime
from tests.conftest import READ_KEY
from tests.security.helpers import MCP_HEADERS, MCP_INITIALIZE, bearer, eventually, stored_events


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"rate_limit": "100/minute", "auth_failure_limit": "5/minute"})


async def test_a_thousand_concurrent_requests_against_a_limit_of_100_admit_exactly_100(api_url: str) -> None:
    # Twenty clients of fifty requests each: one httpx pool serving a thousand waiters is slow on its own.
    async def fifty() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=api_url, headers=bearer(READ_KEY), timeout=30) as client:
            return await asyncio.gather(*(client.get("/monitoring/metrics") for _ in range(50)))

    responses = [r for batch in await asyncio.gather(*(fifty() for _ in range(20))) for r in batch]
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 100
    assert statuses.count(429) == 900
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.json()["error"]["message"] == "Rate limit exceeded"
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["X-RateLimit-Limit"] == "100"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert int(refused.headers["X-RateLimit-Reset"]) > 0


async def test_admitted_requests_carry_the_rate_limit_headers(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url, headers=bearer(READ_KEY)) as client:
        first, second = await client.get("/security/ips"), await client.get("/security/ips")
    assert (first.headers["X-RateLimit-Limit"], first.headers["X-RateLimit-Remaining"]) == ("100", "99")
    assert second.headers["X-RateLimit-Remaining"] == "98"


async def test_a_key_over_its_limit_on_rest_is_over_it_on_mcp_too(api_url: str, mcp_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url, headers=bearer(READ_KEY)) as client:
        await asyncio.gather(*(client.get("/security/ips") for _ in range(100)))
        response = await client.post(mcp_url, json=MCP_INITIALIZE, headers=MCP_HEADERS)
    assert response.status_code == 429
    assert response.json()["error"]["message"] == "Rate limit exceeded"
    assert int(response.headers["Retry-After"]) >= 1
    assert response.headers["X-RateLimit-Remaining"] == "0"


async def test_rotating_x_forwarded_for_from_an_untrusted_peer_does_not_escape_the_failure_limit(
    api_url: str, runtime: Runtime
) -> None:
    async with httpx.AsyncClient(base_url=api_url) as client:
        statuses = [
            (
                await client.get("/security/ips", headers={**bearer("wrong"), "X-Forwarded-For": f"198.51.100.{i}"})
            ).status_code
            for i in range(12)
        ]
        with_the_right_key = await client.get("/security/ips", headers=bearer(READ_KEY))
    assert statuses == [401] * 5 + [429] * 7, statuses
    assert with_the_right_key.status_code == 429
    limited = await eventually(lambda: stored_events(runtime, "rate_limited"))
    assert {e.client_ip for e in limited} == {"127.0.0.1"}


async def test_a_key_in_the_query_string_is_refused_and_counts_as_a_failure(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url) as client:
        statuses = [(await client.get("/security/ips", params={"api_key": READ_KEY})).status_code for _ in range(6)]
    assert statuses == [401] * 5 + [429]
