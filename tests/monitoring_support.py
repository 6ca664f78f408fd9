"""Helpers shared by the monitoring tests: a second PRISM replica on the same Redis and key prefix."""

from __future__ import annotations

from typing import Any

from prism_mcp.capability import invoke, registry
from prism_mcp.config import load_settings
from prism_mcp.runtime import Runtime
from prism_mcp.store import Store
from tests.conftest import ADMIN, ADMIN_KEY


def replica(runtime: Runtime, **overrides: object) -> Runtime:
    """Another PRISM process's runtime (not started) sharing ``runtime``'s Redis and prefix, with its own settings."""
    base = runtime.settings
    settings = load_settings(
        API_KEY=ADMIN_KEY,
        REDIS_URL=base.redis_url,
        PRISM_KEY_PREFIX=base.key_prefix,
        PRISM_DATA_DIR=str(base.data_dir),
        **overrides,
    )
    assert settings.redis_url is not None
    return Runtime(settings, Store(settings.redis_url, prefix=settings.key_prefix), services=frozenset({"cli"}))


async def call(runtime: Runtime, name: str, surface: Any = "internal", **arguments: Any) -> Any:
    """Invoke a capability as the admin, the way every surface does."""
    cap = registry.get(name)
    assert cap is not None, name
    return await invoke(runtime, cap, ADMIN, arguments, surface=surface)
