"""Scale-out bench: API throughput with one and with two `prism serve api` replicas on one Redis.

    .venv/bin/python bench/bench_scale.py [--requests 3000] [--clients 8]

Starts its own embedded Valkey (never the shared Redis: it reads that server's command counters), then for one
and for two replicas: starts the `prism serve api` processes on loopback ports with the default rate limit on
(600/minute per key, counted in Redis; the load spreads over enough keys that it never binds), drives each
endpoint with ``--clients`` concurrent kept-alive connections from this process (connection i to replica
i mod n) for ``--requests`` requests, and reads ``INFO commandstats`` before and after. Commands the
replicas' background tasks send while idle (measured for a few seconds beside the load) are subtracted, so
"Redis commands per request" is what a request itself costs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prism_mcp.store import EmbeddedValkey  # noqa: E402

ADMIN_KEY = "bench-admin-key-0123456789"
# 600/minute per key is the default limit; 100 keys keep every key far below it at the bench's volume.
KEYS = [f"bench-read-key-{n:03d}-0123456789" for n in range(100)]
ENDPOINTS = ("/monitoring/metrics", "/security/events")
IDLE_SECONDS = 3.0
# What the rate limiter's two Lua scripts (limits' moving window: acquire, then window stats) run inside Redis.
# Redis counts them in commandstats and total_commands_processed, but they cost no round trip.
LIMITER_SCRIPT_COMMANDS = frozenset({"lindex", "lpush", "ltrim", "expire"})
START_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Connection:
    """A minimal kept-alive HTTP/1.1 client, so the figures are the servers', not an HTTP library's."""

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
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


@dataclass
class Result:
    replicas: int
    path: str
    requests: int
    seconds: float
    latencies: list[float]
    statuses: Counter[int]
    commands: Counter[str]
    idle_per_second: Counter[str]

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    def per_request(self) -> dict[str, float]:
        own = {name: count - self.idle_per_second.get(name, 0) * self.seconds for name, count in self.commands.items()}
        return {name: value / self.requests for name, value in own.items() if value / self.requests >= 0.05}

    def round_trips(self) -> float:
        """Commands sent per request: each script call once, without the commands the script runs inside Redis."""
        per = self.per_request()
        return sum(v for name, v in per.items() if name != "*total" and name not in LIMITER_SCRIPT_COMMANDS)


def _env(redis_url: str, prefix: str, data: Path) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("PRISM_") and k not in {"API_KEY"}}
    return {
        **inherited,
        "REDIS_URL": redis_url,
        "API_KEY": ADMIN_KEY,
        "PRISM_READ_KEYS": ",".join(KEYS),
        "PRISM_KEY_PREFIX": prefix,
        "PRISM_DATA_DIR": str(data),
        "PRISM_LOG_LEVEL": "WARNING",
    }


def start_replicas(count: int, redis_url: str, workdir: Path) -> tuple[list[subprocess.Popen[bytes]], list[int]]:
    env = _env(redis_url, f"b{uuid.uuid4().hex[:8]}:", workdir / "data")
    ports = [free_port() for _ in range(count)]
    processes = []
    for port in ports:
        log = (workdir / f"api-{port}.log").open("ab")
        command = [sys.executable, "-m", "prism_mcp", "serve", "api"]
        processes.append(
            subprocess.Popen(command, cwd=workdir, env={**env, "PRISM_API_PORT": str(port)}, stdout=log, stderr=log)
        )
    return processes, ports


async def wait_listening(ports: list[int]) -> None:
    deadline = time.monotonic() + START_SECONDS
    for port in ports:
        while True:
            try:
                conn = Connection(port)
                await conn.open()
                status = await conn.get("/healthz", KEYS[0])
                await conn.close()
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"the API on port {port} did not answer within {START_SECONDS:g} s")
            await asyncio.sleep(0.2)


def stop_replicas(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


async def commandstats(client: aioredis.Redis) -> Counter[str]:
    """Calls per command, those a Lua script makes included, plus ``total_commands_processed`` under ``*total``."""
    info = await client.info("commandstats")
    counts = Counter({name.removeprefix("cmdstat_"): int(stats["calls"]) for name, stats in info.items()})
    counts["*total"] = int((await client.info("stats"))["total_commands_processed"])
    return counts


async def drive(ports: list[int], path: str, requests: int, clients: int) -> tuple[float, list[float], Counter[int]]:
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    share = [requests // clients + (1 if n < requests % clients else 0) for n in range(clients)]

    async def client(index: int) -> None:
        conn = Connection(ports[index % len(ports)])
        await conn.open()
        for n in range(share[index]):
            key = KEYS[(index + n * clients) % len(KEYS)]
            started = time.perf_counter()
            statuses[await conn.get(path, key)] += 1
            latencies.append(time.perf_counter() - started)
        await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    return time.perf_counter() - started, latencies, statuses


async def measure(count: int, redis_url: str, workdir: Path, requests: int, clients: int) -> list[Result]:
    processes, ports = start_replicas(count, redis_url, workdir)
    redis = aioredis.from_url(redis_url, decode_responses=True)
    try:
        await wait_listening(ports)
        for path in ENDPOINTS:
            await drive(ports, path, min(500, requests), clients)  # warm-up: connections, caches, JIT-free paths
        before = await commandstats(redis)
        await asyncio.sleep(IDLE_SECONDS)
        idle = await commandstats(redis)
        idle_per_second = Counter({k: (v - before[k]) / IDLE_SECONDS for k, v in idle.items() if v > before[k]})
        results = []
        for path in ENDPOINTS:
            before = await commandstats(redis)
            seconds, latencies, statuses = await drive(ports, path, requests, clients)
            after = await commandstats(redis)
            commands = Counter({k: v - before[k] for k, v in after.items() if v > before[k]})
            results.append(Result(count, path, requests, seconds, latencies, statuses, commands, idle_per_second))
        return results
    finally:
        await redis.aclose()
        stop_replicas(processes)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(results: list[Result]) -> None:
    print(
        "| endpoint | replicas | requests/s | median ms | p99 ms | statuses | Redis round trips per request "
        "| commands executed per request (total_commands_processed; inside scripts too) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        per = r.per_request()
        total = per.pop("*total", 0.0)
        detail = ", ".join(f"{name} {value:.2f}" for name, value in sorted(per.items(), key=lambda kv: -kv[1]))
        statuses = ", ".join(f"{code}: {n}" for code, n in sorted(r.statuses.items()))
        median, p99 = statistics.median(r.latencies) * 1000, percentile(r.latencies, 0.99) * 1000
        print(
            f"| `GET {r.path}` | {r.replicas} | {r.throughput:,.0f} | {median:.2f} | {p99:.2f} | {statuses} "
            f"| {r.round_trips():.2f} | {total:.2f} ({detail}) |"
        )
    for count in sorted({r.replicas for r in results}):
        idle = next(r for r in results if r.replicas == count).idle_per_second.get("*total", 0.0)
        print(f"idle, {count} replica(s): {idle:.1f} Redis commands/s from background tasks")
    for path in ENDPOINTS:
        one = next(r for r in results if r.path == path and r.replicas == 1)
        two = next(r for r in results if r.path == path and r.replicas == 2)
        print(f"two / one replica, GET {path}: {two.throughput / one.throughput:.2f}x throughput")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000, help="requests per endpoint and configuration")
    parser.add_argument("--clients", type=int, default=8, help="concurrent kept-alive connections")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="prism-bench-scale-") as tmp:
        workdir = Path(tmp)
        valkey = EmbeddedValkey(workdir / "valkey")
        url = valkey.start()
        try:
            results = []
            for count in (1, 2):
                results += await measure(count, url, workdir, args.requests, args.clients)
        finally:
            valkey.stop()
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, {args.clients} clients, embedded Valkey")
    report(results)


if __name__ == "__main__":
    asyncio.run(main())
