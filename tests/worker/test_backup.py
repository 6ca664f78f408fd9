"""Backups on a Valkey of the test's own: back up, flush, `prism restore`, and every key is back as it was."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from prism_mcp.capability import invoke, registry
from prism_mcp.config import Settings, load_settings
from prism_mcp.runtime import Runtime
from prism_mcp.store import EmbeddedValkey, Store
from prism_mcp.worker.backup import SKIPPED
from tests.conftest import ADMIN, ADMIN_KEY

ROOT = Path(__file__).resolve().parents[2]
BINARY = b"\xff\xfe raw \x00 bytes"


@pytest.fixture(scope="module")
def valkey(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedValkey]:
    server = EmbeddedValkey(tmp_path_factory.mktemp("backup-valkey"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def backup_settings(valkey: EmbeddedValkey, tmp_path: Path) -> Settings:
    assert valkey.url is not None
    return load_settings(
        API_KEY=ADMIN_KEY,
        REDIS_URL=valkey.url,
        PRISM_DATA_DIR=str(tmp_path / "data"),
        PRISM_KEY_PREFIX=f"b{uuid.uuid4().hex[:8]}:",
        PRISM_BACKUP_KEEP=2,
    )


@pytest.fixture
async def embedded_runtime(backup_settings: Settings, valkey: EmbeddedValkey) -> AsyncIterator[Runtime]:
    assert backup_settings.redis_url is not None
    store = Store(backup_settings.redis_url, prefix=backup_settings.key_prefix)
    runtime = Runtime(backup_settings, store, services=frozenset({"cli"}))
    runtime.state["embedded"] = valkey
    runtime.state["redis_origin"] = "embedded"
    yield runtime
    await store.close()


@pytest.fixture
async def raw(valkey: EmbeddedValkey) -> AsyncIterator[Any]:
    client = aioredis.Redis.from_url(valkey.url or "")
    yield client
    await client.aclose()


async def _fill(raw: Any, prefix: str) -> None:
    p = prefix.encode()
    await raw.set(p + b"text", "héllo")
    await raw.set(p + b"binary", BINARY, px=600_000)
    await raw.hset(p + b"hash", mapping={"a": "1", "b": BINARY})
    await raw.rpush(p + b"list", "x", "y", "x")
    await raw.expire(p + b"list", 3600)
    await raw.sadd(p + b"set", "m1", "m2")
    await raw.zadd(p + b"zset", {"low": -1.5, "high": 1e12})
    await raw.xadd(p + b"stream", {"event": "one"}, id="1-1")
    await raw.xadd(p + b"stream", {"event": "two"}, id="2-0")
    await raw.xgroup_create(p + b"stream", "notifier", id="0-0")
    await raw.xreadgroup("notifier", "c1", {p + b"stream": ">"}, count=1)
    await raw.set(p + b"saq:job:transient", "skipped")
    await raw.set(p + b"heartbeat:worker:gone:1", "skipped")


async def _image(raw: Any, prefix: str) -> dict[bytes, tuple[str, Any, int]]:
    """Every key under ``prefix`` but the process-life ones backups skip: (type, value, ttl in ms)."""
    image = {}
    skipped = tuple(prefix.encode() + part.encode() for part in SKIPPED)
    async for key in raw.scan_iter(match=prefix.encode() + b"*"):
        if key.startswith(skipped):
            continue
        kind = (await raw.type(key)).decode()
        reader = {
            "string": lambda k: raw.get(k),
            "hash": lambda k: raw.hgetall(k),
            "list": lambda k: raw.lrange(k, 0, -1),
            "set": lambda k: raw.smembers(k),
            "zset": lambda k: raw.zrange(k, 0, -1, withscores=True),
            "stream": lambda k: raw.xrange(k),
        }[kind]
        image[key] = (kind, await reader(key), await raw.pttl(key))
    return image


async def _backup(runtime: Runtime) -> Any:
    cap = registry.get("backup_create")
    assert cap is not None
    seen: list[tuple[float, float | None]] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        seen.append((done, total))

    result = await invoke(runtime, cap, ADMIN, {}, surface="internal", progress=progress)
    assert seen, "backup_create reported no progress"
    return result


def _prism(settings: Settings, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "REDIS_URL": settings.redis_url or "",
        "API_KEY": ADMIN_KEY,
        "PRISM_KEY_PREFIX": settings.key_prefix,
        "PRISM_DATA_DIR": str(settings.data_dir),
    }
    command = [sys.executable, "-c", "from prism_mcp.cli import main; main()", *args]
    return subprocess.run(command, cwd=ROOT, env=env, input=stdin, capture_output=True, text=True, timeout=60)


async def _flush(raw: Any) -> None:
    await raw.flushdb()
    assert await raw.dbsize() == 0


def _same_ttls(before: dict[bytes, tuple[str, Any, int]], after: dict[bytes, tuple[str, Any, int]]) -> None:
    for key, (_, _, ttl) in before.items():
        restored = after[key][2]
        if ttl < 0:
            assert restored == -1, key
        else:
            # The TTL left at backup time comes back, less the seconds the test itself took.
            assert ttl - 30_000 < restored <= ttl, (key, ttl, restored)


async def test_backup_flush_restore_brings_every_key_back_with_type_value_and_ttl(
    embedded_runtime: Runtime, raw: Any
) -> None:
    prefix = embedded_runtime.store.prefix
    await _fill(raw, prefix)
    before = await _image(raw, prefix)

    created = await _backup(embedded_runtime)
    await _flush(raw)
    done = await asyncio.to_thread(_prism, embedded_runtime.settings, "restore", created.path, "--yes")
    after = await _image(raw, prefix)

    assert done.returncode == 0, done.stderr
    assert f"restored {created.keys} keys" in done.stdout
    assert created.keys == len(before) == 7
    assert {k: (t, v) for k, (t, v, _) in after.items()} == {k: (t, v) for k, (t, v, _) in before.items()}
    _same_ttls(before, after)
    groups = await raw.xinfo_groups(prefix.encode() + b"stream")
    assert [(g["name"], g["pending"]) for g in groups] == [(b"notifier", 0)]
    redelivered = await raw.xreadgroup("notifier", "c2", {prefix.encode() + b"stream": ">"})
    assert [entry_id for entry_id, _ in redelivered[0][1]] == [b"1-1", b"2-0"]


async def test_backup_with_the_embedded_valkey_copies_its_rdb_beside_the_file(
    embedded_runtime: Runtime, raw: Any
) -> None:
    await raw.set(embedded_runtime.store.prefix + "k", "v")

    created = await _backup(embedded_runtime)

    assert created.rdb_file is not None
    rdb = Path(created.path).with_name(created.rdb_file)
    image = rdb.read_bytes()
    assert image.startswith((b"REDIS", b"VALKEY"))
    assert (embedded_runtime.store.prefix + "k").encode() in image
    assert created.notes == []


async def test_a_corrupted_backup_is_refused_and_changes_nothing(embedded_runtime: Runtime, raw: Any) -> None:
    prefix = embedded_runtime.store.prefix
    await _fill(raw, prefix)
    created = await _backup(embedded_runtime)
    await raw.set(prefix + "text", "changed since the backup")
    before = await _image(raw, prefix)
    damaged = bytearray(Path(created.path).read_bytes())
    damaged[len(damaged) // 2] ^= 0x01
    Path(created.path).write_bytes(bytes(damaged))

    done = await asyncio.to_thread(_prism, embedded_runtime.settings, "restore", created.path, "--yes")

    assert done.returncode == 1
    assert "failed its checksum" in done.stderr
    assert "nothing was restored" in done.stderr
    after = await _image(raw, prefix)
    assert {k: (t, v) for k, (t, v, _) in after.items()} == {k: (t, v) for k, (t, v, _) in before.items()}
    assert all(after[k][2] <= ttl for k, (_, _, ttl) in before.items())


async def test_restore_asks_before_overwriting_and_a_no_changes_nothing(embedded_runtime: Runtime, raw: Any) -> None:
    prefix = embedded_runtime.store.prefix
    await raw.set(prefix + "text", "original")
    created = await _backup(embedded_runtime)
    await raw.set(prefix + "text", "newer")

    done = await asyncio.to_thread(_prism, embedded_runtime.settings, "restore", created.path, stdin="n\n")

    assert done.returncode == 1
    assert "1 of the 1 keys in the backup already exist" in done.stdout
    assert await raw.get(prefix + "text") == b"newer"


async def test_backup_list_keeps_only_the_newest_backups(embedded_runtime: Runtime) -> None:
    made = [await _backup(embedded_runtime) for _ in range(3)]
    listing_cap = registry.get("backup_list")
    assert listing_cap is not None

    listing = await invoke(embedded_runtime, listing_cap, ADMIN, {}, surface="internal")

    assert [b.name for b in listing.backups] == [made[2].name, made[1].name]
    assert made[2].removed == [made[0].name]
    assert not Path(made[0].path).exists()
    assert all(b.sha256 and len(b.sha256) == 64 for b in listing.backups)


async def test_prism_backup_command_writes_a_backup_and_prints_it(embedded_runtime: Runtime, raw: Any) -> None:
    await raw.set(embedded_runtime.store.prefix + "k", "v")

    done = await asyncio.to_thread(_prism, embedded_runtime.settings, "backup")

    assert done.returncode == 0, done.stderr
    assert '"keys": 1' in done.stdout
    assert list((embedded_runtime.settings.data_path / "backups").glob("prism-*.jsonl.gz"))
