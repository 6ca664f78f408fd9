"""Archive then cleanup keeps every record exactly once, even when the archiver is killed at any step."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from prism_mcp.capability import invoke, registry
from prism_mcp.logarchive import CRASH_ENV, archive_dir, list_archives, read_archive
from prism_mcp.logstore import Filters, search_records
from prism_mcp.runtime import Runtime
from tests.conftest import ADMIN, ADMIN_KEY

CRASH_POINTS = ("after_collect", "after_tmp_write", "after_rename", "after_manifest", "mid_remove")


async def push(runtime: Runtime, records: list[dict[str, Any]]) -> None:
    cap = registry.get("logs_ingest")
    assert cap is not None
    await invoke(runtime, cap, ADMIN, {"records": records}, surface="internal")


def old_records(days: int, service: str, n: int, tag: str) -> list[dict[str, Any]]:
    start = datetime.now(UTC) - timedelta(days=days)
    return [
        {
            "timestamp": (start + timedelta(minutes=7 * i)).isoformat(),
            "level": "ERROR" if i % 5 == 0 else "INFO",
            "service": service,
            "event": "tagged",
            "fields": {"tag": f"{tag}-{i}"},
        }
        for i in range(n)
    ]


def run_archiver(runtime: Runtime, crash_at: str | None) -> subprocess.CompletedProcess[str]:
    settings = runtime.settings
    env = {
        **os.environ,
        "API_KEY": ADMIN_KEY,
        "REDIS_URL": settings.redis_url or "",
        "PRISM_DATA_DIR": str(settings.data_path),
        "PRISM_KEY_PREFIX": settings.key_prefix,
    }
    env.pop(CRASH_ENV, None)
    if crash_at:
        env[CRASH_ENV] = crash_at
    command = [
        sys.executable,
        "-c",
        "from prism_mcp.cli import main; main()",
        "call",
        "logs_archive",
        "--days_old",
        "7",
    ]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


def archived_tags(runtime: Runtime) -> Counter[str]:
    """Tags of the records in verified files: a file without a manifest may be a crash's leftover."""
    tags: Counter[str] = Counter()
    for found in list_archives(runtime.settings.data_path):
        if not found.verified:
            continue
        records = read_archive(found.path)
        assert len(records) == found.records
        tags.update(r["fields"]["tag"] for r in records)
    return tags


async def tags_in_redis(runtime: Runtime) -> Counter[str]:
    page = await search_records(
        runtime.store, Filters(text="tagged"), since_ms=0, until_ms=2**42, limit=1000, cursor=None
    )
    return Counter(r["fields"]["tag"] for r in page.records if r["event"] == "tagged")


async def _crashed_where_it_should(
    runtime: Runtime, point: str, in_files: Counter[str], in_redis: Counter[str], total: int
) -> None:
    names = [p.name for p in archive_dir(runtime.settings.data_path).iterdir()]
    files = list_archives(runtime.settings.data_path)
    if point == "after_collect":
        assert names == []
    if point == "after_tmp_write":
        assert any(name.endswith(".tmp") for name in names)
    if point == "after_rename":
        assert any(not f.verified for f in files)
    if point == "after_manifest":
        assert in_files
        assert sum(in_redis.values()) == total
    if point == "mid_remove":
        assert 0 < sum(in_redis.values()) < total


async def test_archiver_killed_at_every_step_loses_and_duplicates_nothing(runtime: Runtime) -> None:
    written = (
        old_records(12, "billing", 40, "b12") + old_records(12, "shop", 30, "s12") + old_records(9, "shop", 20, "s9")
    )
    await push(runtime, written)
    tags = [r["fields"]["tag"] for r in written]

    for point in CRASH_POINTS:
        killed = await asyncio.to_thread(run_archiver, runtime, point)
        assert killed.returncode == -signal.SIGKILL, (point, killed.stderr[-2000:])
        in_files, in_redis = archived_tags(runtime), await tags_in_redis(runtime)
        assert in_files + in_redis >= Counter(tags), point
        assert max(in_files.values(), default=1) == 1, point
        await _crashed_where_it_should(runtime, point, in_files, in_redis, len(tags))
        if point == "after_manifest":
            # Late records for a day that already has a verified file: they get a second part, not a duplicate.
            late = old_records(12, "billing", 5, "late")
            await push(runtime, late)
            tags += [r["fields"]["tag"] for r in late]

    finished = await asyncio.to_thread(run_archiver, runtime, None)
    assert finished.returncode == 0, finished.stderr[-2000:]

    assert archived_tags(runtime) == Counter(tags)
    assert all(found.verified for found in list_archives(runtime.settings.data_path))
    assert await tags_in_redis(runtime) == Counter()
    assert not [p for p in archive_dir(runtime.settings.data_path).iterdir() if p.name.endswith(".tmp")]


async def test_cleanup_deletes_only_files_past_the_age_and_keeps_the_rest_whole(runtime: Runtime) -> None:
    written = old_records(45, "api", 12, "a45") + old_records(10, "api", 8, "a10") + old_records(10, "mcp", 6, "m10")
    await push(runtime, written)
    archive = registry.get("logs_archive")
    cleanup = registry.get("logs_cleanup")
    assert archive is not None
    assert cleanup is not None
    await invoke(runtime, archive, ADMIN, {"days_old": 7}, surface="internal")
    assert archived_tags(runtime) == Counter(r["fields"]["tag"] for r in written)

    dry = await invoke(runtime, cleanup, ADMIN, {"days_old": 30, "dry_run": True}, surface="internal")
    assert len(list_archives(runtime.settings.data_path)) == 3
    done = await invoke(runtime, cleanup, ADMIN, {"days_old": 30}, surface="internal")

    assert dry.model_dump()["files"] == done.model_dump()["files"]
    assert archived_tags(runtime) == Counter(
        r["fields"]["tag"] for r in written if not r["fields"]["tag"].startswith("a45")
    )
