"""Settings from the environment and an optional ``.env`` file.

Every variable is read once, at start-up, into :class:`Settings`. A bad value stops start-up with one line that
names the variable and what it expects (:func:`load_settings`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, PrivateAttr, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from prism_mcp.errors import PrismError

__all__ = ["ConfigError", "Settings", "Thresholds", "load_settings"]

Port = Annotated[int, Field(ge=1, le=65535)]
Percent = Annotated[float, Field(gt=0, le=100)]
CsvList = Annotated[list[str], NoDecode]


class ConfigError(PrismError):
    """A setting is missing or has a bad value; ``message`` is the one line to print."""

    code = "config_error"


class Thresholds(BaseSettings):
    """Warning and critical levels of the operations guide, each overridable (``PRISM_CPU_WARNING=70``)."""

    model_config = SettingsConfigDict(env_prefix="PRISM_", env_file=".env", extra="ignore")

    cpu_warning: Percent = 80.0
    cpu_critical: Percent = 95.0
    memory_warning: Percent = 85.0
    memory_critical: Percent = 95.0
    disk_warning: Percent = 85.0
    disk_critical: Percent = 95.0
    response_time_warning: Annotated[float, Field(gt=0, le=600)] = 1.0
    response_time_critical: Annotated[float, Field(gt=0, le=600)] = 5.0
    error_rate_warning: Percent = 5.0
    error_rate_critical: Percent = 10.0

    # monitoring: hysteresis of the threshold evaluator. An alert clears only once its value has stayed below
    # the threshold minus ``alert_clear_margin`` (a fraction of the threshold) for ``alert_clear_evaluations``
    # evaluations in a row; response time and error rate need ``alert_min_requests`` requests in the window.
    alert_clear_margin: Annotated[float, Field(ge=0, le=0.5)] = 0.1
    alert_clear_evaluations: Annotated[int, Field(ge=1, le=100)] = 3
    alert_min_requests: Annotated[int, Field(ge=1, le=1_000_000)] = 20


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """PRISM's configuration. Secrets are ``SecretStr`` so that no repr or log line shows them."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    api_key: SecretStr | None = Field(default=None, alias="API_KEY")
    operator_keys: CsvList = Field(default_factory=list, alias="PRISM_OPERATOR_KEYS")
    read_keys: CsvList = Field(default_factory=list, alias="PRISM_READ_KEYS")
    redis_url: str | None = Field(default=None, alias="REDIS_URL")
    redis_sentinels: CsvList = Field(default_factory=list, alias="REDIS_SENTINELS")
    redis_sentinel_master: str | None = Field(
        default=None, alias="REDIS_SENTINEL_MASTER", pattern=r"^[A-Za-z0-9_.-]{1,64}$"
    )
    data_dir: Path = Field(default=Path(".prism"), alias="PRISM_DATA_DIR")
    host: str = Field(default="127.0.0.1", alias="PRISM_HOST", min_length=1)
    api_port: Port = Field(default=8060, alias="PRISM_API_PORT")
    web_port: Port = Field(default=8061, alias="PRISM_WEB_PORT")
    mcp_port: Port = Field(default=8062, alias="PRISM_MCP_PORT")
    api_url: str = Field(default="http://127.0.0.1:8060", alias="PRISM_API_URL")
    allowed_hosts: CsvList = Field(default_factory=list, alias="PRISM_ALLOWED_HOSTS")
    allowed_origins: CsvList = Field(default_factory=list, alias="PRISM_ALLOWED_ORIGINS")
    key_prefix: str = Field(default="prism:", alias="PRISM_KEY_PREFIX", pattern=r"^[A-Za-z0-9_.:-]{1,32}$")
    redis_timeout: float = Field(default=2.0, alias="PRISM_REDIS_TIMEOUT", gt=0, le=60)
    sample_interval: float = Field(default=2.0, alias="PRISM_SAMPLE_INTERVAL", ge=0.1, le=300)
    max_body_bytes: int = Field(default=1_048_576, alias="PRISM_MAX_BODY_BYTES", ge=1024, le=64 * 1_048_576)
    log_level: str = Field(default="INFO", alias="PRISM_LOG_LEVEL", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    # logs: capture into Redis (bounded buffer, batching writer) and the archive
    log_capture: bool = Field(default=True, alias="PRISM_LOG_CAPTURE")
    log_queue_size: int = Field(default=10_000, alias="PRISM_LOG_QUEUE_SIZE", ge=100, le=1_000_000)
    log_batch_size: int = Field(default=500, alias="PRISM_LOG_BATCH_SIZE", ge=1, le=10_000)
    log_flush_interval: float = Field(default=0.2, alias="PRISM_LOG_FLUSH_INTERVAL", ge=0.01, le=60)
    log_write_timeout: float = Field(default=1.0, alias="PRISM_LOG_WRITE_TIMEOUT", gt=0, le=60)
    notion_api_key: SecretStr | None = Field(default=None, alias="NOTION_API_KEY")
    openai_api_key: SecretStr | None = Field(default=None, alias="OPENAI_API_KEY")

    # monitoring: how often a process flushes its request counters to Redis, and how long the dashboard is cached.
    telemetry_flush_interval: float = Field(default=1.0, alias="PRISM_TELEMETRY_FLUSH_INTERVAL", ge=0.05, le=60)
    dashboard_cache_ttl: int = Field(default=5, alias="PRISM_DASHBOARD_CACHE_TTL", ge=1, le=3600)

    _thresholds: Thresholds | None = PrivateAttr(default=None)

    # notifications: the SMTP relay for email, the webhook hosts admitted beside hooks.slack.com, and the
    # delivery policy of PRISM-NOTIFIER (tries before a dead letter, backoff, how long a dead notifier's
    # pending deliveries wait before a live one claims them).
    smtp_host: str | None = Field(default=None, alias="SMTP_HOST", max_length=253)
    smtp_port: Port = Field(default=587, alias="SMTP_PORT")
    smtp_username: str | None = Field(default=None, alias="SMTP_USERNAME", max_length=254)
    smtp_password: SecretStr | None = Field(default=None, alias="SMTP_PASSWORD")
    smtp_from: str = Field(default="prism@localhost", alias="SMTP_FROM", min_length=3, max_length=254)
    smtp_starttls: bool = Field(default=True, alias="SMTP_STARTTLS")
    webhook_allowed_hosts: CsvList = Field(default_factory=list, alias="PRISM_WEBHOOK_ALLOWED_HOSTS")
    notify_max_tries: int = Field(default=5, alias="PRISM_NOTIFY_MAX_TRIES", ge=1, le=20)
    notify_backoff_seconds: float = Field(default=1.0, alias="PRISM_NOTIFY_BACKOFF_SECONDS", ge=0.01, le=60)
    notify_backoff_max_seconds: float = Field(default=60.0, alias="PRISM_NOTIFY_BACKOFF_MAX_SECONDS", ge=0.1, le=3600)
    notify_retry_after_max_seconds: float = Field(
        default=300.0, alias="PRISM_NOTIFY_RETRY_AFTER_MAX_SECONDS", ge=1, le=3600
    )
    notify_timeout_seconds: float = Field(default=10.0, alias="PRISM_NOTIFY_TIMEOUT_SECONDS", ge=0.5, le=120)
    notify_claim_idle_seconds: float = Field(default=60.0, alias="PRISM_NOTIFY_CLAIM_IDLE_SECONDS", ge=0.5, le=3600)

    # agentic: the Notion ops journal, the diagnosis model, and the health of both
    notion_database_id: str | None = Field(default=None, alias="NOTION_DATABASE_ID", pattern=r"^[0-9a-fA-F-]{32,36}$")
    notion_base_url: str = Field(default="https://api.notion.com", alias="NOTION_BASE_URL", pattern=r"^https?://")
    notion_requests_per_second: float = Field(default=3.0, alias="NOTION_REQUESTS_PER_SECOND", gt=0, le=100)
    notion_timeout: float = Field(default=10.0, alias="NOTION_TIMEOUT", gt=0, le=120)
    notion_sync_interval: float = Field(default=60.0, alias="NOTION_SYNC_INTERVAL", ge=1, le=86400)
    openai_base_url: str | None = Field(default=None, alias="OPENAI_BASE_URL", pattern=r"^https?://")
    openai_model: str = Field(default="gpt-4o-mini", alias="OPENAI_MODEL", min_length=1, max_length=200)
    openai_timeout: float = Field(default=20.0, alias="OPENAI_TIMEOUT", gt=0, le=300)
    openai_max_tokens: int = Field(default=800, alias="OPENAI_MAX_TOKENS", ge=64, le=16384)
    openai_cache_ttl: int = Field(default=300, alias="OPENAI_CACHE_TTL", ge=0, le=86400)
    integration_health_ttl: float = Field(default=60.0, alias="PRISM_INTEGRATION_HEALTH_TTL", ge=0, le=3600)

    # Worker: scheduled jobs, heartbeats and backups (prism_mcp/worker, README "Worker").
    worker_jobs: str = Field(default="", alias="PRISM_WORKER_JOBS", max_length=65_536)
    worker_default_jobs: bool = Field(default=True, alias="PRISM_WORKER_DEFAULT_JOBS")
    worker_concurrency: int = Field(default=4, alias="PRISM_WORKER_CONCURRENCY", ge=1, le=64)
    worker_retries: int = Field(default=3, alias="PRISM_WORKER_RETRIES", ge=1, le=20)
    worker_retry_delay: float = Field(default=10.0, alias="PRISM_WORKER_RETRY_DELAY", ge=0.1, le=3600)
    worker_retry_max_delay: float = Field(default=600.0, alias="PRISM_WORKER_RETRY_MAX_DELAY", ge=0.1, le=86_400)
    worker_job_timeout: int = Field(default=900, alias="PRISM_WORKER_JOB_TIMEOUT", ge=1, le=86_400)
    worker_job_heartbeat: int = Field(default=30, alias="PRISM_WORKER_JOB_HEARTBEAT", ge=2, le=3600)
    worker_history: int = Field(default=1000, alias="PRISM_WORKER_HISTORY", ge=10, le=100_000)
    worker_poll_interval: float = Field(default=0.5, alias="PRISM_WORKER_POLL_INTERVAL", ge=0.05, le=30)
    heartbeat_interval: float = Field(default=5.0, alias="PRISM_HEARTBEAT_INTERVAL", ge=0.1, le=300)
    heartbeat_forget: float = Field(default=3600.0, alias="PRISM_HEARTBEAT_FORGET", ge=1, le=30 * 86_400)
    backup_keep: int = Field(default=7, alias="PRISM_BACKUP_KEEP", ge=1, le=1000)
    backup_rdb_timeout: float = Field(default=60.0, alias="PRISM_BACKUP_RDB_TIMEOUT", ge=0.5, le=3600)

    # web (PRISM-WEB, the dashboard)
    web_secret: SecretStr | None = Field(default=None, alias="PRISM_WEB_SECRET")
    web_session_ttl: int = Field(default=8 * 3600, alias="PRISM_WEB_SESSION_TTL", ge=60, le=30 * 86400)
    web_refresh_seconds: float = Field(default=2.0, alias="PRISM_WEB_REFRESH_SECONDS", ge=0.5, le=60)

    # security: rate limits, trusted proxies, the block list, alert rules
    rate_limit: str = Field(default="600/minute", alias="PRISM_RATE_LIMIT", min_length=1)
    auth_failure_limit: str = Field(default="20/minute", alias="PRISM_AUTH_FAILURE_LIMIT", min_length=1)
    trusted_proxies: CsvList = Field(default_factory=list, alias="PRISM_TRUSTED_PROXIES")
    never_block: CsvList = Field(default_factory=lambda: ["127.0.0.1/32", "::1/128"], alias="PRISM_NEVER_BLOCK")
    blocklist_refresh: float = Field(default=1.0, alias="PRISM_BLOCKLIST_REFRESH", ge=0.1, le=60)
    security_rule_window: int = Field(default=300, alias="PRISM_SECURITY_RULE_WINDOW", ge=10, le=86400)
    brute_force_threshold: int = Field(default=10, alias="PRISM_BRUTE_FORCE_THRESHOLD", ge=1, le=100_000)
    rate_limit_storm_threshold: int = Field(default=50, alias="PRISM_RATE_LIMIT_STORM_THRESHOLD", ge=1, le=1_000_000)
    scan_threshold: int = Field(default=30, alias="PRISM_SCAN_THRESHOLD", ge=1, le=100_000)
    auto_block: bool = Field(default=False, alias="PRISM_AUTO_BLOCK")
    auto_block_ttl: int = Field(default=3600, alias="PRISM_AUTO_BLOCK_TTL", ge=1, le=30 * 86400)

    @field_validator(
        "operator_keys",
        "read_keys",
        "allowed_hosts",
        "allowed_origins",
        "webhook_allowed_hosts",
        "trusted_proxies",
        "never_block",
        "redis_sentinels",
        mode="before",
    )
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    # docker compose passes an unset variable as an empty string (`${OPENAI_API_KEY:-}`): empty means unset.
    @field_validator(
        "api_key",
        "notion_api_key",
        "openai_api_key",
        "notion_database_id",
        "openai_base_url",
        "smtp_host",
        "smtp_username",
        "smtp_password",
        "web_secret",
        "redis_sentinel_master",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("redis_sentinels")
    @classmethod
    def _sentinel_addresses(cls, value: list[str]) -> list[str]:
        for item in value:
            host, sep, port = item.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"expected host:port, comma-separated; {item!r} is not")
        return value

    @model_validator(mode="after")
    def _sentinel_needs_master(self) -> Settings:
        if self.redis_sentinels and not self.redis_sentinel_master:
            raise ValueError("REDIS_SENTINELS is set: REDIS_SENTINEL_MASTER must name the monitored master")
        return self

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        return [(item.rpartition(":")[0].strip("[]"), int(item.rpartition(":")[2])) for item in self.redis_sentinels]

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("expected a URL starting with redis://, rediss:// or unix://")
        return value

    @field_validator("rate_limit", "auth_failure_limit")
    @classmethod
    def _rate(cls, value: str) -> str:
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError as exc:
            raise ValueError("expected a rate such as 600/minute or 10/second") from exc
        return value

    @field_validator("trusted_proxies", "never_block")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        import ipaddress

        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as exc:
                raise ValueError(f"expected IP addresses or CIDR ranges, comma-separated; {item!r} is neither") from exc
        return value

    @property
    def thresholds(self) -> Thresholds:
        if self._thresholds is None:
            self._thresholds = Thresholds()
        return self._thresholds

    @property
    def data_path(self) -> Path:
        return self.data_dir.resolve()


def load_settings(**overrides: object) -> Settings:
    """Read the settings, turning the first bad value into a :class:`ConfigError` naming its variable.

    ``overrides`` are keyed by variable name (``REDIS_URL=…``); threshold variables (``PRISM_CPU_WARNING=…``)
    override the environment's thresholds the same way.
    """
    limits = {name: overrides.pop(f"PRISM_{name.upper()}") for name in _threshold_names(overrides)}
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
        settings._thresholds = Thresholds(**limits)  # type: ignore[arg-type]
    except ValidationError as exc:
        error = exc.errors()[0]
        if not error["loc"]:  # a rule across variables: its message names them
            raise ConfigError(str(error["msg"]).removeprefix("Value error, ")) from exc
        field = str(error["loc"][0])
        variable = _variable_name(field)
        shown = "" if field in _SECRET_FIELDS else f" (got {error.get('input')!r})"
        raise ConfigError(f"{variable}: {error['msg']}{shown}") from exc
    return settings


def _threshold_names(overrides: dict[str, object]) -> list[str]:
    return [name for name in Thresholds.model_fields if f"PRISM_{name.upper()}" in overrides]


_SECRET_FIELDS = frozenset(
    {"api_key", "operator_keys", "read_keys", "notion_api_key", "openai_api_key", "smtp_password", "web_secret"}
)


def _variable_name(field: str) -> str:
    alias = Settings.model_fields.get(field)
    if alias is not None and alias.alias:
        return alias.alias
    if field in Thresholds.model_fields:
        return f"PRISM_{field.upper()}"
    return field
