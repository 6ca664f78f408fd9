"""PRISM-NOTIFIER throughput and latency against a bare httpx loop posting to the same local webhook.

    .venv/bin/python bench/bench_notifications.py --alerts 300 --repeats 1000

Everything runs in one process on loopback: a Starlette webhook receiver, the notifier, and the producer. Uses
REDIS_URL when set, otherwise an embedded Valkey in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from prism_mcp.alerts import fire
from prism_mcp.config import load_settings
from prism_mcp.notify import ledger
from prism_mcp.notify.settings import NotificationSettings, settings_key
from prism_mcp.runtime import Runtime
from prism_mcp.serving import Listener, start_server
from prism_mcp.store import EmbeddedValkey, Store
from prism_mcp.tools import load_all

arrivals: dict[str, float] = {}


async def hook(request: Request) -> Response:
    body = await request.json()
    arrivals[str(body.get("text", ""))] = time.perf_counter()
    return Response("ok")


async def _true(value: bool) -> bool:
    return value


async def poll(check: Callable[[], Awaitable[bool]], limit_seconds: float = 120.0) -> None:
    """Wait for ``check`` (bounded: a benchmark that cannot finish reports what it got)."""
    deadline = time.monotonic() + limit_seconds
    while True:
        if await check() or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.01)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def bare(client: httpx.AsyncClient, url: str, count: int) -> list[float]:
    latencies = []
    for n in range(count):
        started = time.perf_counter()
        await client.post(url, json={"text": f"bare-{n}"})
        latencies.append(time.perf_counter() - started)
    return latencies


async def run(args: argparse.Namespace, redis_url: str) -> None:
    load_all()
    port = 18000 + os.getpid() % 1000
    app = Starlette(routes=[Route("/{path:path}", hook, methods=["POST"])])
    server, task = await start_server(Listener("hook", app, "127.0.0.1", port))
    url = f"http://127.0.0.1:{port}/services/T/B/bench"
    settings = load_settings(
        API_KEY="bench-key-0123456789",
        REDIS_URL=redis_url,
        PRISM_KEY_PREFIX=f"bench{uuid.uuid4().hex[:6]}:",
        PRISM_WEBHOOK_ALLOWED_HOSTS=f"127.0.0.1:{port}",
    )
    store = Store(redis_url, prefix=settings.key_prefix)
    config = NotificationSettings(slack_enabled=True, slack_webhook_url=url)
    await store.redis.set(settings_key(store), config.model_dump_json())
    notifier = Runtime(settings, Store(redis_url, prefix=settings.key_prefix), services=frozenset({"notifier"}))
    await notifier.start()

    async with httpx.AsyncClient(timeout=10) as client:
        bare_latencies = await bare(client, url, args.alerts)

    published: dict[str, float] = {}
    started = time.perf_counter()
    for n in range(args.alerts):
        title = f"bench-{n}"
        published[f":red_circle: [CRITICAL] {title}"] = time.perf_counter()
        await fire(
            store,
            fingerprint=f"bench:{n}",
            category="system",
            severity="critical",
            title=title,
            message="m",
            source="bench",
        )
    await poll(lambda: _true(all(k in arrivals for k in published)))
    elapsed = time.perf_counter() - started
    latencies = [arrivals[k] - t for k, t in published.items() if k in arrivals]

    one_by_one = []
    for n in range(args.sequential):
        key = f":red_circle: [CRITICAL] seq-{n}"
        sent = time.perf_counter()
        await fire(
            store,
            fingerprint=f"seq:{n}",
            category="system",
            severity="critical",
            title=f"seq-{n}",
            message="m",
            source="bench",
        )
        await poll(lambda key=key: _true(key in arrivals), limit_seconds=10)
        if key in arrivals:
            one_by_one.append(arrivals[key] - sent)

    repeat_started = time.perf_counter()
    for _ in range(args.repeats):
        await fire(
            store,
            fingerprint="bench:repeat",
            category="system",
            severity="critical",
            title="repeat",
            message="m",
            source="bench",
        )

    async def all_suppressed() -> bool:
        return (await ledger.stats(store)).get("suppressed", 0) >= args.repeats - 1

    await poll(all_suppressed)
    repeat_elapsed = time.perf_counter() - repeat_started

    print(
        f"bare httpx POST: median {statistics.median(bare_latencies) * 1000:.2f} ms, "
        f"p99 {percentile(bare_latencies, 0.99) * 1000:.2f} ms, {args.alerts / sum(bare_latencies):.0f} req/s"
    )
    print(
        f"notifier fire->webhook: delivered {len(latencies)}/{args.alerts}, "
        f"median {statistics.median(latencies) * 1000:.2f} ms, p99 {percentile(latencies, 0.99) * 1000:.2f} ms, "
        f"{len(latencies) / elapsed:.0f} alerts/s"
    )
    print(
        f"notifier fire->webhook one at a time: median {statistics.median(one_by_one) * 1000:.2f} ms, "
        f"p99 {percentile(one_by_one, 0.99) * 1000:.2f} ms ({len(one_by_one)} alerts)"
    )
    print(
        f"dedupe: {args.repeats} fires of one alert handled in {repeat_elapsed:.2f} s "
        f"({args.repeats / repeat_elapsed:.0f} fires/s end to end, one notification)"
    )

    await notifier.stop()
    keys = [k async for k in store.redis.scan_iter(match=settings.key_prefix + "*", count=500)]
    if keys:
        await store.redis.unlink(*keys)
    await store.close()
    server.should_exit = True
    await task


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--alerts", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=1000)
    parser.add_argument("--sequential", type=int, default=50)
    args = parser.parse_args()
    args.alerts = max(1, min(args.alerts, 5000))
    args.repeats = max(2, min(args.repeats, 20000))
    args.sequential = max(1, min(args.sequential, 1000))
    redis_url = os.environ.get("REDIS_URL")
    if redis_url:
        asyncio.run(run(args, redis_url))
        return
    with tempfile.TemporaryDirectory() as tmp:
        valkey = EmbeddedValkey(Path(tmp))
        try:
            asyncio.run(run(args, valkey.start()))
        finally:
            valkey.stop()


if __name__ == "__main__":
    main()
