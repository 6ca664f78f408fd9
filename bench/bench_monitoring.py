"""Monitoring benchmark: the cost of recording a request, the dashboard cold and cached, a /metrics/ scrape, and
GET /monitoring/metrics side by side with Glances' REST API, in one run.

    .venv/bin/python bench/bench_monitoring.py [--invokes 20000] [--requests 500] [--glances PATH]

Loopback only; bounded by the counts. Needs a Redis: REDIS_URL, or it starts an embedded Valkey. Glances runs from
its own throwaway venv (``python3 -m venv /tmp/glances-venv && /tmp/glances-venv/bin/pip install 'glances[web]'``);
without it that part is reported as not run.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

KEY = "bench-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
ROUNDS = 10
GLANCES_FIGURES = ("cpu", "mem", "fs", "network", "load")
# Where the README's throwaway venv puts Glances; a Glances on PATH is preferred.
GLANCES_VENV = Path(tempfile.gettempdir()) / "glances-venv" / "bin" / "glances"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 3),
        "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1000, 3),
        "n": len(ordered),
    }


def start_redis() -> tuple[str, Any]:
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"], None
    from prism_mcp.store import EmbeddedValkey

    valkey = EmbeddedValkey(Path(tempfile.mkdtemp(prefix="prism-bench-")))
    return valkey.start(), valkey


# --- the PRISM API server, run in its own process (``--serve``) ---------------------------------------------


async def serve(redis_url: str, prefix: str, port: int) -> None:
    from prism_mcp.config import load_settings
    from prism_mcp.http_bridge import build_api_app
    from prism_mcp.runtime import Runtime
    from prism_mcp.serving import Listener, serve_all
    from prism_mcp.store import Store
    from prism_mcp.tools import load_all

    load_all()
    settings = load_settings(API_KEY=KEY, REDIS_URL=redis_url, PRISM_KEY_PREFIX=prefix, PRISM_LOG_LEVEL="WARNING")
    runtime = Runtime(settings, Store(redis_url, prefix=prefix), services=frozenset({"api"}))
    await runtime.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_reader(sys.stdin.fileno(), stop.set)
    await serve_all(
        [Listener("api", build_api_app(runtime), "127.0.0.1", port)],
        stop,
        on_ready=lambda: print(json.dumps({"ready": True}), flush=True),
    )
    await runtime.stop()


# --- 1. recording a request, in process ---------------------------------------------------------------------


async def recording_cost(redis_url: str, invokes: int) -> dict[str, Any]:
    from prism_mcp.capability import Call, Principal, Scope, invoke, registry
    from prism_mcp.config import load_settings
    from prism_mcp.runtime import Runtime
    from prism_mcp.store import Store
    from prism_mcp.telemetry import telemetry_of
    from prism_mcp.tools import load_all

    load_all()
    prefix = f"bench{uuid.uuid4().hex[:6]}:"
    settings = load_settings(API_KEY=KEY, REDIS_URL=redis_url, PRISM_KEY_PREFIX=prefix)
    runtime = Runtime(settings, Store(redis_url, prefix=prefix), services=frozenset({"cli"}))
    cap = registry.get("monitoring_metrics")
    assert cap is not None
    principal = Principal("bench", Scope.ADMIN)
    telemetry = telemetry_of(runtime)
    await invoke(runtime, cap, principal, {}, surface="internal")  # first sample, warm caches

    async def round_of(count: int) -> float:
        started = time.perf_counter()
        for _ in range(count):
            await invoke(runtime, cap, principal, {}, surface="rest")
        return (time.perf_counter() - started) / count

    plain: list[float] = []
    recorded: list[float] = []
    for _ in range(ROUNDS):  # interleaved, so drift on the machine hits both alike
        runtime.observers = []
        plain.append(await round_of(invokes // ROUNDS))
        runtime.observers = [telemetry.observe]
        recorded.append(await round_of(invokes // ROUNDS))

    call = Call(runtime, principal, "rest", "r", cap)
    started = time.perf_counter()
    for _ in range(invokes):
        telemetry.observe(cap, call, "ok", 200, 0.0012)
    observe_alone = (time.perf_counter() - started) / invokes

    flushes = []
    for _ in range(5):
        for _ in range(2000):
            telemetry.observe(cap, call, "ok", 200, 0.0012)
        started = time.perf_counter()
        await telemetry.flush()
        flushes.append(time.perf_counter() - started)

    keys = [k async for k in runtime.store.redis.scan_iter(match=prefix + "*", count=500)]
    if keys:
        await runtime.store.redis.unlink(*keys)
    await runtime.store.close()
    # The fastest round is the least disturbed by the other work on a shared machine; the median is shown too.
    without, with_ = min(plain), min(recorded)
    return {
        "invoke_without_telemetry_us": round(without * 1e6, 2),
        "invoke_with_telemetry_us": round(with_ * 1e6, 2),
        "with_over_without": round(with_ / without, 3),
        "median_round_without_us": round(statistics.median(plain) * 1e6, 2),
        "median_round_with_us": round(statistics.median(recorded) * 1e6, 2),
        "observer_alone_us": round(observe_alone * 1e6, 3),
        "flush_of_2000_requests_ms": round(statistics.median(flushes) * 1000, 3),
    }


# --- 2-4. over HTTP, from this process to the servers ---------------------------------------------------------


def timed_gets(port: int, path: str, count: int, headers: dict[str, str], before: Any = None) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    samples = []
    for _ in range(count):
        if before is not None:
            before()
        started = time.perf_counter()
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        samples.append(time.perf_counter() - started)
        if response.status != 200 or not body:
            raise RuntimeError(f"unexpected answer {response.status} from {path} on port {port}")
    conn.close()
    return samples


def clear_cache(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", "/performance/cache/clear", headers=AUTH)
    conn.getresponse().read()
    conn.close()


def start_glances(binary: str, port: int) -> subprocess.Popen[bytes] | None:
    process = subprocess.Popen(
        [binary, "-w", "--disable-webui", "--bind", "127.0.0.1", "--port", str(port), "-t", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            timed_gets(port, "/api/4/cpu", 1, {})
            return process
        except (OSError, RuntimeError, http.client.HTTPException):
            time.sleep(0.3)
    process.terminate()
    process.wait(timeout=10)
    return None


def glances_round(port: int) -> float:
    """One read of the figures /monitoring/metrics answers in one request: cpu, mem, fs, network, load."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    started = time.perf_counter()
    for name in GLANCES_FIGURES:
        conn.request("GET", f"/api/4/{name}")
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"glances answered {response.status} for {name}")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def http_part(port: int, requests: int, glances: str | None) -> dict[str, Any]:
    timed_gets(port, "/monitoring/metrics", 200, AUTH)  # warm up
    out: dict[str, Any] = {}
    cold = timed_gets(port, "/monitoring/dashboard", 40, AUTH, before=lambda: clear_cache(port))
    cached = timed_gets(port, "/monitoring/dashboard", 200, AUTH)
    out["dashboard"] = {"cold": summary(cold), "cached": summary(cached)}
    out["dashboard"]["cold_over_cached"] = round(
        out["dashboard"]["cold"]["median_ms"] / summary(cached)["median_ms"], 2
    )
    out["metrics_scrape"] = summary(timed_gets(port, "/metrics/", 200, {}))

    prism = timed_gets(port, "/monitoring/metrics", requests, AUTH)
    out["monitoring_metrics"] = summary(prism)
    if glances is None:
        out["glances"] = "not run: no glances binary (see the module docstring)"
        return out
    glances_port = free_port()
    process = start_glances(glances, glances_port)
    if process is None:
        out["glances"] = "not run: glances did not answer on loopback within 30 s"
        return out
    try:
        timed_gets(glances_port, "/api/4/cpu", 50, {})  # warm up
        prism = timed_gets(port, "/monitoring/metrics", requests, AUTH)
        single = timed_gets(glances_port, "/api/4/cpu", requests, {})
        rounds = [glances_round(glances_port) for _ in range(requests // 2)]
    finally:
        process.terminate()
        process.wait(timeout=10)
    prism_median = summary(prism)["median_ms"]
    out["side_by_side"] = {
        "prism_monitoring_metrics": summary(prism),
        "glances_api4_cpu": summary(single),
        "glances_api4_cpu_mem_fs_network_load": summary(rounds),
        "glances_cpu_over_prism": round(summary(single)["median_ms"] / prism_median, 2),
        "glances_same_figures_over_prism": round(summary(rounds)["median_ms"] / prism_median, 2),
    }
    return out


def drop_prefix(redis_url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=prefix + "*", count=500))
    if keys:
        client.unlink(*keys)
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", nargs=3, metavar=("REDIS_URL", "PREFIX", "PORT"), help=argparse.SUPPRESS)
    parser.add_argument("--invokes", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--glances", default=shutil.which("glances") or str(GLANCES_VENV))
    args = parser.parse_args()
    if args.serve:
        import logging

        import uvloop

        logging.disable(logging.WARNING)
        uvloop.run(serve(args.serve[0], args.serve[1], int(args.serve[2])))
        return

    redis_url, valkey = start_redis()
    results: dict[str, Any] = {"recording": asyncio.run(recording_cost(redis_url, args.invokes))}
    port = free_port()
    prefix = f"bench{uuid.uuid4().hex[:6]}:"
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", redis_url, prefix, str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        json.loads(server.stdout.readline())
        time.sleep(2.5)  # let the background sampler take its first reading
        glances = args.glances if Path(args.glances).exists() else None
        results.update(http_part(port, args.requests, glances))
    finally:
        assert server.stdin is not None
        server.stdin.write("stop\n")
        server.stdin.close()
        server.wait(timeout=30)
        drop_prefix(redis_url, prefix)
        if valkey is not None:
            valkey.stop()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
