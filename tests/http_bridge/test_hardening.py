"""Hardening at the doors: body caps, no CORS, security headers, unforgeable log lines, no secret anywhere."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import httpx
import pytest

from prism_mcp.capability import registry
from prism_mcp.logsetup import json_formatter
from prism_mcp.runtime import Runtime
from prism_mcp.security_events import read_events
from tests.conftest import ADMIN_KEY, OPERATOR_KEY, READ_KEY
from tests.mcp_client import mcp_client
from tests.security.helpers import MCP_HEADERS, MCP_INITIALIZE, bearer, eventually

SECRETS = (ADMIN_KEY, OPERATOR_KEY, READ_KEY)
CLIENT_LOGGERS = ("httpx", "httpcore", "httpx2", "mcp.client")
TOO_BIG = b'{"x": "' + b"a" * (1_048_576 + 10) + b'"}'


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """Every log record of the servers, as the JSON lines PRISM writes, for the length of the test.

    The test's own HTTP clients (httpx, httpcore) log the URLs they request, keys in query strings included;
    they are the caller, not PRISM, and are left out.
    """
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    handler.addFilter(lambda record: not record.name.startswith(CLIENT_LOGGERS))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


async def test_request_bodies_over_the_cap_get_413_on_rest_and_mcp(api: httpx.AsyncClient, mcp_url: str) -> None:
    rest = await api.post("/security/audit", content=TOO_BIG, headers={"Content-Type": "application/json"})
    async with httpx.AsyncClient(headers={**bearer(ADMIN_KEY), **MCP_HEADERS}) as client:
        mcp = await client.post(mcp_url, content=TOO_BIG)
    assert (rest.status_code, rest.json()["error"]["code"]) == (413, "payload_too_large")
    assert mcp.status_code == 413


async def test_no_cors_headers_are_sent_to_another_origin(api_url: str, mcp_url: str) -> None:
    origin = {"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"}
    async with httpx.AsyncClient(headers=bearer(READ_KEY)) as client:
        answers = [
            await client.get(f"{api_url}/security/ips", headers=origin),
            await client.options(f"{api_url}/security/ips", headers=origin),
            await client.post(mcp_url, json=MCP_INITIALIZE, headers={**MCP_HEADERS, **origin}),
            await client.options(mcp_url, headers=origin),
        ]
    for response in answers:
        assert not [name for name in response.headers if name.lower().startswith("access-control-")], response


async def test_security_headers_on_json_html_and_mcp_answers(api: httpx.AsyncClient, mcp_url: str) -> None:
    data = await api.get("/security/ips")
    page = await api.get("/docs")
    missing = await api.get("/nowhere")
    async with httpx.AsyncClient(headers={**bearer(READ_KEY), **MCP_HEADERS}) as client:
        mcp = await client.post(mcp_url, json=MCP_INITIALIZE)
    for response in (data, page, missing, mcp):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
    assert data.headers["Cache-Control"] == "no-store"
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]


async def test_cr_lf_and_nul_in_paths_and_queries_cannot_forge_log_lines_or_events(
    api: httpx.AsyncClient, runtime: Runtime, captured_logs: io.StringIO
) -> None:
    forged = '%0d%0a{"level":"ERROR","event":"forged"}%00'
    await api.get(f"/..%2f..%2fetc/{forged}", params={"q": 'x\r\n{"event": "forged"}\x00'})
    await api.get("/security/events", params={"type": "a\r\nb\x00' OR 1=1--"})

    events = await eventually(lambda: read_events(runtime.store, type="suspicious_request"))
    lines = [line for line in captured_logs.getvalue().splitlines() if line]
    assert any(json.loads(line)["event"] == "suspicious_request" for line in lines)
    for line in lines:
        assert isinstance(json.loads(line), dict)
        assert not line.startswith('{"level":"ERROR","event":"forged"')
    for event in events:
        assert not any(c in event.message + json.dumps(event.details) for c in "\r\n\x00")


async def test_no_key_appears_in_any_response_log_line_metric_or_event(
    api_url: str, mcp_url: str, runtime: Runtime, captured_logs: io.StringIO
) -> None:
    seen: list[str] = []
    async with httpx.AsyncClient(base_url=api_url, headers=bearer(ADMIN_KEY)) as admin:
        for secret in SECRETS:
            seen.append((await admin.get("/security/ips", headers={"Authorization": f"Basic {secret}"})).text)
            seen.append((await admin.get("/nowhere", params={"api_key": secret, "q": "../etc"})).text)
            seen.append((await admin.get("/security/ips", headers=bearer(secret + "x"))).text)
        await admin.post("/security/audit")
        for cap in registry:
            if cap.method == "GET":
                response = await admin.get(cap.path)
                seen.append(response.text + json.dumps(dict(response.headers)))
        seen.append((await admin.get("/metrics/")).text)
        seen.append((await admin.get("/openapi.json")).text)
    async with mcp_client(mcp_url, ADMIN_KEY) as mcp:
        seen.append(str(await mcp.list_tools()))
        seen.append(str(await mcp.call_tool("security_events", {"limit": 1000})))
    events = await read_events(runtime.store, limit=1000)
    seen.append(json.dumps([event.model_dump(mode="json") for event in events]))
    seen.append(captured_logs.getvalue())
    everything = "\n".join(seen)
    assert "auth_failure" in everything
    for secret in SECRETS:
        at = everything.find(secret)
        assert at < 0, everything[max(0, at - 400) : at + 100]
