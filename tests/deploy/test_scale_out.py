"""PRISM scaled out on one Redis: two API, two MCP, two worker and two notifier processes side by side.

The eight processes are started once for the module (a PRISM process costs seconds to start on this machine)
with one environment: one Redis, one key prefix, the same keys. Each test spends its own API key, so the low
rate limit these processes run with (:data:`RATE_LIMIT` a minute per key) only binds where a test means it
to. The last test stops them all with SIGTERM; the fixture kills whatever a failed test left running.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import httpx2
import psutil
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from prism_mcp.alerts import fire
from prism_mcp.outbox import outbox_key
from prism_mcp.store import Store
from prism_mcp.worker.heartbeat import live_processes, read_beats
from prism_mcp.worker.schedule import ticks_between
from tests.conftest import ADMIN_KEY, free_port
from tests.deploy.replicas import Replica, Replicas, RoundRobinProxy, eventually
from tests.notify.receivers import WebhookReceiver

pytestmark = pytest.mark.slow

RATE_LIMIT = 60
BRUTE_FORCE_THRESHOLD = 4
OPERATOR_KEY = "scale-operator-key-0123456789"
# One read key per test: the rate limit counts per key, so no test spends another's budget.
KEYS = {name: f"scale-{name}-key-0123456789" for name in ("rate", "block", "shared", "worker", "mcp", "notify")}
BLOCKED_IP = "127.0.0.2"  # loopback, outside PRISM_NEVER_BLOCK (127.0.0.1/32 and ::1)
ATTACKER_IP = "127.0.0.3"
PROBE = {"probe": {"capability": "health_detailed", "cron": "* * * * * *"}}
START_SECONDS = 90
STOP_SECONDS = 20
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


@dataclass
class Deployment:
    replicas: Replicas
    store: Store
    slack: WebhookReceiver

    @property
    def api(self) -> list[str]:
        return [r.url for r in self.replicas.of("api")]

    @property
    def mcp(self) -> list[Replica]:
        return self.replicas.of("mcp")

    def pids(self, service: str) -> set[int]:
        return {r.process.pid for r in self.replicas.of(service)}


def auth(name: str) -> dict[str, str]:
    key = ADMIN_KEY if name == "admin" else OPERATOR_KEY if name == "operator" else KEYS[name]
    return {"Authorization": f"Bearer {key}"}


def _env(redis_url: str, prefix: str, data: Path, slack: WebhookReceiver) -> dict[str, str]:
    ours = {"API_KEY", "REDIS_URL"}
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("PRISM_") and k not in ours}
    return {
        **inherited,
        "REDIS_URL": redis_url,
        "API_KEY": ADMIN_KEY,
        "PRISM_OPERATOR_KEYS": OPERATOR_KEY,
        "PRISM_READ_KEYS": ",".join(KEYS.values()),
        "PRISM_KEY_PREFIX": prefix,
        "PRISM_DATA_DIR": str(data),
        "PRISM_RATE_LIMIT": f"{RATE_LIMIT}/minute",
        "PRISM_BRUTE_FORCE_THRESHOLD": str(BRUTE_FORCE_THRESHOLD),
        # A day-long rule window, so the failures of one test never straddle two windows.
        "PRISM_SECURITY_RULE_WINDOW": "86400",
        "PRISM_WORKER_DEFAULT_JOBS": "false",
        "PRISM_WORKER_JOBS": json.dumps(PROBE),
        "PRISM_WORKER_POLL_INTERVAL": "0.2",
        "PRISM_HEARTBEAT_INTERVAL": "0.5",
        "PRISM_WEBHOOK_ALLOWED_HOSTS": slack.host_port,
        "PRISM_NOTIFY_BACKOFF_SECONDS": "0.05",
        "PRISM_SAMPLE_INTERVAL": "1",
        "PRISM_LOG_LEVEL": "WARNING",
    }


async def _live_pids(store: Store, service: str) -> set[int]:
    beats = live_processes(await read_beats(store), service, time.time())
    return {int(beat.process.rsplit(":", 1)[1]) for beat in beats}


async def _drop_prefix(store: Store) -> None:
    keys = [key async for key in store.redis.scan_iter(match=store.prefix + "*", count=500)]
    if keys:
        await store.redis.unlink(*keys)


@pytest.fixture(scope="module")
async def deployment(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Deployment]:
    workdir = tmp_path_factory.mktemp("scale")
    slack = await WebhookReceiver().start()
    store = Store(redis_url, prefix=f"s{uuid.uuid4().hex[:10]}:")
    replicas = Replicas(_env(redis_url, store.prefix, workdir / "data", slack), workdir)
    try:
        for service in ("api", "api", "mcp", "mcp"):
            replicas.start(service, free_port())
        for service in ("worker", "worker", "notifier", "notifier"):
            replicas.start(service)
        await replicas.wait_listening(START_SECONDS)
        deployment = Deployment(replicas, store, slack)
        for service in ("worker", "notifier"):

            async def beating(service: str = service) -> bool:
                replicas.check_running()
                return await _live_pids(store, service) >= deployment.pids(service)

            await eventually(beating, START_SECONDS, f"both {service} heartbeats")
        yield deployment
    finally:
        await replicas.stop(STOP_SECONDS)
        await _drop_prefix(store)
        await store.close()
        await slack.stop()
    assert not [r.process.pid for r in replicas.started if psutil.pid_exists(r.process.pid)]


async def test_one_key_is_admitted_up_to_the_limit_in_total_across_both_api_replicas(deployment: Deployment) -> None:
    sent = RATE_LIMIT + 20
    answers: list[tuple[int, int]] = []
    async with httpx.AsyncClient(headers=auth("rate"), timeout=10) as client:
        for n in range(sent):
            replica = n % 2
            response = await client.get(f"{deployment.api[replica]}/monitoring/metrics")
            answers.append((replica, response.status_code))

    statuses = [status for _, status in answers]
    admitted = Counter(replica for replica, status in answers if status == 200)
    refused = Counter(replica for replica, status in answers if status == 429)
    assert statuses == [200] * RATE_LIMIT + [429] * (sent - RATE_LIMIT)
    assert admitted == {0: RATE_LIMIT // 2, 1: RATE_LIMIT // 2}
    assert refused == {0: 10, 1: 10}


async def test_an_address_blocked_through_one_replica_is_refused_by_every_api_and_mcp_replica(
    deployment: Deployment,
) -> None:
    first, second = deployment.api
    async with httpx.AsyncClient(headers=auth("admin"), timeout=10) as admin:
        blocked = await admin.post(
            f"{first}/security/ips/action", json={"action": "block", "ip_address": BLOCKED_IP, "reason": "scale-out"}
        )
    assert blocked.status_code == 200, blocked.text

    transport = httpx.AsyncHTTPTransport(local_address=BLOCKED_IP)
    async with (
        httpx.AsyncClient(transport=transport, headers=auth("block"), timeout=10) as outsider,
        httpx.AsyncClient(headers=auth("block"), timeout=10) as insider,
    ):

        async def refused(url: str, post: bool = False) -> httpx.Response | None:
            if post:
                response = await outsider.post(url, json=INIT, headers=MCP_HEADERS)
            else:
                response = await outsider.get(url)
            return response if response.status_code == 403 else None

        on_second = await eventually(lambda: refused(f"{second}/monitoring/metrics"), 10, "replica B to refuse")
        on_mcp = [await eventually(partial(refused, f"{r.url}/mcp", True), 10, r.url) for r in deployment.mcp]
        still_served = await insider.get(f"{second}/monitoring/metrics")

    assert BLOCKED_IP in on_second.json()["error"]["message"]
    assert [response.status_code for response in on_mcp] == [403, 403]
    assert still_served.status_code == 200


async def test_an_alert_raised_and_resolved_through_the_replicas_reads_the_same_on_both(deployment: Deployment) -> None:
    first, second = deployment.api
    fingerprint = f"security:brute_force:{ATTACKER_IP}"
    transport = httpx.AsyncHTTPTransport(local_address=ATTACKER_IP)
    async with httpx.AsyncClient(transport=transport, timeout=10) as attacker:
        # Half the failures on each replica: the rule counts them in Redis, so together they cross the threshold.
        for n in range(BRUTE_FORCE_THRESHOLD):
            url = deployment.api[n % 2]
            wrong = await attacker.get(f"{url}/monitoring/metrics", headers={"Authorization": "Bearer wrong-key-1"})
            assert wrong.status_code == 401

    async with httpx.AsyncClient(headers=auth("shared"), timeout=10) as reader:

        async def alert_on(url: str, status: str) -> dict[str, Any] | None:
            response = await reader.get(f"{url}/monitoring/alerts", params={"category": "security"})
            found = [a for a in response.json()["data"]["alerts"] if a["fingerprint"] == fingerprint]
            return found[0] if found and found[0]["status"] == status else None

        fired = await eventually(lambda: alert_on(second, "firing"), 15, "the brute-force alert on replica B")
        assert await alert_on(first, "firing") == fired
        async with httpx.AsyncClient(headers=auth("operator"), timeout=10) as operator:
            resolved = await operator.post(f"{first}/monitoring/alerts/resolve", json={"id": fired["id"]})
        assert resolved.status_code == 200, resolved.text
        read_back = await alert_on(second, "resolved")

    assert fired["details"]["count"] == BRUTE_FORCE_THRESHOLD
    assert read_back == resolved.json()["data"]["alert"]
    assert read_back is not None
    assert read_back["resolved_by"].startswith("key:")


async def test_notification_settings_put_through_one_replica_read_back_identically_from_the_other(
    deployment: Deployment,
) -> None:
    first, second = deployment.api
    change = {"repeat_interval_seconds": 900, "performance_alerts": False, "min_severity": "warning"}
    async with httpx.AsyncClient(headers=auth("admin"), timeout=10) as admin:
        put = await admin.put(f"{first}/notifications/settings", json=change)
        from_first = await admin.get(f"{first}/notifications/settings")
        from_second = await admin.get(f"{second}/notifications/settings")

    assert put.status_code == 200, put.text
    assert from_second.json()["data"] == from_first.json()["data"]
    assert {k: from_second.json()["data"][k] for k in change} == change


def _ticks(runs: list[dict[str, Any]]) -> list[float]:
    return [datetime.fromisoformat(run["tick"]).timestamp() for run in runs if run["tick"]]


async def _heartbeat_pids(client: httpx.AsyncClient, url: str, service: str) -> set[int]:
    response = await client.get(f"{url}/healthz/detailed")
    component = next(c for c in response.json()["data"]["components"] if c["name"] == "heartbeats")
    alive = [p["process"] for p in component["details"][service] if p["state"] == "alive"]
    return {int(process.rsplit(":", 1)[1]) for process in alive}


async def test_each_scheduled_tick_runs_exactly_once_across_two_workers(deployment: Deployment) -> None:
    first, second = deployment.api
    workers = deployment.pids("worker")
    start = time.time() + 1
    end = start + 10
    expected = list(ticks_between("* * * * * *", start, end))
    async with httpx.AsyncClient(headers=auth("worker"), timeout=10) as client:
        before = await _heartbeat_pids(client, first, "worker")

        async def window_done() -> list[dict[str, Any]] | None:
            response = await client.get(f"{first}/worker/runs", params={"job": "probe", "limit": 1000})
            runs: list[dict[str, Any]] = response.json()["data"]["runs"]
            return runs if set(_ticks(runs)) >= set(expected) else None

        # One poll a second keeps this test well inside its key's rate limit.
        runs = await eventually(window_done, 40, "a probe run for every tick of the window", every=1.0)
        after = await _heartbeat_pids(client, second, "worker")
        from_second = (await client.get(f"{second}/worker/runs", params={"job": "probe", "limit": 1000})).json()

    in_window = [run for run in runs if start < _ticks([run])[0] <= end]
    seen = [(run["tick"], run["attempt"], run["status"], run["worker"]) for run in in_window]
    assert before >= workers
    assert after >= workers
    assert sorted(_ticks(in_window)) == expected, seen
    assert all(run["status"] == "succeeded" and run["attempt"] == 1 for run in in_window), seen
    assert {int(run["worker"].rsplit(":", 1)[1]) for run in in_window} <= workers
    assert {run["run_id"] for run in runs} <= {run["run_id"] for run in from_second["data"]["runs"]}


async def test_each_alert_is_delivered_to_slack_exactly_once_with_two_notifiers(deployment: Deployment) -> None:
    slack, store = deployment.slack, deployment.store
    async with httpx.AsyncClient(headers=auth("admin"), timeout=10) as admin:
        enabled = await admin.put(
            f"{deployment.api[0]}/notifications/settings",
            json={"slack_enabled": True, "slack_webhook_url": slack.url(), "system_alerts": True},
        )
    assert enabled.status_code == 200, enabled.text
    run = uuid.uuid4().hex[:6]
    titles = [f"scale delivery {run} #{n:02d}" for n in range(12)]
    for n, title in enumerate(titles):
        await fire(
            store,
            fingerprint=f"scale:delivery:{run}:{n}",
            category="system",
            severity="warning",
            title=title,
            message="fired by the scale-out test",
            source="tests.deploy",
        )
    last_entry = (await store.redis.xrevrange(outbox_key(store), count=1))[0][0]

    async def slack_group_done() -> bool:
        groups = await store.redis.xinfo_groups(outbox_key(store))
        group = next((g for g in groups if g["name"] == "notifier-slack"), None)
        return bool(group and group["pending"] == 0 and _id(group["last-delivered-id"]) >= _id(last_entry))

    # Every entry read and acknowledged by the Slack consumers: nothing more can arrive for these alerts.
    await eventually(slack_group_done, 30, "the notifiers to acknowledge every alert on Slack")
    consumers = await store.redis.xinfo_consumers(outbox_key(store), "notifier-slack")
    arrivals = Counter(text.partition("] ")[2] for text in slack.texts())

    assert {title: arrivals[title] for title in titles} == dict.fromkeys(titles, 1)
    assert len(consumers) == 2
    assert await _live_pids(store, "notifier") >= deployment.pids("notifier")


def _id(entry_id: str) -> tuple[int, int]:
    millis, _, sequence = entry_id.partition("-")
    return int(millis), int(sequence)


async def test_an_mcp_client_served_alternately_by_both_replicas_works(deployment: Deployment) -> None:
    ports = [r.port for r in deployment.mcp if r.port is not None]
    proxy = RoundRobinProxy(ports)
    port = await proxy.start()
    # No kept-alive connections: each request of the client is a new connection, so the proxy alternates them.
    limits = httpx2.Limits(max_keepalive_connections=0)
    try:
        async with (
            httpx2.AsyncClient(headers=auth("mcp"), timeout=15, limits=limits) as http,
            Client(streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http)) as client,
        ):
            tools = await client.list_tools()
            health = await client.read_resource("prism://monitoring/health")
            called = await client.call_tool("read_resource", {"uri": "prism://monitoring/metrics"})
            again = await client.list_tools()
    finally:
        await proxy.stop()

    assert {"read_resource", "alerts_list"} <= {tool.name for tool in tools.tools}
    assert json.loads(health.contents[0].text)["overall_status"] in {"healthy", "degraded", "unhealthy"}
    assert called.is_error is False
    assert [tool.name for tool in again.tools] == [tool.name for tool in tools.tools]
    assert min(proxy.served[p] for p in ports) >= 2, proxy.served


async def test_every_replica_stops_on_sigterm_and_the_heartbeats_go_with_them(deployment: Deployment) -> None:
    codes = await deployment.replicas.stop(STOP_SECONDS)
    beats = await read_beats(deployment.store)
    ours = deployment.pids("worker") | deployment.pids("notifier")

    assert codes == dict.fromkeys(codes, 0), deployment.replicas.unclean()
    assert not [beat for beat in beats if int(beat.process.rsplit(":", 1)[1]) in ours]
    assert not [pid for pid in codes if psutil.pid_exists(pid)]
