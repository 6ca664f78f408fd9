"""Archiving log records from Redis into gzip JSON-lines files, and deleting old archive files.

Files live under ``<data dir>/archives/logs/``, one per UTC day and service (a day gets a second part only when
records for it arrive after it was archived)::

    2026-11-24_api_3f9a0c1d2e.jsonl.gz            one record per line, oldest first, gzip without a timestamp
    2026-11-24_api_3f9a0c1d2e.jsonl.gz.json       its manifest: records, sha256 of the lines, size, times

Nothing is lost and nothing is archived twice, whatever step a crash interrupts, because of the order:

1. read the day's records for a service from Redis;
2. drop the ids already present in a *verified* file for that day and service (a file with a manifest); remove
   unverified leftovers of an earlier crash, whose records are still in Redis by construction;
3. write the rest to a temporary file, fsync it, rename it to its final name (derived from the record ids, so a
   rerun on the same records writes the same file), fsync the directory;
4. read the file back and compare the record count and checksum; only then write the manifest (atomically);
5. remove from Redis exactly the records now in verified files.

``PRISM_ARCHIVE_CRASH_AT`` (``after_collect``, ``after_tmp_write``, ``after_rename``, ``after_manifest``,
``mid_remove``) kills the process with SIGKILL at that step: the seam the exactly-once tests use.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import os
import re
import secrets
import signal
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from prism_mcp.errors import ArchiveError, ConflictError
from prism_mcp.logstore import encode_member, hours_key, parse_member, records_key
from prism_mcp.store.connection import Store

__all__ = [
    "ArchiveFile",
    "ArchiveResult",
    "archive_dir",
    "archive_records",
    "cleanup_archives",
    "list_archives",
    "read_archive",
]

CRASH_ENV = "PRISM_ARCHIVE_CRASH_AT"
LOCK_SECONDS = 900
SUFFIX = ".jsonl.gz"
MANIFEST = ".json"
_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})_([a-z0-9][a-z0-9_-]*)_([0-9a-f]{10})\.jsonl\.gz$")
_UNSAFE = re.compile(r"[^a-z0-9_-]")

Report = Callable[[float, float | None, str | None], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ArchiveFile:
    """One archive file and what its manifest says (``verified`` is false for a file without one)."""

    name: str
    path: Path
    day: date
    service: str
    size_bytes: int
    records: int | None
    sha256: str | None
    verified: bool


@dataclass(slots=True)
class ArchiveResult:
    files: list[ArchiveFile]
    archived: int
    removed_from_redis: int
    days: list[date]


def archive_dir(data_path: Path) -> Path:
    return data_path / "archives" / "logs"


def _crash_point(step: str) -> None:
    if os.environ.get(CRASH_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def _safe_service(service: str) -> str:
    return _UNSAFE.sub("-", service.lower())[:64] or "unknown"


def _day_of(ts_ms: int) -> date:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).date()


def _cutoff_day(days_old: int, now: datetime) -> date:
    """Days strictly before this one are wholly older than ``days_old`` days."""
    return (now - timedelta(days=days_old)).date()


def _parse_name(name: str) -> tuple[date, str] | None:
    match = _NAME.match(name)
    if match is None:
        return None
    return date.fromisoformat(match.group(1)), match.group(2)


def _describe(path: Path) -> ArchiveFile | None:
    parsed = _parse_name(path.name)
    if parsed is None:
        return None
    manifest = _read_manifest(path)
    return ArchiveFile(
        name=path.name,
        path=path,
        day=parsed[0],
        service=parsed[1],
        size_bytes=path.stat().st_size,
        records=manifest["records"] if manifest else None,
        sha256=manifest["sha256"] if manifest else None,
        verified=manifest is not None,
    )


def _manifest_path(path: Path) -> Path:
    return path.with_name(path.name + MANIFEST)


def _read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        manifest: dict[str, Any] = json.loads(_manifest_path(path).read_text())
    except (OSError, ValueError):
        return None
    return manifest if manifest.get("file") == path.name else None


def list_archives(data_path: Path) -> list[ArchiveFile]:
    """Every archive file, by day then service then name."""
    folder = archive_dir(data_path)
    if not folder.is_dir():
        return []
    found = [_describe(path) for path in folder.glob("*" + SUFFIX)]
    return sorted((f for f in found if f is not None), key=lambda f: (f.day, f.service, f.name))


def read_archive(path: Path) -> list[dict[str, Any]]:
    """The records of one archive file, oldest first."""
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [parse_member(line) for line in handle if line.strip()]


def _content(records: list[dict[str, Any]]) -> bytes:
    return "".join(encode_member(record) + "\n" for record in records).encode()


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as raw:
        raw.write(data)
        raw.flush()
        os.fsync(raw.fileno())
    _crash_point("after_tmp_write")
    tmp.replace(path)
    _fsync_dir(path.parent)


def _write_verified(folder: Path, day: date, service: str, records: list[dict[str, Any]]) -> ArchiveFile:
    """Write one archive file and its manifest; raises :class:`ArchiveError` if it does not read back intact."""
    records.sort(key=lambda r: (r["ts"], r["id"]))
    batch = hashlib.sha256("\n".join(r["id"] for r in records).encode()).hexdigest()[:10]
    path = folder / f"{day.isoformat()}_{service}_{batch}{SUFFIX}"
    content = _content(records)
    checksum = hashlib.sha256(content).hexdigest()
    _write_durably(path, gzip.compress(content, mtime=0))
    _crash_point("after_rename")

    with gzip.open(path, "rb") as handle:
        back = handle.read()
    if hashlib.sha256(back).hexdigest() != checksum or back.count(b"\n") != len(records):
        path.unlink(missing_ok=True)
        raise ArchiveError(f"{path.name} did not read back as written; its records stay in Redis, retry the archive")
    manifest = {
        "file": path.name,
        "day": day.isoformat(),
        "service": service,
        "records": len(records),
        "sha256": checksum,
        "first_ts": records[0]["ts"],
        "last_ts": records[-1]["ts"],
        "created_at": datetime.now(UTC).isoformat(),
    }
    _write_durably(_manifest_path(path), json.dumps(manifest).encode())
    return ArchiveFile(path.name, path, day, service, path.stat().st_size, len(records), checksum, True)


def _settle_existing(folder: Path, day: date, service: str) -> set[str]:
    """Ids already in verified files for ``day`` and ``service``; unverified leftovers and temp files go."""
    archived: set[str] = set()
    prefix = f"{day.isoformat()}_{service}_"
    for path in folder.glob(prefix + "*"):
        if path.name.endswith(".tmp"):
            path.unlink(missing_ok=True)
            continue
        if not path.name.endswith(SUFFIX) or _parse_name(path.name) != (day, service):
            continue
        if _read_manifest(path) is None:
            path.unlink(missing_ok=True)
            continue
        archived.update(record["id"] for record in read_archive(path))
    return archived


def _archive_group(folder: Path, day: date, service: str, records: list[dict[str, Any]]) -> ArchiveFile | None:
    archived = _settle_existing(folder, day, service)
    fresh = [record for record in records if record["id"] not in archived]
    if not fresh:
        return None
    return _write_verified(folder, day, service, fresh)


async def _read_day(store: Store, hours: list[int]) -> dict[str, list[tuple[int, str, dict[str, Any]]]]:
    """The day's records by service: (hour, member, record) so each can be removed from its own key."""
    pipe = store.redis.pipeline(transaction=False)
    for hour in hours:
        pipe.zrange(records_key(store, hour), 0, -1)
    by_service: dict[str, list[tuple[int, str, dict[str, Any]]]] = {}
    for hour, members in zip(hours, await pipe.execute(), strict=True):
        for member in members:
            record = parse_member(member)
            by_service.setdefault(_safe_service(str(record.get("service"))), []).append((hour, member, record))
    return by_service


