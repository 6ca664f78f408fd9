"""``GET /metrics/``: a real scrape passes promtool, labels stay bounded, Redis reachability is reported."""

from __future__ import annotations

import asyncio
import re
import shutil
import uuid
from pathlib import Path

import httpx

from prism_mcp import alerts
from prism_mcp.promexport import render
from prism_mcp.runtime import Runtime
from prism_mcp.store import EmbeddedValkey, Store
from tests.conftest import ADMIN_KEY


def _series(text: str) -> set[str]:
    return {line.rsplit(" ", 1)[0] for line in text.splitlines() if line and not line.startswith("#")}


def _value(text: str, series: str) -> float:
    match = re.search("^" + re.escape(series) + r" (\S+)$", text, re.MULTILINE)
    assert match is not None, series
    return float(match.group(1))


async def _scrape(api_url: str) -> str:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{api_url}/metrics/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def _pipelined_gets(api_url: str, paths: list[str], batch: int = 500) -> list[int]:
    """Send GETs pipelined on one kept-alive connection; returns the statuses."""
    host, port = api_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    statuses: list[int] = []
    try:
        for start in range(0, len(paths), batch):
            chunk = paths[start : start + batch]
            writer.write(b"".join(f"GET {p} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode() for p in chunk))
            await writer.drain()
            for _ in chunk:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                length = re.search(rb"content-length: (\d+)", head, re.IGNORECASE)
                assert length is not None
                await reader.readexactly(int(length.group(1)))
                statuses.append(int(head.split()[1]))
    finally:
        writer.close()
        await writer.wait_closed()
    return statuses


async def test_a_real_scrape_passes_promtool_check_metrics(
    runtime: Runtime, api_url: str, api: httpx.AsyncClient
) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: ./scripts/test installs Debian's prometheus package, which provides it"
    await alerts.fire(
        runtime.store,
        fingerprint="test:disk",
        category="system",
        severity="critical",
        title="t",
        message="m",
        source="test",
    )
    await api.get("/monitoring/metrics")
    await api.get("/monitoring/alerts", params={"limit": 0})
    await api.get("/no/such/route")
    text = await _scrape(api_url)

    process = await asyncio.create_subprocess_exec(
        promtool,
        "check",
        "metrics",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(text.encode()), 30)

    assert (process.returncode, output.decode()) == (0, "")
    assert _value(text, 'prism_requests_total{capability="monitoring_metrics",status="200",surface="rest"}') == 1
    assert _value(text, 'prism_requests_total{capability="alerts_list",status="422",surface="rest"}') == 1
    assert _value(text, 'prism_http_requests_total{method="GET",route="unmatched",status="404"}') == 1
    assert _value(text, 'prism_alerts_firing{category="system",severity="critical"}') == 1
    assert _value(text, "prism_redis_up") == 1
    assert 0 <= _value(text, "prism_system_memory_usage_ratio") <= 1


async def test_ten_thousand_requests_to_random_unknown_paths_add_no_series(api_url: str) -> None:
    await _pipelined_gets(api_url, ["/warm-up"])
    await _scrape(api_url)
    before = await _scrape(api_url)

    paths = [f"/{uuid.uuid4().hex}/10.{n % 250}.{n // 250 % 250}.7/api_key=s3cr3t{n}" for n in range(10_000)]
    statuses = await _pipelined_gets(api_url, paths)
    after = await _scrape(api_url)

    assert set(statuses) == {404}
    assert _series(after) == _series(before)
    unmatched = 'prism_http_requests_total{method="GET",route="unmatched",status="404"}'
    assert _value(after, unmatched) - _value(before, unmatched) == 10_000
    assert "s3cr3t" not in after
    assert "10.1.0.7" not in after


async def test_no_key_or_raw_path_reaches_a_label(api_url: str, api: httpx.AsyncClient) -> None:
    await api.get("/monitoring/metrics", params={"probe": "raw-query-value"})
    async with httpx.AsyncClient(headers={"Authorization": "Bearer not-a-key-zzz"}) as client:
        await client.get(f"{api_url}/monitoring/health")
    text = await _scrape(api_url)
    assert ADMIN_KEY not in text
    assert "not-a-key-zzz" not in text
    assert "raw-query-value" not in text
    assert _value(text, 'prism_http_requests_total{method="GET",route="/monitoring/health",status="401"}') == 1


async def test_redis_going_down_shows_as_redis_up_zero(runtime: Runtime, tmp_path: Path) -> None:
    valkey = EmbeddedValkey(tmp_path / "own")
    url = await asyncio.to_thread(valkey.start)
    own = Runtime(runtime.settings, Store(url, prefix="t:", timeout=1.0), services=frozenset({"cli"}))
    try:
        up = (await render(own)).decode()
        await asyncio.to_thread(valkey.stop)
        down = (await render(own)).decode()
    finally:
        await own.store.close()
        await asyncio.to_thread(valkey.stop)
    assert _value(up, "prism_redis_up") == 1
    assert _value(down, "prism_redis_up") == 0
    assert "prism_alerts_firing" not in down
