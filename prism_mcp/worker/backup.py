"""Logical backups of PRISM's keys, restorable into any Redis or Valkey, with the embedded server's RDB beside.

A backup is ``<data dir>/backups/prism-<UTC time to the microsecond>.jsonl.gz``: gzip of JSON lines, a header
first, then one line per key, named relative to the prefix, with its type, remaining TTL and value (strings,
hashes, lists, sets, sorted sets and streams with their consumer groups). ``DUMP`` payloads are not used: their
format differs between Redis and Valkey versions, and a JSON line can be restored anywhere and read by a person.
``<file>.sha256`` beside it is in ``sha256sum`` format (``sha256sum -c`` checks it). Keys are read one by one
with SCAN, so the backup is per key consistent, not a point-in-time image; with the embedded Valkey the RDB
file written by ``BGSAVE`` is copied beside it as that image (the guide's ``docker cp``).

Values are bytes in Redis. They are decoded as UTF-8 with ``surrogateescape``, so bytes that are not UTF-8
survive: JSON escapes the lone surrogates and restoring encodes them back to the same bytes.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redis.exceptions import ResponseError

from prism_mcp.errors import InvalidInputError, NotFoundError
from prism_mcp.store.connection import Store

__all__ = [
    "FORMAT",
    "Snapshot",
    "backup_dir",
    "count_existing",
    "list_backups",
    "load_backup",
    "restore_snapshot",
    "write_backup",
]

logger = logging.getLogger(__name__)

FORMAT = "prism-backup"
VERSION = 1
SUFFIX = ".jsonl.gz"
BATCH = 200
Progress = Callable[[int, int], Awaitable[None]]
# Not state but the life of processes: saq's queue (jobs in flight), tick claims, attempts running now,
# heartbeats, and the request telemetry (rolling figures that expire within the hour, and each process's
# in-flight count). Restored, they would resurrect jobs and processes that are long gone.
SKIPPED = ("saq:", "worker:tick:", "worker:lock:", "worker:done:", "worker:running", "heartbeat:", "telemetry:")


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _raw(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def backup_dir(data_path: Path) -> Path:
    return data_path / "backups"


@asynccontextmanager
async def _bytes_client(store: Store) -> AsyncIterator[Any]:
    client = store.client(decode_responses=False, socket_timeout=max(store.timeout, 10.0))
    try:
        yield client
    finally:
        await client.aclose()


async def _prism_keys(client: Any, prefix: str) -> list[bytes]:
    keys = []
    async for key in client.scan_iter(match=_raw(_glob_escape(prefix)) + b"*", count=1000):
        suffix = _text(key)[len(prefix) :]
        if not suffix.startswith(SKIPPED):
            keys.append(key)
    return sorted(keys)


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


async def _read_stream(client: Any, key: bytes) -> dict[str, Any] | None:
    try:
        info = await client.xinfo_stream(key)
    except ResponseError:
        return None  # deleted or expired since the scan
    entries = await client.xrange(key, "-", "+")
    groups = []
    for group in await client.xinfo_groups(key):
        start = _text(group["last-delivered-id"])
        if int(group["pending"]):
            # Entries delivered but not acknowledged are delivered again after a restore: nothing is lost.
            summary = await client.xpending(key, group["name"])
            start = _before(_text(summary["min"]))
        groups.append({"name": _text(group["name"]), "last_id": start})
    return {
        "entries": [[_text(eid), {_text(f): _text(v) for f, v in fields.items()}] for eid, fields in entries],
        "last_id": _text(info["last-generated-id"]),
        "groups": groups,
    }


def _before(stream_id: str) -> str:
    ms, _, seq = stream_id.partition("-")
    if int(seq or 0) > 0:
        return f"{ms}-{int(seq) - 1}"
    return f"{max(0, int(ms) - 1)}-18446744073709551615" if int(ms) > 0 else "0-0"


def _queue_read(pipe: Any, key: bytes, kind: str) -> None:
    if kind == "string":
        pipe.get(key)
    elif kind == "hash":
        pipe.hgetall(key)
    elif kind == "list":
        pipe.lrange(key, 0, -1)
    elif kind == "set":
        pipe.smembers(key)
    elif kind == "zset":
        pipe.zrange(key, 0, -1, withscores=True)


def _decoded(kind: str, raw: Any) -> Any:
    if kind == "string":
        return _text(raw)
    if kind == "hash":
        return {_text(f): _text(v) for f, v in raw.items()}
    if kind == "list":
        return [_text(v) for v in raw]
    if kind == "set":
        return sorted(_text(v) for v in raw)
    return [[_text(m), s] for m, s in raw]


async def _read_batch(client: Any, keys: list[bytes], prefix: str) -> list[dict[str, Any]]:
    """Read a batch of keys in two pipelined round trips (types and TTLs, then values); streams one by one."""
    async with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.type(key)
            pipe.pttl(key)
        answers = await pipe.execute()
    kinds = [(key, _text(answers[2 * i]), int(answers[2 * i + 1])) for i, key in enumerate(keys)]
    plain = [(key, kind, ttl) for key, kind, ttl in kinds if kind in _PIPELINED]
    async with client.pipeline(transaction=False) as pipe:
        for key, kind, _ in plain:
            _queue_read(pipe, key, kind)
        values = await pipe.execute() if plain else []
    records = []
    for (key, kind, ttl), raw in zip(plain, values, strict=True):
        if raw is not None:  # None: deleted or expired since the scan
            records.append(_record(key, kind, ttl, _decoded(kind, raw), prefix))
    for key, kind, ttl in kinds:
        if kind == "stream" and (stream := await _read_stream(client, key)) is not None:
            records.append(_record(key, kind, ttl, stream, prefix))
    return records


_PIPELINED = frozenset({"string", "hash", "list", "set", "zset"})


def _record(key: bytes, kind: str, ttl: int, value: Any, prefix: str) -> dict[str, Any]:
    return {"k": _text(key)[len(prefix) :], "t": kind, "p": ttl if ttl > 0 else None, "v": value}


@dataclass(frozen=True, slots=True)
class Written:
    path: Path
    keys: int
    size_bytes: int
    sha256: str
    created_at: datetime


async def write_backup(store: Store, directory: Path, progress: Progress | None = None) -> Written:
    """Write every PRISM key to a new checksummed backup file in ``directory``."""
    created = datetime.now(UTC)
    # Names sort by time (retention keeps the newest by name), down to the microsecond.
    name = f"prism-{created:%Y%m%d-%H%M%S-%f}{SUFFIX}"
    async with _bytes_client(store) as client:
        keys = await _prism_keys(client, store.prefix)
        records: list[dict[str, Any]] = []
        for start in range(0, len(keys), BATCH):
            records += await _read_batch(client, keys[start : start + BATCH], store.prefix)
            if progress is not None:
                await progress(min(start + BATCH, len(keys)), len(keys))
    header = {"format": FORMAT, "version": VERSION, "prefix": store.prefix, "created_at": created.isoformat()}
    header["keys"] = len(records)
    path, digest, size = await asyncio.to_thread(_write_file, directory, name, header, records)
    return Written(path, len(records), size, digest, created)


def _write_file(
    directory: Path, name: str, header: dict[str, Any], records: list[dict[str, Any]]
) -> tuple[Path, str, int]:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    partial = path.with_name(name + ".partial")
    with gzip.open(partial, "wt", encoding="ascii") as out:
        out.write(json.dumps(header) + "\n")
        for record in records:
            out.write(json.dumps(record, separators=(",", ":")) + "\n")
    digest = _sha256(partial)
    with open(partial, "rb") as handle:
        os.fsync(handle.fileno())
    partial.replace(path)
    _sidecar(path).write_text(f"{digest}  {path.name}\n")
    return path, digest, path.stat().st_size


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A verified backup, read whole into memory before anything is written."""

    path: Path
    header: dict[str, Any]
    records: list[dict[str, Any]]


