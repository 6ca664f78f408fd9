"""Bench the agentic layer on loopback: diagnosis latency (rules only, model miss, cached model answer) and the
Notion journal's pacing against Notion's ~3 requests a second.

    .venv/bin/python bench/bench_agentic.py --diagnoses 40 --alerts 12

Uses REDIS_URL when set, else an embedded Valkey; the fake Notion and OpenAI servers are the test suite's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pydantic import SecretStr

from prism_mcp import alerts
from prism_mcp.config import Settings, load_settings
from prism_mcp.store import EmbeddedValkey
from prism_mcp.tools import load_all
from tests.agentic_fakes import (
    DATABASE_ID,
    MODEL,
    NOTION_KEY,
    OPENAI_KEY,
    FakeNotion,
    FakeOpenAI,
    prism,
    serve,
)
from tests.conftest import ADMIN_KEY


def _ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"median {statistics.median(ordered) * 1000:.2f} ms, p95 {p95 * 1000:.2f} ms"


async def _fire(store: object, count: int) -> None:
    for n in range(count):
        await alerts.fire(
            store,  # type: ignore[arg-type]
            fingerprint=f"bench:{n}",
            category="system",
            severity="warning",
            title=f"Bench alert {n}",
            message="bench",
            source="bench",
            runbook="high-cpu",
        )


async def bench_diagnosis(settings: Settings, calls: int) -> None:
    fake = FakeOpenAI(answer={"causes": []})
    async with serve(fake.app()) as url:
        async with prism(settings) as (runtime, api):
            await _fire(runtime.store, 3)
            rules = []
            for _ in range(calls):
                started = time.perf_counter()
                (await api.post("/ops/diagnose")).raise_for_status()
                rules.append(time.perf_counter() - started)
        model = {"openai_api_key": SecretStr(OPENAI_KEY), "openai_base_url": f"{url}/v1", "openai_model": MODEL}
        async with prism(settings, **model) as (runtime, api):
            await _fire(runtime.store, 3)
            started = time.perf_counter()
            first = (await api.post("/ops/diagnose")).json()["data"]["llm_status"]
            miss = time.perf_counter() - started
            hits, statuses = [], []
            for _ in range(calls):
                started = time.perf_counter()
                statuses.append((await api.post("/ops/diagnose")).json()["data"]["llm_status"])
                hits.append(time.perf_counter() - started)
    # A changed reading (CPU crossing 80 % on a busy machine) is new evidence and rightly a miss: count them.
    cached = statuses.count("cached")
    print(f"diagnose, rules only ({calls} calls): {_ms(rules)}")
    print(f"diagnose, model miss ({first}): {miss * 1000:.2f} ms; repeats ({cached}/{calls} cached): {_ms(hits)}")


async def bench_notion(settings: Settings, count: int, rate: float) -> None:
    fake = FakeNotion()
    stamps: list[float] = []
    original = fake.route

    async def timed(request):  # type: ignore[no-untyped-def]
        stamps.append(time.perf_counter())
        return await original(request)

    fake.route = timed  # type: ignore[method-assign]
    async with serve(fake.app()) as url:
        fake.url = url
        options = {
            "notion_api_key": SecretStr(NOTION_KEY),
            "notion_database_id": DATABASE_ID,
            "notion_base_url": url,
            "notion_requests_per_second": rate,
        }
        async with prism(settings, **options) as (runtime, api):
            await _fire(runtime.store, count)
            started = time.perf_counter()
            result = (await api.post("/integrations/notion/sync", params={"daily_report": "false"})).json()["data"]
            seconds = time.perf_counter() - started
    achieved = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    print(
        f"notion sync of {count} alerts at limit {rate:g}/s: {len(stamps)} requests, {result['created']} pages, "
        f"{seconds:.2f} s, {achieved:.2f} requests/s achieved"
    )


async def main(args: argparse.Namespace) -> None:
    load_all()
    with tempfile.TemporaryDirectory() as tmp:
        url = os.environ.get("REDIS_URL")
        valkey = None
        if not url:
            valkey = EmbeddedValkey(Path(tmp) / "valkey")
            url = await asyncio.to_thread(valkey.start)
        settings = load_settings(
            API_KEY=ADMIN_KEY, REDIS_URL=url, PRISM_DATA_DIR=tmp, PRISM_KEY_PREFIX=f"b{uuid.uuid4().hex[:8]}:"
        )
        try:
            await bench_diagnosis(settings, args.diagnoses)
            await bench_notion(settings, args.alerts, 3.0)
            await bench_notion(settings, args.alerts, 50.0)
        finally:
            if valkey is not None:
                valkey.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--diagnoses", type=int, default=40, help="diagnoses per measurement (bounded: 1-500)")
    parser.add_argument("--alerts", type=int, default=12, help="alerts to journal (bounded: 1-100)")
    parsed = parser.parse_args()
    parsed.diagnoses = max(1, min(500, parsed.diagnoses))
    parsed.alerts = max(1, min(100, parsed.alerts))
    asyncio.run(main(parsed))
