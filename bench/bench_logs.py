"""Benchmark of the log pipeline on its own embedded Valkey (loopback, bounded in count and time).

    .venv/bin/python bench/bench_logs.py            # full run: stats at 10k, 100k and 1M stored records
    .venv/bin/python bench/bench_logs.py --quick    # 10k and 100k only

Measures: ingest throughput through ``logs_ingest`` (validation included) and through the writer's pipeline,
the per-call cost of logging on the invocation path (no summary line, summary line to stdout, summary line to
stdout and captured into Redis), and ``logs_stats`` / ``logs_search`` latency as the stored records grow.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prism_mcp.capability import Principal, Scope, invoke, registry
from prism_mcp.config import load_settings
from prism_mcp.logcapture import writer_state
from prism_mcp.logsetup import configure_logging
from prism_mcp.logstore import Filters, new_record_id, read_stats, search_records, write_records
from prism_mcp.runtime import Runtime
from prism_mcp.store import EmbeddedValkey, Store
from prism_mcp.tools import load_all

ADMIN = Principal("bench", Scope.ADMIN, "k:bench")
CALLS = 3000
INGEST_BATCHES = 30
FILL_BATCH = 5000


def runtime_for(url: str, data: Path, *, capture: bool) -> Runtime:
    settings = load_settings(
        API_KEY="bench-key-0123456789",
        REDIS_URL=url,
        PRISM_DATA_DIR=str(data),
        PRISM_KEY_PREFIX=f"b{uuid.uuid4().hex[:8]}:",
        PRISM_LOG_CAPTURE=capture,
    )
    return Runtime(settings, Store(url, prefix=settings.key_prefix), services=frozenset({"api"}))


def ingest_batch(n: int) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [
        {
            "timestamp": (now - timedelta(seconds=i)).isoformat(),
            "level": "ERROR" if i % 10 == 0 else "INFO",
            "service": "billing",
            "event": "charge_failed" if i % 10 == 0 else "charge_done",
            "message": "",
            "fields": {"order": i, "amount": 12.5},
        }
        for i in range(n)
    ]


async def bench_ingest(url: str, data: Path) -> dict[str, float]:
    runtime = runtime_for(url, data, capture=False)
    await runtime.start()
    cap = registry.get("logs_ingest")
    assert cap is not None
    batch = ingest_batch(1000)
    started = time.perf_counter()
    for _ in range(INGEST_BATCHES):
        await invoke(runtime, cap, ADMIN, {"records": batch}, surface="internal")
    via_capability = INGEST_BATCHES * 1000 / (time.perf_counter() - started)

    records = [stored_record(int(time.time() * 1000) - i, i) for i in range(1000)]
    started = time.perf_counter()
    for _ in range(INGEST_BATCHES):
        await write_records(runtime.store, [{**r, "id": new_record_id()} for r in records])
    via_writer = INGEST_BATCHES * 1000 / (time.perf_counter() - started)
    await runtime.stop()
    return {"logs_ingest (validated, 1000/batch)": via_capability, "writer pipeline (500-1000/batch)": via_writer}


def stored_record(ts_ms: int, i: int) -> dict[str, Any]:
    level = "ERROR" if i % 20 == 0 else "WARNING" if i % 7 == 0 else "INFO"
    return {
        "id": new_record_id(),
        "ts": ts_ms,
        "level": level,
        "service": ("api", "mcp", "worker", "notifier")[i % 4],
        "event": f"event_{i % 50}",
        "message": "",
        "request_id": None,
        "capability": None,
        "fields": {"n": i},
    }


async def per_call_cost(url: str, data: Path, *, level: str, capture: bool) -> float:
    """Median microseconds per invoke() of a capability that does no I/O, over CALLS calls."""
    logging.getLogger().setLevel(level)
    runtime = runtime_for(url, data, capture=capture)
    await runtime.start()
    cap = registry.get("monitoring_metrics")
    assert cap is not None
    await invoke(runtime, cap, ADMIN, {}, surface="rest")
    samples = []
    for _ in range(CALLS):
        started = time.perf_counter()
        await invoke(runtime, cap, ADMIN, {}, surface="rest")
        samples.append(time.perf_counter() - started)
        if len(samples) % 200 == 0:
            await asyncio.sleep(0)
    state = writer_state(runtime)
    dropped = state.sink.dropped if state else 0
    await runtime.stop()
    if dropped:
        print(f"  (capture dropped {dropped} records)")
    return statistics.median(samples) * 1e6


async def fill(store: Store, target: int, have: int) -> None:
    now_ms = int(time.time() * 1000)
    span = 24 * 3600 * 1000 - 60_000
    i = have
    while i < target:
        n = min(FILL_BATCH, target - i)
        await write_records(store, [stored_record(now_ms - ((i + k) * 7919) % span, i + k) for k in range(n)])
        i += n


async def settle(store: Store) -> None:
    """Wait (at most 60 s) until the server finishes saving, so persistence does not share the measurement."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        info = await store.redis.info(section="persistence")
        if not (info.get("rdb_bgsave_in_progress") or info.get("aof_rewrite_in_progress")):
            return
        await asyncio.sleep(0.2)


async def timed(fn: Any, runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


async def bench_stats(url: str, data: Path, sizes: list[int]) -> list[tuple[int, float, float, float, float]]:
    runtime = runtime_for(url, data, capture=False)
    await runtime.start()
    store = runtime.store
    rows = []
    have = 0
    for size in sizes:
        started = time.perf_counter()
        await fill(store, size, have)
        have = size
        fill_s = time.perf_counter() - started
        await settle(store)
        stats_24 = await timed(lambda: read_stats(store, 24), 30)
        stats_720 = await timed(lambda: read_stats(store, 720), 10)
        page = await timed(
            lambda: search_records(store, Filters(), since_ms=0, until_ms=2**42, limit=100, cursor=None), 10
        )
        rows.append((size, stats_24, stats_720, page, fill_s))
        print(f"  {size:>9,} records: stats 24 h {stats_24:.2f} ms, 720 h {stats_720:.2f} ms, search {page:.2f} ms")
    await runtime.stop()
    return rows


async def main(quick: bool) -> None:
    load_all()
    with tempfile.TemporaryDirectory() as tmp:
        valkey = EmbeddedValkey(Path(tmp) / "valkey")
        url = await asyncio.to_thread(valkey.start)
        try:
            print("ingest throughput (records/s):")
            for name, rate in (await bench_ingest(url, Path(tmp))).items():
                print(f"  {name}: {rate:,.0f}")
            print(f"per-call cost of logging, median of {CALLS} in-process invoke() calls (us):")
            base = await per_call_cost(url, Path(tmp), level="WARNING", capture=False)
            stdout = await per_call_cost(url, Path(tmp), level="INFO", capture=False)
            both = await per_call_cost(url, Path(tmp), level="INFO", capture=True)
            print(f"  no summary line: {base:.1f}")
            print(f"  summary line to stdout: {stdout:.1f} (+{stdout - base:.1f})")
            print(f"  summary line to stdout and captured: {both:.1f} (+{both - base:.1f}, x{both / stdout:.2f})")
            print("stats and search latency as records grow (median):")
            await bench_stats(url, Path(tmp), [10_000, 100_000] if quick else [10_000, 100_000, 1_000_000])
        finally:
            await asyncio.to_thread(valkey.stop)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="stop at 100k stored records")
    quick = parser.parse_args().quick
    with open(os.devnull, "w") as devnull:
        configure_logging("api", "WARNING", stream=devnull)
        asyncio.run(main(quick))
    sys.exit(0)