def _refuse(path: Path, why: str) -> InvalidInputError:
    return InvalidInputError("file", f"{path.name} {why}; nothing was restored")


def load_backup(path: Path) -> Snapshot:
    """Check the file's sha256 against its sidecar and parse it; :class:`InvalidInputError` if either fails."""
    if not path.is_file():
        raise NotFoundError(f"no backup file {str(path)!r}; `prism call backup_list` lists them")
    sidecar = _sidecar(path)
    if not sidecar.is_file():
        raise _refuse(path, f"has no checksum file {sidecar.name} beside it, so it cannot be verified")
    expected = sidecar.read_text().split()[0] if sidecar.read_text().split() else ""
    actual = _sha256(path)
    if actual != expected:
        raise _refuse(path, f"failed its checksum (expected sha256 {expected[:16]}…, got {actual[:16]}…)")
    try:
        with gzip.open(path, "rt", encoding="ascii") as handle:
            lines = [json.loads(line) for line in handle if line.strip()]
    except (OSError, EOFError, ValueError) as exc:
        raise _refuse(path, f"cannot be read ({type(exc).__name__})") from exc
    header, records = (lines[0], lines[1:]) if lines else ({}, [])
    if header.get("format") != FORMAT or header.get("version") != VERSION or header.get("keys") != len(records):
        raise _refuse(path, f"is not a {FORMAT} version {VERSION} file with the key count its header states")
    return Snapshot(path, header, records)


async def count_existing(store: Store, snapshot: Snapshot) -> int:
    """How many of the snapshot's keys already exist under the store's prefix (and would be overwritten)."""
    async with store.redis.pipeline(transaction=False) as pipe:
        for record in snapshot.records:
            pipe.exists(store.prefix + record["k"])
        found = await pipe.execute() if snapshot.records else []
    return sum(int(n) for n in found)