async def _remove(store: Store, entries: list[tuple[int, str, dict[str, Any]]]) -> int:
    half = len(entries) // 2
    removed = 0
    for part, chunk in enumerate((entries[:half], entries[half:])):
        if part == 1:
            _crash_point("mid_remove")
        if not chunk:
            continue
        pipe = store.redis.pipeline(transaction=True)
        for hour, member, _ in chunk:
            pipe.zrem(records_key(store, hour), member)
        removed += sum(await pipe.execute())
    return removed


async def _forget_empty_hours(store: Store, hours: list[int]) -> None:
    pipe = store.redis.pipeline(transaction=False)
    for hour in hours:
        pipe.exists(records_key(store, hour))
    for hour, exists in zip(hours, await pipe.execute(), strict=True):
        if not exists:
            await store.redis.zrem(hours_key(store), str(hour))


async def _archive_day(store: Store, folder: Path, day: date, hours: list[int], result: ArchiveResult) -> None:
    for service, entries in sorted((await _read_day(store, hours)).items()):
        _crash_point("after_collect")
        written = await asyncio.to_thread(_archive_group, folder, day, service, [e[2] for e in entries])
        if written is not None:
            result.files.append(written)
            result.archived += written.records or 0
        _crash_point("after_manifest")
        result.removed_from_redis += await _remove(store, entries)
    await _forget_empty_hours(store, hours)


