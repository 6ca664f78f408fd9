"""What the dashboard shows and does: pages of sections (each one API read) and actions (each one API write).

Sections whose answer shape PRISM fixes (health, metrics, alerts, notification settings, log statistics) have
their own views; every other answer is drawn generically as key/value lists and tables, so a page keeps working
whatever fields an area adds. Actions name the scope they need: the dashboard hides what a key may not do, and
the API refuses it anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from prism_mcp.capability import Scope

__all__ = ["ACTIONS", "LIVE_SECTIONS", "PAGES", "Action", "FormField", "Page", "RowAction", "Section"]

FieldKind = Literal["str", "int", "bool", "list", "choice"]


@dataclass(frozen=True, slots=True)
class FormField:
    name: str
    label: str
    kind: FieldKind = "str"
    default: str = ""
    choices: tuple[str, ...] = ()
    placeholder: str = ""
    required: bool = False


@dataclass(frozen=True, slots=True)
class Action:
    """One write: the capability it calls, the scope it needs, and how to ask for it."""

    name: str
    method: str
    path: str
    scope: Scope
    label: str
    page: str
    fields: tuple[FormField, ...] = ()
    confirm: str = ""
    """Destructive actions show this and ask again before they run."""
    dry_run: bool = False
    """Run once with ``dry_run=true`` and show the answer in the confirmation step."""


@dataclass(frozen=True, slots=True)
class RowAction:
    """A button on each table row that carries ``row_field``, sent as the action's ``param``."""

    action: str
    param: str
    row_field: str
    extra: tuple[tuple[str, str], ...] = ()
    when: tuple[str, str] | None = None
    """Only on rows whose field has this value (resolve only firing alerts)."""
    label: str = ""
    """The button's text; the action's label when empty."""


@dataclass(frozen=True, slots=True)
class Section:
    id: str
    title: str
    path: str
    view: str = "auto"
    params: tuple[tuple[str, str], ...] = ()
    filters: tuple[FormField, ...] = ()
    actions: tuple[str, ...] = ()
    row_actions: tuple[RowAction, ...] = ()
    wide: bool = False


@dataclass(frozen=True, slots=True)
class Page:
    slug: str
    title: str
    sections: tuple[Section, ...] = field(default_factory=tuple)


ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        Action("alerts_resolve", "POST", "/monitoring/alerts/resolve", Scope.OPERATE, "Resolve", "overview"),
        Action("monitoring_evaluate", "POST", "/monitoring/evaluate", Scope.OPERATE, "Evaluate now", "overview"),
        Action(
            "logs_archive",
            "POST",
            "/monitoring/logs/archive",
            Scope.OPERATE,
            "Archive logs",
            "logs",
            (FormField("days_old", "Older than (days)", "int", "7"),),
        ),
        Action(
            "logs_cleanup",
            "POST",
            "/monitoring/logs/cleanup",
            Scope.OPERATE,
            "Clean up archives",
            "logs",
            (FormField("days_old", "Older than (days)", "int", "30"),),
            confirm="Delete the archive files listed above? This cannot be undone.",
            dry_run=True,
        ),
        Action("performance_optimize", "POST", "/performance/optimize", Scope.OPERATE, "Optimise", "performance"),
        Action(
            "performance_cache_clear",
            "POST",
            "/performance/cache/clear",
            Scope.OPERATE,
            "Clear cache",
            "performance",
            confirm="Clear PRISM's caches? Reads are slower until they fill again.",
        ),
        Action(
            "security_ip_action",
            "POST",
            "/security/ips/action",
            Scope.ADMIN,
            "Apply",
            "security",
            (
                FormField("action", "Action", "choice", "block", ("block", "unblock")),
                FormField("ip_address", "IP address", placeholder="192.0.2.10", required=True),
                FormField("reason", "Reason", placeholder="Suspicious activity"),
            ),
        ),
        Action("security_alerts_resolve", "POST", "/security/alerts/resolve", Scope.OPERATE, "Resolve", "security"),
        Action(
            "security_rate_limits_reset",
            "POST",
            "/security/rate-limits/reset",
            Scope.ADMIN,
            "Reset all rate limits",
            "security",
            confirm="Reset the rate-limit counters? Clients start with a full allowance.",
        ),
        Action(
            "notifications_update_settings",
            "PUT",
            "/notifications/settings",
            Scope.ADMIN,
            "Save settings",
            "notifications",
            (
                FormField("slack_enabled", "Slack", "bool"),
                FormField("slack_webhook_url", "Slack webhook URL", placeholder="https://hooks.slack.com/services/…"),
                FormField("email_enabled", "Email", "bool"),
                FormField("email_recipients", "Email recipients", "list", placeholder="admin@example.com"),
                FormField("system_alerts", "System alerts", "bool"),
                FormField("performance_alerts", "Performance alerts", "bool"),
                FormField("security_alerts", "Security alerts", "bool"),
                FormField("daily_reports", "Daily reports", "bool"),
                FormField("min_severity", "Lowest severity sent", "choice", "warning", ("warning", "critical")),
                FormField("repeat_interval_seconds", "Repeat at most every (s)", "int"),
            ),
        ),
        Action(
            "notifications_test",
            "POST",
            "/notifications/test",
            Scope.OPERATE,
            "Send a test",
            "notifications",
            (FormField("channel", "Channel", "choice", "all", ("all", "slack", "email")),),
        ),
        Action(
            "notifications_retry",
            "POST",
            "/notifications/retry",
            Scope.OPERATE,
            "Retry",
            "notifications",
            (FormField("ids", "Ids", "list"),),
        ),
        Action(
            "notifications_send_daily_report",
            "POST",
            "/notifications/daily-report",
            Scope.OPERATE,
            "Send the daily report now",
            "notifications",
        ),
        Action("worker_run_job", "POST", "/worker/jobs/run", Scope.OPERATE, "Run now", "jobs"),
        Action("backup_create", "POST", "/backups", Scope.OPERATE, "Back up now", "jobs"),
    )
}