def _write_stream(pipe: Any, key: bytes, value: dict[str, Any]) -> None:
    entries = value["entries"]
    for entry_id, fields in entries:
        pipe.xadd(key, {_raw(f): _raw(v) for f, v in fields.items()}, id=entry_id)
    if not entries:
        # An empty stream exists in Redis only once created: add and delete one placeholder entry.
        pipe.xadd(key, {b"_": b"_"}, id="0-1")
        pipe.xdel(key, "0-1")
    if value["last_id"] not in ("0-0", entries[-1][0] if entries else ""):
        pipe.execute_command("XSETID", key, value["last_id"])
    for group in value["groups"]:
        pipe.xgroup_create(key, _raw(group["name"]), id=group["last_id"])


def _write_record(pipe: Any, key: bytes, record: dict[str, Any]) -> None:
    kind, value = record["t"], record["v"]
    pipe.delete(key)
    if kind == "string":
        pipe.set(key, _raw(value))
    elif kind == "hash" and value:
        pipe.hset(key, mapping={_raw(f): _raw(v) for f, v in value.items()})
    elif kind == "list" and value:
        pipe.rpush(key, *(_raw(v) for v in value))
    elif kind == "set" and value:
        pipe.sadd(key, *(_raw(v) for v in value))
    elif kind == "zset" and value:
        pipe.zadd(key, {_raw(m): float(s) for m, s in value})
    elif kind == "stream":
        _write_stream(pipe, key, value)
    if record["p"]:
        pipe.pexpire(key, int(record["p"]))


async def restore_snapshot(store: Store, snapshot: Snapshot, progress: Progress | None = None) -> int:
    """Write every key of the snapshot under the store's prefix, replacing keys of the same name.

    Each key is restored with its type, value and the TTL it had left when the backup was taken. Returns the
    number of keys restored.
    """
    records = snapshot.records
    async with _bytes_client(store) as client:
        for start in range(0, len(records), BATCH):
            async with client.pipeline(transaction=True) as pipe:
                for record in records[start : start + BATCH]:
                    _write_record(pipe, _raw(store.prefix + record["k"]), record)
                await pipe.execute()
            if progress is not None:
                await progress(min(start + BATCH, len(records)), len(records))
    logger.info("backup_restored", extra={"file": snapshot.path.name, "keys": len(records)})
    return len(records)


@dataclass(frozen=True, slots=True)
class Listed:
    path: Path
    created_at: datetime | None
    keys: int | None
    size_bytes: int
    sha256: str | None
    rdb: Path | None


def _header(path: Path) -> dict[str, Any]:
    try:
        with gzip.open(path, "rt", encoding="ascii") as handle:
            header: dict[str, Any] = json.loads(handle.readline())
    except (OSError, EOFError, ValueError):
        return {}
    return header


def _listed(path: Path) -> Listed:
    header = _header(path)
    sidecar = _sidecar(path)
    digest = sidecar.read_text().split()[0] if sidecar.is_file() and sidecar.read_text().split() else None
    created = header.get("created_at")
    rdb = rdb_path_for(path)
    return Listed(
        path=path,
        created_at=datetime.fromisoformat(created) if isinstance(created, str) else None,
        keys=header.get("keys") if isinstance(header.get("keys"), int) else None,
        size_bytes=path.stat().st_size,
        sha256=digest,
        rdb=rdb if rdb.is_file() else None,
    )


def rdb_path_for(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(SUFFIX) + ".rdb")


def list_backups(directory: Path) -> list[Listed]:
    """The backups in ``directory``, newest first."""
    if not directory.is_dir():
        return []
    return [_listed(p) for p in sorted(directory.glob(f"prism-*{SUFFIX}"), reverse=True)]


def apply_retention(directory: Path, keep: int) -> list[str]:
    """Delete all but the newest ``keep`` backups (each with its checksum and RDB); returns the names removed."""
    removed = []
    for listed in list_backups(directory)[keep:]:
        for path in (listed.path, _sidecar(listed.path), rdb_path_for(listed.path)):
            path.unlink(missing_ok=True)
        removed.append(listed.path.name)
    return removed


async def copy_rdb(store: Store, source: Path, target: Path, wait: float) -> None:
    """``BGSAVE``, wait for it (at most ``wait`` seconds), and copy the RDB file to ``target``.

    Raises :class:`TimeoutError` if the save does not finish in time and :class:`OSError` if it failed.
    """
    timeout = wait
    before = await _saves(store)
    await store.redis.bgsave(schedule=True)
    deadline = time.monotonic() + timeout
    while True:
        info = await store.redis.info("persistence")
        if not int(info.get("rdb_bgsave_in_progress", 0)) and await _saves(store) > before:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"BGSAVE did not finish within {timeout:g} s")
        await asyncio.sleep(0.05)
    if info.get("rdb_last_bgsave_status") != "ok":
        raise OSError(f"BGSAVE failed (rdb_last_bgsave_status={info.get('rdb_last_bgsave_status')!r})")
    await asyncio.to_thread(shutil.copy2, source, target)


async def _saves(store: Store) -> int:
    info = await store.redis.info("persistence")
    return int(info.get("rdb_saves", 0))
