"""A cache for expensive reads (the dashboard; Notion and LLM answers later), in Redis with a TTL per entry.

Entries live under ``cache:<name>`` and nothing else does, so :func:`clear` can remove the whole namespace
without touching other PRISM state. Hits and misses are counted per name through the request telemetry, which
batches them into its next flush: a lookup costs one round trip, the ``GET`` itself.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from prism_mcp.runtime import Runtime
from prism_mcp.telemetry import telemetry_of

__all__ = ["cache_key", "clear", "get", "get_or_compute", "put"]

logger = logging.getLogger(__name__)

_SCAN_COUNT = 500
_UNLINK_BATCH = 500


def cache_key(runtime: Runtime, name: str) -> str:
    return runtime.store.key("cache", name)


async def get(runtime: Runtime, name: str) -> str | None:
    """The cached text for ``name``, or ``None``; counts a hit or a miss."""
    value: str | None = await runtime.store.redis.get(cache_key(runtime, name))
    telemetry_of(runtime).count_cache(_family(name), value is not None)
    return value


async def put(runtime: Runtime, name: str, value: str, ttl: int) -> None:
    """Keep ``value`` for ``ttl`` seconds."""
    await runtime.store.redis.set(cache_key(runtime, name), value, ex=ttl)


async def get_or_compute(
    runtime: Runtime, name: str, ttl: int, compute: Callable[[], Awaitable[str]]
) -> tuple[str, bool]:
    """The cached text for ``name``, computing and keeping it on a miss; returns it and whether it was a hit."""
    cached = await get(runtime, name)
    if cached is not None:
        return cached, True
    value = await compute()
    await put(runtime, name, value, ttl)
    return value, False


async def clear(runtime: Runtime) -> int:
    """Remove every cache entry of this PRISM (its key prefix only), with SCAN and UNLINK; returns how many."""
    redis = runtime.store.redis
    pattern = cache_key(runtime, "*")
    removed = 0
    batch: list[str] = []
    async for key in redis.scan_iter(match=pattern, count=_SCAN_COUNT):
        batch.append(key)
        if len(batch) >= _UNLINK_BATCH:
            removed += await redis.unlink(*batch)
            batch = []
    if batch:
        removed += await redis.unlink(*batch)
    logger.info("cache_cleared", extra={"removed": removed})
    return removed


def _family(name: str) -> str:
    # Counters are per family (``dashboard``, ``notion``), not per entry, so a cache keyed by arbitrary input
    # cannot grow the counters without bound.
    return name.split(":", 1)[0]