async def archive_records(store: Store, data_path: Path, days_old: int, report: Report) -> ArchiveResult:
    """Move every record of the UTC days wholly older than ``days_old`` days from Redis into archive files.

    Raises :class:`ConflictError` while another archive runs, :class:`ArchiveError` if a file does not verify.
    """
    lock = store.key("logs", "archive", "lock")
    token = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    if not await store.redis.set(lock, token, nx=True, ex=LOCK_SECONDS):
        holder = await store.redis.get(lock)
        if not _holder_is_dead(holder) or not await store.redis.set(lock, token, xx=True, ex=LOCK_SECONDS):
            raise ConflictError("a log archive is already running; retry when it has finished")
    try:
        return await _archive_locked(store, data_path, days_old, report)
    finally:
        if await store.redis.get(lock) == token:
            await store.redis.delete(lock)


def _holder_is_dead(holder: str | None) -> bool:
    """Whether the lock belongs to a process of this machine that no longer runs (killed mid-archive)."""
    host, _, rest = (holder or "").partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


async def _archive_locked(store: Store, data_path: Path, days_old: int, report: Report) -> ArchiveResult:
    cutoff = _cutoff_day(days_old, datetime.now(UTC))
    first_kept_hour = (cutoff - date(1970, 1, 1)).days * 24
    hours = [int(h) for h in await store.redis.zrangebyscore(hours_key(store), "-inf", f"({first_kept_hour}")]
    by_day: dict[date, list[int]] = {}
    for hour in hours:
        by_day.setdefault(date(1970, 1, 1) + timedelta(days=hour // 24), []).append(hour)

    folder = archive_dir(data_path)
    folder.mkdir(parents=True, exist_ok=True)
    result = ArchiveResult(files=[], archived=0, removed_from_redis=0, days=sorted(by_day))
    await report(0, len(by_day), f"{len(by_day)} days to archive")
    for done, day in enumerate(sorted(by_day), start=1):
        await _archive_day(store, folder, day, by_day[day], result)
        await report(done, len(by_day), f"archived {day.isoformat()}")
    return result


async def cleanup_archives(data_path: Path, days_old: int, *, dry_run: bool, report: Report) -> list[ArchiveFile]:
    """Delete (or, with ``dry_run``, only list) the archive files of days wholly older than ``days_old`` days."""
    cutoff = _cutoff_day(days_old, datetime.now(UTC))
    doomed = [f for f in list_archives(data_path) if f.day < cutoff]
    await report(0, len(doomed), f"{len(doomed)} archive files older than {cutoff.isoformat()}")
    if dry_run:
        return doomed
    for done, found in enumerate(doomed, start=1):
        # The data file goes first: a manifest without its file is ignored by every reader.
        found.path.unlink(missing_ok=True)
        _manifest_path(found.path).unlink(missing_ok=True)
        await report(done, len(doomed), f"deleted {found.name}")
    return doomed
