"""Logs: statistics, search, ingestion, archive and cleanup of the records every PRISM process captures."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from prism_mcp.capability import Call, Scope, capability
from prism_mcp.errors import InvalidInputError
from prism_mcp.logarchive import ArchiveFile, archive_dir, archive_records, cleanup_archives, list_archives
from prism_mcp.logcapture import writer_state
from prism_mcp.logsetup import mask_secrets
from prism_mcp.logstore import Filters, new_record_id, read_stats, search_records, write_records
from prism_mcp.runtime import Runtime, dashboard_section

__all__ = ["ArchiveFileInfo", "LogArchiveResult", "LogRecord", "LogRecordIn", "LogSearchPage", "LogStats"]

Level = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
SERVICE_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
# Records from the future beyond this are refused: a clock that far ahead would misplace them in the hours.
MAX_CLOCK_SKEW = timedelta(minutes=5)


class LogRecordIn(BaseModel):
    """One record pushed by another service."""

    model_config = ConfigDict(extra="forbid")

    timestamp: datetime = Field(description="When it happened, ISO 8601; without an offset it is read as UTC.")
    level: Level = Field(description="DEBUG, INFO, WARNING, ERROR or CRITICAL (any case).")
    service: str = Field(pattern=SERVICE_PATTERN, description="The emitting service, lower-case: `billing`.")
    event: str = Field(min_length=1, max_length=200, description="The event name, a fact: `payment_failed`.")
    message: str = Field(default="", max_length=10_000, description="Free text, such as an exception.")
    fields: dict[str, Any] = Field(default_factory=dict, max_length=50, description="Structured fields.")

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("timestamp")
    @classmethod
    def _not_future(cls, value: datetime) -> datetime:
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        if aware > datetime.now(UTC) + MAX_CLOCK_SKEW:
            raise ValueError("lies in the future; send the time the event happened, in UTC or with an offset")
        return aware


class LogRecord(BaseModel):
    id: str
    timestamp: datetime
    level: str
    service: str
    event: str
    message: str = ""
    request_id: str | None = None
    capability: str | None = None
    fields: dict[str, Any] = {}

    @classmethod
    def from_stored(cls, record: dict[str, Any]) -> LogRecord:
        return cls(
            id=record["id"],
            timestamp=datetime.fromtimestamp(record["ts"] / 1000, UTC),
            level=record["level"],
            service=record["service"],
            event=record["event"],
            message=record.get("message") or "",
            request_id=record.get("request_id"),
            capability=record.get("capability"),
            fields=record.get("fields") or {},
        )


class HourCount(BaseModel):
    hour: datetime = Field(description="Start of the hour, UTC.")
    total: int
    errors: int = Field(description="ERROR and CRITICAL records.")


class ErrorEventCount(BaseModel):
    event: str
    count: int


class LogStats(BaseModel):
    hours: int
    since: datetime
    until: datetime
    total: int
    by_level: dict[str, int]
    by_service: dict[str, int]
    hourly: list[HourCount] = Field(description="One entry per hour of the window, oldest first.")
    error_rate_percent: float = Field(description="ERROR and CRITICAL records as a percentage of all records.")
    top_errors: list[ErrorEventCount] = Field(description="The most frequent ERROR and CRITICAL events.")
    dropped: int = Field(description="Records lost before storage (Redis down or slow, buffer full) in the window.")
    dropped_unreported: int = Field(description="Drops in this process not yet added to the stored counters.")


class LogSearchPage(BaseModel):
    records: list[LogRecord] = Field(description="Newest first.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null when there is none.")
    scanned: int = Field(description="Stored records read for this page.")


class LogIngestResult(BaseModel):
    accepted: int


class ArchiveFileInfo(BaseModel):
    name: str
    day: date
    service: str
    size_bytes: int
    records: int | None = Field(description="From the manifest; null for a file that was never verified.")
    sha256: str | None
    verified: bool

    @classmethod
    def of(cls, found: ArchiveFile) -> ArchiveFileInfo:
        return cls(
            name=found.name,
            day=found.day,
            service=found.service,
            size_bytes=found.size_bytes,
            records=found.records,
            sha256=found.sha256,
            verified=found.verified,
        )


class LogArchiveResult(BaseModel):
    days_old: int
    days: list[date] = Field(description="The UTC days whose records were moved.")
    files: list[ArchiveFileInfo] = Field(description="Files written by this run.")
    archived: int = Field(description="Records written to files by this run.")
    removed_from_redis: int = Field(description="Records removed from Redis, each present in a verified file.")


class LogCleanupResult(BaseModel):
    days_old: int
    dry_run: bool
    files: list[ArchiveFileInfo] = Field(description="Deleted, or with dry_run the ones that would be.")
    deleted: int
    freed_bytes: int


class LogArchiveList(BaseModel):
    directory: str
    files: list[ArchiveFileInfo]
    total_bytes: int
    total_records: int


def _hour_start(hour: int) -> datetime:
    return datetime.fromtimestamp(hour * 3600, UTC)


async def stats_of(runtime: Runtime, hours: int) -> LogStats:
    window = await read_stats(runtime.store, hours)
    state = writer_state(runtime)
    unreported = state.unreported_drops if state else 0
    return LogStats(
        hours=hours,
        since=_hour_start(window.first_hour),
        until=datetime.now(UTC),
        total=window.total,
        by_level=window.by_level,
        by_service=window.by_service,
        hourly=[HourCount(hour=_hour_start(h), total=n, errors=e) for h, n, e in window.hourly],
        error_rate_percent=round(100.0 * window.errors / window.total, 3) if window.total else 0.0,
        top_errors=[ErrorEventCount(event=name, count=n) for name, n in window.top_errors],
        dropped=window.dropped + unreported,
        dropped_unreported=unreported,
    )


@capability("GET /monitoring/logs/stats", scope=Scope.READ, read_only=True)
async def logs_stats(
    call: Call,
    hours: Annotated[int, Field(ge=1, le=720, description="The window: the last N hours, this one included.")] = 24,
) -> LogStats:
    """Log totals by level and service over the last `hours` hours, hourly, with error rate and top errors.

    `dropped` counts records lost before storage (Redis down or slow, or the capture buffer full): not zero
    means the statistics undercount. Reads counters kept per hour, so any window answers quickly.
    """
    return await stats_of(call.runtime, hours)


def _ms(value: datetime | None, default: int) -> int:
    if value is None:
        return default
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return int(aware.timestamp() * 1000)


@capability("GET /monitoring/logs", scope=Scope.READ, read_only=True)
async def logs_search(
    call: Call,
    level: Annotated[Level | None, Field(description="Minimum level: WARNING also returns ERROR.")] = None,
    service: Annotated[str | None, Field(pattern=SERVICE_PATTERN, description="Only this service: api.")] = None,
    q: Annotated[
        str | None, Field(min_length=1, max_length=200, description="Text in the event, message, request id or fields.")
    ] = None,
    since: Annotated[datetime | None, Field(description="Oldest time, ISO 8601 (UTC without an offset).")] = None,
    until: Annotated[datetime | None, Field(description="Newest time, ISO 8601; defaults to now.")] = None,
    limit: Annotated[int, Field(ge=1, le=1000, description="Records per page.")] = 100,
    cursor: Annotated[
        str | None, Field(max_length=200, description="next_cursor of the previous page, to read on.")
    ] = None,
) -> LogSearchPage:
    """Search captured and pushed log records, newest first, filtered by level, service, text and time.

    Returns at most `limit` records and a `next_cursor` for the next page (null at the end). Records older than
    the archive age are no longer here: they are in the files `logs_archives` lists.
    """
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    since_ms, until_ms = _ms(since, 0), _ms(until, now_ms)
    if since_ms > until_ms:
        raise InvalidInputError("since", "must not be later than until")
    filters = Filters(min_level=level, service=service, text=q.lower() if q else None)
    page = await search_records(
        call.runtime.store, filters, since_ms=since_ms, until_ms=until_ms, limit=limit, cursor=cursor
    )
    return LogSearchPage(
        records=[LogRecord.from_stored(r) for r in page.records], next_cursor=page.next_cursor, scanned=page.scanned
    )


def _stored(record: LogRecordIn) -> dict[str, Any]:
    return {
        "id": new_record_id(),
        "ts": int(record.timestamp.timestamp() * 1000),
        "level": record.level,
        "service": record.service,
        "event": record.event,
        "message": record.message,
        "request_id": None,
        "capability": None,
        "fields": dict(mask_secrets(dict(record.fields))),
    }


@capability("POST /monitoring/logs", scope=Scope.OPERATE, idempotent=False)
async def logs_ingest(
    call: Call,
    records: Annotated[
        list[LogRecordIn],
        Field(min_length=1, max_length=1000, description="1 to 1000 records; one bad record refuses the batch."),
    ],
) -> LogIngestResult:
    """Store a batch of log records pushed by another service, so PRISM watches more than itself.

    Every record is validated first (timestamp, level, service, event, message, fields); one bad record refuses
    the whole batch with an error naming it (`records.3.level`) and nothing is stored. Records count in
    `logs_stats`, appear in `logs_search` and are archived by age like PRISM's own.
    """
    accepted = await write_records(call.runtime.store, [_stored(r) for r in records])
    return LogIngestResult(accepted=accepted)


@capability("POST /monitoring/logs/archive", scope=Scope.OPERATE, long_running=True)
async def logs_archive(
    call: Call,
    days_old: Annotated[int, Field(ge=0, le=3650, description="Archive the UTC days wholly older than this.")] = 7,
) -> LogArchiveResult:
    """Move log records older than `days_old` days from Redis into gzip JSON-lines files, one per day and service.

    Each file is fsynced, read back and verified by record count and checksum before its records leave Redis;
    a crash at any step and a rerun lose nothing and archive nothing twice. Whole UTC days move together.
    Answers with the files written and the counts; `logs_archives` lists all files. Reports progress per day.
    """
    result = await archive_records(call.runtime.store, call.runtime.settings.data_path, days_old, call.report)
    return LogArchiveResult(
        days_old=days_old,
        days=result.days,
        files=[ArchiveFileInfo.of(f) for f in result.files],
        archived=result.archived,
        removed_from_redis=result.removed_from_redis,
    )


@capability("POST /monitoring/logs/cleanup", scope=Scope.OPERATE, destructive=True, long_running=True)
async def logs_cleanup(
    call: Call,
    days_old: Annotated[int, Field(ge=0, le=3650, description="Delete archive files of days older than this.")] = 30,
    dry_run: Annotated[bool, Field(description="List the files that would be deleted, delete nothing.")] = False,
) -> LogCleanupResult:
    """Delete log archive files whose day is older than `days_old` days; with `dry_run`, only list them.

    Deleted records are gone for good: run with dry_run first to see what goes. Reports progress per file.
    """
    doomed = await cleanup_archives(call.runtime.settings.data_path, days_old, dry_run=dry_run, report=call.report)
    return LogCleanupResult(
        days_old=days_old,
        dry_run=dry_run,
        files=[ArchiveFileInfo.of(f) for f in doomed],
        deleted=0 if dry_run else len(doomed),
        freed_bytes=0 if dry_run else sum(f.size_bytes for f in doomed),
    )


@capability("GET /monitoring/logs/archives", scope=Scope.READ, read_only=True)
async def logs_archives(call: Call) -> LogArchiveList:
    """The log archive files, by day and service, with their sizes and record counts.

    `verified` false marks a file left by an interrupted archive: its records are still in Redis, and the next
    `logs_archive` replaces it.
    """
    data_path = call.runtime.settings.data_path
    files = [ArchiveFileInfo.of(f) for f in list_archives(data_path)]
    return LogArchiveList(
        directory=str(archive_dir(data_path)),
        files=files,
        total_bytes=sum(f.size_bytes for f in files),
        total_records=sum(f.records or 0 for f in files),
    )


@dashboard_section("logs")
async def _logs_dashboard(runtime: Runtime) -> dict[str, Any]:
    stats = await stats_of(runtime, 24)
    return {
        "total_24h": stats.total,
        "errors_24h": sum(n for level, n in stats.by_level.items() if level in ("ERROR", "CRITICAL")),
        "error_rate_percent": stats.error_rate_percent,
        "dropped_24h": stats.dropped,
        "top_error": stats.top_errors[0].event if stats.top_errors else None,
    }
