"""Foundation benchmark: GET /monitoring/metrics through PRISM's REST bridge and MCP server, side by side
with a bare Starlette route and a bare MCP SDK tool doing the same work, in one run.

    .venv/bin/python bench/bench_foundation.py [--requests 3000] [--mcp-calls 400]

Loopback only; bounded by the request counts. Needs a Redis: REDIS_URL, or it starts an embedded Valkey.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
KEY = "bench-key-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def summary(samples: list[float], seconds: float) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 3),
        "throughput_rps": round(len(samples) / seconds, 1),
    }


def rest_round(port: int, path: str, count: int, headers: dict[str, str]) -> tuple[list[float], float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    samples = []
    started = time.perf_counter()
    for _ in range(count):
        t0 = time.perf_counter()
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        samples.append(time.perf_counter() - t0)
        if response.status != 200 or not body:
            raise RuntimeError(f"unexpected answer {response.status} from port {port}")
    elapsed = time.perf_counter() - started
    conn.close()
    return samples, elapsed


async def mcp_round(
    url: str, count: int, tool: str, args: dict[str, object], key: str | None
) -> tuple[list[float], float]:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    samples = []
    async with (
        httpx2.AsyncClient(headers=headers, timeout=10) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        started = time.perf_counter()
        for _ in range(count):
            t0 = time.perf_counter()
            result = await client.call_tool(tool, args)
            samples.append(time.perf_counter() - t0)
            if result.is_error:
                raise RuntimeError(f"tool error from {url}: {result.content}")
        elapsed = time.perf_counter() - started
    return samples, elapsed


def start_redis() -> tuple[str, object | None]:
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"], None
    from prism_mcp.store import EmbeddedValkey

    valkey = EmbeddedValkey(Path(tempfile.mkdtemp(prefix="prism-bench-")))
    return valkey.start(), valkey


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--mcp-calls", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    redis_url, valkey = start_redis()
    ports = [free_port() for _ in range(4)]
    server = subprocess.Popen(
        [sys.executable, str(HERE / "_servers.py"), redis_url, *map(str, ports)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        json.loads(server.stdout.readline())
        time.sleep(2.5)  # let the background sampler take its first reading
        results = run(ports, args)
    finally:
        assert server.stdin is not None
        server.stdin.write("stop\n")
        server.stdin.close()
        server.wait(timeout=30)
        if valkey is not None:
            valkey.stop()  # type: ignore[attr-defined]
    print(json.dumps(results, indent=2))


def run(ports: list[int], args: argparse.Namespace) -> dict[str, object]:
    auth = {"Authorization": f"Bearer {KEY}"}
    rest: dict[str, list[float]] = {"prism": [], "bare": []}
    rest_time = {"prism": 0.0, "bare": 0.0}
    rest_round(ports[0], "/monitoring/metrics", 300, auth)  # warm up both
    rest_round(ports[1], "/monitoring/metrics", 300, {})
    for _ in range(args.rounds):  # interleaved, so drift on the machine hits both alike
        for name, port, headers in (("bare", ports[1], {}), ("prism", ports[0], auth)):
            samples, elapsed = rest_round(port, "/monitoring/metrics", args.requests // args.rounds, headers)
            rest[name] += samples
            rest_time[name] += elapsed

    mcp: dict[str, list[float]] = {"prism": [], "bare": []}
    mcp_time = {"prism": 0.0, "bare": 0.0}
    prism_mcp = (f"http://127.0.0.1:{ports[2]}/mcp", "read_resource", {"uri": "prism://monitoring/metrics"}, KEY)
    bare_mcp = (f"http://127.0.0.1:{ports[3]}/mcp", "monitoring_metrics", {}, None)
    for _ in range(args.rounds):
        for name, (url, tool, tool_args, key) in (("bare", bare_mcp), ("prism", prism_mcp)):
            samples, elapsed = asyncio.run(mcp_round(url, args.mcp_calls // args.rounds, tool, tool_args, key))
            mcp[name] += samples
            mcp_time[name] += elapsed

    out: dict[str, object] = {}
    for surface, data, times in (("rest", rest, rest_time), ("mcp", mcp, mcp_time)):
        figures = {name: summary(data[name], times[name]) for name in data}
        ratio = figures["prism"]["median_ms"] / figures["bare"]["median_ms"]
        out[surface] = {**figures, "prism_over_bare_median": round(ratio, 3)}
    return out


if __name__ == "__main__":
    main()
