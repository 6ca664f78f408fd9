"""Security bench: what the doors cost per request, and a flood of wrong keys (loopback only, bounded).

    .venv/bin/python bench/bench_security.py            # embedded Valkey, or REDIS_URL when set

1. Per-request cost: sequential kept-alive GETs of /monitoring/metrics (no Redis in the handler) with every
   security guard on, with the rate limiter off, and with the rate limiter and the block list both off.
   In-process figures for one limiter hit and one block-list match (100 entries) are printed beside them.
2. Flood: 10,000 requests with wrong keys from 50 concurrent connections, default limits (20 failures a
   minute per address): how many were accepted (must be 0), latency percentiles, and after how many
   failures the address was throttled (401 turned to 429).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prism_mcp.config import load_settings
from prism_mcp.http_bridge import build_api_app, gate
from prism_mcp.runtime import Runtime
from prism_mcp.security import guards
from prism_mcp.security.addresses import parse_address, parse_network
from prism_mcp.security.blocklist import block, blocklist
from prism_mcp.security.ratelimit import limiter
from prism_mcp.serving import Listener, start_server
from prism_mcp.store import EmbeddedValkey, Store
from prism_mcp.tools import load_all

KEY = "bench-admin-key-0123456789"
SEQUENTIAL = 3000
FLOOD = 10_000
CLIENTS = 50


class Connection:
    """A minimal kept-alive HTTP/1.1 client: the bench should measure the server, not an HTTP library."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader
        self.writer: asyncio.StreamWriter

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def get(self, path: str, key: str) -> int:
        request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nAuthorization: Bearer {key}\r\n\r\n"
        self.writer.write(request.encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        length = next(int(line.split(":")[1]) for line in lines if line.lower().startswith("content-length:"))
        await self.reader.readexactly(length)
        return int(lines[0].split()[1])

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def sequential(port: int, count: int) -> list[float]:
    conn = Connection(port)
    await conn.open()
    for _ in range(200):
        await conn.get("/monitoring/metrics", KEY)
    times = []
    for _ in range(count):
        started = time.perf_counter()
        status = await conn.get("/monitoring/metrics", KEY)
        times.append((time.perf_counter() - started) * 1000)
        if status != 200:
            raise RuntimeError(f"expected 200 from the bench key, got {status}")
    await conn.close()
    return times


def without(hooks: list[object], remove: set[object]) -> list[object]:
    saved = list(hooks)
    hooks[:] = [h for h in hooks if h not in remove]
    return saved


async def cost(runtime: Runtime, port: int) -> None:
    results: dict[str, list[float]] = {}
    results["all guards on"] = await sequential(port, SEQUENTIAL)
    saved_post = without(gate._POST, {guards.limit_requests})  # type: ignore[arg-type]
    results["rate limiter off"] = await sequential(port, SEQUENTIAL)
    saved_pre = without(gate._PRE, {guards.refuse_blocked})  # type: ignore[arg-type]
    results["rate limiter and block list off"] = await sequential(port, SEQUENTIAL)
    gate._POST[:], gate._PRE[:] = saved_post, saved_pre  # type: ignore[assignment]
    base = statistics.median(results["rate limiter and block list off"])
    print(f"\n## per-request cost ({SEQUENTIAL} sequential kept-alive GET /monitoring/metrics)")
    print("| configuration | median ms | p99 ms | vs off |")
    print("|---|---|---|---|")
    for name, times in results.items():
        median = statistics.median(times)
        print(f"| {name} | {median:.3f} | {percentile(times, 0.99):.3f} | {median / base:.2f}x |")

    gate_ = limiter(runtime)
    started = time.perf_counter()
    for _ in range(2000):
        await gate_.hit(gate_.requests, "bench:direct")
    hit_ms = (time.perf_counter() - started) / 2000 * 1000
    snapshot = blocklist(runtime)
    address = parse_address("198.51.100.77")
    assert address is not None
    started = time.perf_counter()
    for _ in range(20_000):
        snapshot.match(address)
    match_us = (time.perf_counter() - started) / 20_000 * 1e6
    print(
        f"\nin-process: one limiter hit (two Redis round trips) {hit_ms:.3f} ms; "
        f"one block-list match over {len(snapshot.entries)} entries {match_us:.1f} µs"
    )


async def flood(port: int) -> None:
    statuses: list[int] = []
    latencies: list[float] = []
    per_client = FLOOD // CLIENTS

    async def client(index: int) -> None:
        conn = Connection(port)
        await conn.open()
        for _ in range(per_client):
            started = time.perf_counter()
            statuses.append(await conn.get("/security/ips", f"wrong-key-{index}"))
            latencies.append((time.perf_counter() - started) * 1000)
        await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(CLIENTS)))
    seconds = time.perf_counter() - started
    first_429 = statuses.index(429) if 429 in statuses else None
    print(f"\n## flood: {FLOOD} wrong-key requests from {CLIENTS} concurrent connections, one address")
    print(f"accepted (2xx): {sum(1 for s in statuses if 200 <= s < 300)}")
    print(
        f"401: {statuses.count(401)}, 429: {statuses.count(429)}, other: {sum(s not in (401, 429) for s in statuses)}"
    )
    print(f"throttled after {first_429} failures (401s before the first 429, in completion order)")
    print(
        f"latency ms: p50 {percentile(latencies, 0.5):.2f}, p99 {percentile(latencies, 0.99):.2f}, "
        f"max {max(latencies):.2f}; {FLOOD / seconds:.0f} requests/s"
    )


async def main() -> None:
    load_all()
    data = Path(tempfile.mkdtemp(prefix="prism-bench-"))
    embedded = None
    url = os.environ.get("REDIS_URL")
    if not url:
        embedded = EmbeddedValkey(data / "valkey")
        url = await asyncio.to_thread(embedded.start)
    base = {"API_KEY": KEY, "REDIS_URL": url, "PRISM_DATA_DIR": str(data), "PRISM_LOG_LEVEL": "WARNING"}
    for name, extra in (("cost", {"PRISM_RATE_LIMIT": "1000000/minute"}), ("flood", {})):
        settings = load_settings(**base, **extra, PRISM_KEY_PREFIX=f"bench{uuid.uuid4().hex[:8]}:")
        store = Store(url, prefix=settings.key_prefix, timeout=settings.redis_timeout)
        runtime = Runtime(settings, store, services=frozenset({"api"}))
        await runtime.start()
        port = int(os.environ.get("BENCH_PORT", "0")) or _free_port()
        server, task = await start_server(Listener("api", build_api_app(runtime), "127.0.0.1", port))
        if name == "cost":
            for i in range(100):
                await block(runtime, parse_network(f"203.0.113.{i}"), reason="bench", ttl_seconds=600, by="bench")
            await cost(runtime, port)
        else:
            await flood(port)
        server.should_exit = True
        await task
        keys = [k async for k in store.redis.scan_iter(match=store.prefix + "*", count=500)]
        if keys:
            await store.redis.unlink(*keys)
        await runtime.stop()
    if embedded is not None:
        await asyncio.to_thread(embedded.stop)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main())