_LOG_LEVELS = ("", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

UNBLOCK = RowAction("security_ip_action", "ip_address", "ip_address", (("action", "unblock"),), label="Unblock")
HEALTH = Section("health", "Status", "/monitoring/health", view="health")
METRICS = Section("metrics", "System", "/monitoring/metrics", view="gauges")
TRAFFIC = Section("traffic", "Requests, latency and errors", "/performance/stats", view="traffic")
ALERTS = Section(
    "alerts",
    "Active alerts",
    "/monitoring/alerts",
    view="alerts",
    params=(("status", "firing"), ("limit", "20")),
    actions=("monitoring_evaluate",),
    row_actions=(RowAction("alerts_resolve", "id", "id", when=("status", "firing")),),
    wide=True,
)

LIVE_SECTIONS: tuple[Section, ...] = (HEALTH, METRICS, TRAFFIC, ALERTS)
"""What the live stream pushes every few seconds; one API round of four reads per tick, shared by viewers."""

PAGES: dict[str, Page] = {
    p.slug: p
    for p in (
        Page(
            "overview",
            "Overview",
            (HEALTH, METRICS, TRAFFIC, ALERTS, Section("components", "Components", "/healthz/detailed", wide=True)),
        ),
        Page(
            "logs",
            "Logs",
            (
                Section("log-stats", "Last 24 hours by level", "/monitoring/logs/stats", view="logchart", wide=True),
                Section(
                    "log-search",
                    "Search",
                    "/monitoring/logs",
                    params=(("limit", "50"),),
                    filters=(
                        FormField("q", "Text", placeholder="words in the message"),
                        FormField("level", "Minimum level", "choice", "", _LOG_LEVELS),
                        FormField("service", "Service", placeholder="api"),
                        FormField("since", "Since", placeholder="2026-01-01T00:00"),
                    ),
                    wide=True,
                ),
                Section(
                    "log-archives", "Archives", "/monitoring/logs/archives", actions=("logs_archive", "logs_cleanup")
                ),
            ),
        ),
        Page(
            "performance",
            "Performance",
            (
                Section(
                    "perf-stats",
                    "Statistics per capability",
                    "/performance/stats",
                    view="perf_stats",
                    actions=("performance_optimize", "performance_cache_clear"),
                    wide=True,
                ),
                Section("perf-report", "Report and findings", "/performance/report", wide=True),
                Section("perf-metrics", "Process and requests", "/performance/metrics", wide=True),
            ),
        ),
        Page(
            "security",
            "Security",
            (
                Section("sec-summary", "Summary", "/security/summary"),
                Section(
                    "sec-ips",
                    "Blocked addresses",
                    "/security/ips",
                    actions=("security_ip_action",),
                    row_actions=(UNBLOCK,),
                ),
                Section(
                    "sec-alerts",
                    "Security alerts",
                    "/security/alerts",
                    params=(("resolved", "false"),),
                    row_actions=(RowAction("security_alerts_resolve", "alert_id", "id"),),
                    wide=True,
                ),
                Section(
                    "sec-events",
                    "Events",
                    "/security/events",
                    params=(("limit", "50"),),
                    filters=(
                        FormField("type", "Type", placeholder="auth_failure"),
                        FormField("since", "Since", placeholder="2026-01-01T00:00"),
                    ),
                    wide=True,
                ),
                Section(
                    "sec-rate",
                    "Rate limits",
                    "/security/rate-limits",
                    actions=("security_rate_limits_reset",),
                    row_actions=(RowAction("security_rate_limits_reset", "client", "client", label="Reset"),),
                    wide=True,
                ),
            ),
        ),
        Page(
            "notifications",
            "Notifications",
            (
                Section(
                    "notif-settings",
                    "Settings",
                    "/notifications/settings",
                    view="notification_settings",
                    actions=("notifications_test", "notifications_send_daily_report"),
                    wide=True,
                ),
                Section(
                    "notif-history",
                    "History and retries",
                    "/notifications/history",
                    row_actions=(RowAction("notifications_retry", "ids", "id", when=None),),
                    wide=True,
                ),
            ),
        ),
        Page(
            "jobs",
            "Jobs and backups",
            (
                Section(
                    "jobs",
                    "Schedules",
                    "/worker/jobs",
                    row_actions=(RowAction("worker_run_job", "job", "name"),),
                    wide=True,
                ),
                Section("runs", "Last runs", "/worker/runs", wide=True),
                Section("backups", "Backups", "/backups", actions=("backup_create",), wide=True),
            ),
        ),
        Page(
            "audit",
            "Audit",
            (Section("audit", "Changes, newest first", "/audit/events", params=(("limit", "50"),), wide=True),),
        ),
    )
}
