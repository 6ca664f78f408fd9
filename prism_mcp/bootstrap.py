"""Opening a runtime for any entry point: settings, the key, Redis (given or embedded), background tasks."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr

from prism_mcp.config import ConfigError, Settings
from prism_mcp.runtime import Runtime
from prism_mcp.store import EmbeddedValkey, Store, discover_embedded
from prism_mcp.tools import load_all

__all__ = ["Opened", "ensure_api_key", "ensure_web_secret", "open_runtime", "redact_url", "store_for"]

KEY_FILE = "api_key"
WEB_SECRET_FILE = "web_secret"  # noqa: S105 - a file name, not a secret


@dataclass(frozen=True, slots=True)
class Opened:
    runtime: Runtime
    redis_origin: str
    """``REDIS_URL``, ``embedded`` (started here) or ``shared-embedded`` (another PRISM process's)."""
    embedded: EmbeddedValkey | None


def redact_url(url: str) -> str:
    """The URL without its password, for start-up lines and health output."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def key_file(settings: Settings) -> Path:
    return settings.data_path / KEY_FILE


def ensure_api_key(settings: Settings, *, generate: bool) -> tuple[Settings, str | None]:
    """Settings with ``API_KEY`` filled in from the data directory, or a new key if ``generate``.

    Returns the new key when one was generated (to be printed once), else ``None``. Raises
    :class:`ConfigError` when there is no key and none may be generated.
    """
    if settings.api_key is not None and settings.api_key.get_secret_value():
        return settings, None
    path = key_file(settings)
    if path.exists():
        stored = path.read_text().strip()
        if stored:
            return settings.model_copy(update={"api_key": SecretStr(stored)}), None
    if not generate:
        raise ConfigError(f"API_KEY: not set, and no key is kept in {path}; set API_KEY or run `prism up` once")
    key = secrets.token_hex(32)
    _write_private(path, key)
    return settings.model_copy(update={"api_key": SecretStr(key)}), key


def _write_private(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    os.chmod(path, 0o600)


def ensure_web_secret(settings: Settings) -> Settings:
    """Settings with ``PRISM_WEB_SECRET`` (the key that signs dashboard session cookies) filled in.

    Taken from the environment, else from the data directory, else generated there (mode 0600) so that
    sessions survive a restart and replicas sharing the directory accept each other's cookies.
    """
    if settings.web_secret is not None and settings.web_secret.get_secret_value():
        return settings
    path = settings.data_path / WEB_SECRET_FILE
    stored = path.read_text().strip() if path.exists() else ""
    if not stored:
        stored = secrets.token_hex(32)
        _write_private(path, stored)
    return settings.model_copy(update={"web_secret": SecretStr(stored)})


def store_for(settings: Settings, url: str) -> Store:
    """The store the settings describe: ``url`` directly, or the Sentinel master with ``url``'s auth and TLS."""
    return Store(
        url,
        prefix=settings.key_prefix,
        timeout=settings.redis_timeout,
        sentinels=settings.sentinel_addresses,
        sentinel_master=settings.redis_sentinel_master,
    )


@asynccontextmanager
async def open_runtime(settings: Settings, services: frozenset[str]) -> AsyncIterator[Opened]:
    """A started runtime on ``REDIS_URL``, on an embedded Valkey already serving the data directory, or on
    one started here (and stopped on exit)."""
    load_all()
    embedded: EmbeddedValkey | None = None
    if settings.redis_sentinels:
        url, origin = settings.redis_url or "redis://", "REDIS_SENTINELS"
    elif settings.redis_url:
        url, origin = settings.redis_url, "REDIS_URL"
    elif found := discover_embedded(settings.data_path):
        url, origin = found, "shared-embedded"
    else:
        embedded = EmbeddedValkey(settings.data_path)
        url = await asyncio.to_thread(embedded.start)
        origin = "embedded"
    store = store_for(settings, url)
    runtime = Runtime(settings, store, services=services)
    runtime.state["redis_origin"] = origin
    runtime.state["embedded"] = embedded
    await runtime.start()
    try:
        yield Opened(runtime, origin, embedded)
    finally:
        await runtime.stop()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
