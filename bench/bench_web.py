"""PRISM-WEB benchmark: what a dashboard page costs the browser and what live viewers cost the server.

    .venv/bin/python bench/bench_web.py [--loads 5] [--window 15] [--viewers 50]

Starts one `prism up` on free loopback ports (REDIS_URL if set, else its embedded Valkey) and measures:

- per page, in Debian's headless chromium (Playwright, /usr/bin/chromium, a fresh profile per load): first
  contentful paint, DOM ready, load, and for the overview the first live update applied (the page complete);
  bytes of the HTML as transferred, and of the page with its assets (CSS, JS, icon) as a cold load fetches them;
- the server's CPU time (psutil, the `prism up` process) over a fixed window with no viewer, one SSE viewer and
  `--viewers` SSE viewers (each its own session with the same key), side by side.

Loopback only; bounded by --loads, --window and --viewers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

KEY = "bench-web-key-0123456789"
PAGES = ("overview", "logs", "performance", "security", "notifications", "jobs", "audit")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
TIMING = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const paint = performance.getEntriesByName('first-contentful-paint')[0];
  const live = performance.getEntriesByName('prism:live-applied')[0];
  const resources = performance.getEntriesByType('resource');
  return {
    fcp: paint ? paint.startTime : null,
    dom: nav.domContentLoadedEventEnd,
    load: nav.loadEventEnd,
    live: live ? live.startTime : null,
    html: nav.transferSize,
    total: nav.transferSize + resources.reduce((sum, r) => sum + r.encodedBodySize, 0),
  };
}"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_prism(data: Path) -> tuple[subprocess.Popen[bytes], str]:
    api, web, mcp = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRISM_") and k != "API_KEY"}
    env.update(
        API_KEY=KEY,
        PRISM_DATA_DIR=str(data),
        PRISM_KEY_PREFIX="benchweb:",
        PRISM_API_PORT=str(api),
        PRISM_WEB_PORT=str(web),
        PRISM_MCP_PORT=str(mcp),
        PRISM_LOG_LEVEL="WARNING",
    )
    quiet = subprocess.DEVNULL
    process = subprocess.Popen([sys.executable, "-m", "prism_mcp", "up"], env=env, cwd=data, stdout=quiet, stderr=quiet)
    url = f"http://127.0.0.1:{web}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("prism up did not answer on the web port within 30 s")


async def sign_in(client: httpx.AsyncClient) -> None:
    form = await client.get("/login")
    found = CSRF.search(form.text)
    assert found is not None
    answer = await client.post("/login", data={"csrf": found.group(1), "api_key": KEY})
    if answer.status_code != 303:
        raise RuntimeError(f"sign-in answered {answer.status_code}")


async def page_loads(web: str, loads: int) -> dict[str, dict[str, float]]:
    from playwright.async_api import async_playwright

    results: dict[str, dict[str, list[float]]] = {p: {} for p in PAGES}
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        for _ in range(loads):
            for slug in PAGES:
                context = await browser.new_context(viewport={"width": 1280, "height": 900})
                page = await context.new_page()
                await page.goto(f"{web}/login")
                await page.fill("#api_key", KEY)
                await page.click("button[type=submit]")
                await page.wait_for_selector("#overall-status")
                await page.goto(f"{web}/" if slug == "overview" else f"{web}/{slug}")
                await page.wait_for_selector("body[data-live-count]", timeout=15_000)
                timing = await page.evaluate(TIMING)
                for name, value in timing.items():
                    if value is not None:
                        results[slug].setdefault(name, []).append(float(value))
                await context.close()
        await browser.close()
    return {slug: {k: statistics.median(v) for k, v in m.items()} for slug, m in results.items()}


async def viewer(web: str, stop: asyncio.Event, counts: list[int]) -> None:
    async with httpx.AsyncClient(base_url=web, timeout=30) as client:
        await sign_in(client)
        index = len(counts)
        counts.append(0)
        async with client.stream("GET", "/events") as stream:
            async for line in stream.aiter_lines():
                if line.startswith("event: sections"):
                    counts[index] += 1
                if stop.is_set():
                    return


async def server_cost(pid: int, web: str, viewers: int, window: float) -> dict[str, float]:
    process = psutil.Process(pid)
    stop = asyncio.Event()
    counts: list[int] = []
    tasks = [asyncio.create_task(viewer(web, stop, counts)) for _ in range(viewers)]
    await asyncio.sleep(3)  # every viewer signed in and streaming before the window opens
    before, started = process.cpu_times(), time.monotonic()
    events_before = sum(counts)
    await asyncio.sleep(window)
    after, elapsed = process.cpu_times(), time.monotonic() - started
    events = sum(counts) - events_before
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    cpu = (after.user - before.user) + (after.system - before.system)
    return {"viewers": viewers, "cpu_seconds": cpu, "cpu_percent": 100 * cpu / elapsed, "events": events}


def print_tables(pages: dict[str, dict[str, float]], costs: list[dict[str, float]]) -> None:
    print("| page | first contentful paint | DOM ready | load | first live update | HTML bytes | page + assets |")
    print("|---|---|---|---|---|---|---|")
    for slug, m in pages.items():
        print(
            f"| {slug} | {m.get('fcp', 0):.0f} ms | {m.get('dom', 0):.0f} ms | {m.get('load', 0):.0f} ms | "
            f"{m.get('live', 0):.0f} ms | {m.get('html', 0):,.0f} | {m.get('total', 0):,.0f} |"
        )
    print()
    base = costs[0]["cpu_percent"]
    print("| SSE viewers | server CPU | over idle | per viewer | events pushed |")
    print("|---|---|---|---|---|")
    for c in costs:
        extra = c["cpu_percent"] - base
        per = extra / c["viewers"] if c["viewers"] else 0.0
        print(f"| {c['viewers']} | {c['cpu_percent']:.1f} % | {extra:+.1f} % | {per:.2f} % | {c['events']:.0f} |")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--window", type=float, default=15.0)
    parser.add_argument("--viewers", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        process, web = start_prism(Path(data))
        try:
            pages = await page_loads(web, args.loads)
            costs = [await server_cost(process.pid, web, n, args.window) for n in (0, 1, args.viewers)]
        finally:
            process.terminate()
            process.wait(30)
    print_tables(pages, costs)


if __name__ == "__main__":
    asyncio.run(main())
