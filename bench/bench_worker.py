"""Backup and restore throughput on a private embedded Valkey, against DUMP/RESTORE of the same keys.

    .venv/bin/python bench/bench_worker.py [--keys 20000]

Loopback only; the Valkey is started in a temporary directory and stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from prism_mcp.store import EmbeddedValkey, Store
from prism_mcp.worker.backup import load_backup, restore_snapshot, write_backup

PREFIX = "bench:"


async def fill(client: Any, keys: int) -> None:
    async with client.pipeline(transaction=False) as pipe:
        for n in range(keys):
            kind = n % 4
            key = f"{PREFIX}{kind}:{n}"
            if kind == 0:
                pipe.set(key, "v" * 64, ex=86_400)
            elif kind == 1:
                pipe.hset(key, mapping={f"f{i}": str(i) for i in range(10)})
            elif kind == 2:
                pipe.rpush(key, *[str(i) for i in range(10)])
            else:
                pipe.zadd(key, {f"m{i}": i for i in range(10)})
        await pipe.execute()


async def dump_restore(client: Any) -> float:
    keys = [k async for k in client.scan_iter(match=PREFIX + "*", count=1000)]
    started = time.perf_counter()
    async with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.dump(key)
            pipe.pttl(key)
        answers = await pipe.execute()
    await client.flushdb()
    async with client.pipeline(transaction=False) as pipe:
        for i, key in enumerate(keys):
            ttl = answers[2 * i + 1]
            pipe.restore(key, ttl if ttl > 0 else 0, answers[2 * i], replace=True)
        await pipe.execute()
    return time.perf_counter() - started


async def main(keys: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedValkey(Path(tmp))
        url = await asyncio.to_thread(server.start)
        client = aioredis.Redis.from_url(url)
        store = Store(url, prefix=PREFIX)
        try:
            await fill(client, keys)
            started = time.perf_counter()
            written = await write_backup(store, Path(tmp) / "backups")
            backup_s = time.perf_counter() - started
            await client.flushdb()
            started = time.perf_counter()
            snapshot = load_backup(written.path)
            await restore_snapshot(store, snapshot)
            restore_s = time.perf_counter() - started
            assert await client.dbsize() == keys
            native_s = await dump_restore(client)
        finally:
            await client.aclose()
            await store.close()
            await asyncio.to_thread(server.stop)
    print(f"keys: {keys}, backup file: {written.size_bytes / 1e6:.2f} MB gzip")
    print(f"backup  (SCAN + typed reads + gzip JSON + sha256): {backup_s:.2f} s, {keys / backup_s:,.0f} keys/s")
    print(f"restore (verify + parse + typed writes):          {restore_s:.2f} s, {keys / restore_s:,.0f} keys/s")
    print(f"DUMP + RESTORE round trip (not portable):         {native_s:.2f} s, {keys / native_s:,.0f} keys/s")
    print(f"ratio logical backup+restore / DUMP+RESTORE: {(backup_s + restore_s) / native_s:.1f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=20_000)
    asyncio.run(main(min(parser.parse_args().keys, 200_000)))
