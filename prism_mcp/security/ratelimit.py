"""Rate limits on a moving window in Redis, with a per-process fallback while Redis is unreachable.

Two limits: ``PRISM_RATE_LIMIT`` per key for authenticated calls, and the stricter ``PRISM_AUTH_FAILURE_LIMIT``
per client address for failed authentication (traffic without a valid key is counted only by the latter, which
always binds first). The window is ``limits``' moving window, an atomic Lua script on Redis, so replicas share
one count and concurrent requests can never overshoot.

Policy when Redis is down: *fail open to a local limiter*. The first failed Redis call switches this process to
``limits``' memory storage (the same limits, counted per process), and a background task probes Redis every
second and switches back when it answers. The ``security:rate_limiter_fallback`` alert is fired as soon as the
shared store accepts it (at once if only the limiter's connection failed, else when Redis returns) and is resolved
once the Redis limiter works again, so the notifier reports the outage window even though it could not be
written while it lasted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError

from prism_mcp.alerts import fire, resolve_fingerprint
from prism_mcp.runtime import Runtime, background_task
from prism_mcp.store.connection import CONNECTION_ERRORS

__all__ = ["FALLBACK_ALERT", "Decision", "Limiter", "limiter"]

logger = logging.getLogger(__name__)

FALLBACK_ALERT = "security:rate_limiter_fallback"
CLIENTS_KEEP_SECONDS = 86400
POOL_SIZE = 32
CLOSE_SECONDS = 2.0
# Longer than the store's timeouts on purpose: on a saturated event loop a healthy Redis can look slow (a burst
# opens the pool's connections while the loop is busy), and a timeout here switches the whole process to
# per-process limits. A refused or reset connection (Redis really gone) still falls back at once; a Redis that
# hangs is detected after this long, once.
COMMAND_TIMEOUT = 10.0
_FAILURES = (RedisError, *CONNECTION_ERRORS)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_at: float

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil(self.reset_at - time.time()))

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset_at)),
        }


def _limits_uri(url: str) -> str:
    if url.startswith("unix://"):
        return "async+redis+unix://" + url.removeprefix("unix://")
    return "async+" + url


class Limiter:
    """This process's limiters and the bookkeeping the rate-limit capabilities read."""

    def __init__(self, runtime: Runtime) -> None:
        settings, store = runtime.settings, runtime.store
        self.runtime = runtime
        self.requests: RateLimitItem = parse(settings.rate_limit)
        self.failures: RateLimitItem = parse(settings.auth_failure_limit)
        # A pool of its own that makes a burst wait for a free connection instead of failing: with the default
        # pool a burst beyond its size raises "Too many connections", which would read as Redis being down. The
        # wait is bounded by the socket timeouts of the connections in use, so only a real outage falls back.
        self.pool = store.pool(
            max_connections=POOL_SIZE,
            wait=None,
            decode_responses=False,
            socket_timeout=max(COMMAND_TIMEOUT, store.timeout),
            socket_connect_timeout=COMMAND_TIMEOUT,
        )
        self.storage = RedisStorage(
            _limits_uri(store.url),
            implementation="redispy",
            key_prefix=store.key("ratelimit"),
            connection_pool=self.pool,
        )
        self.remote = MovingWindowRateLimiter(self.storage)
        self.local = MovingWindowRateLimiter(MemoryStorage())
        self.fallback_since: float | None = None
        self.fallback_alerted = False
        self.fallback_hits = 0
        self.throttled: dict[str, float] = {}
        self.seen: dict[str, float] = {}

    @property
    def degraded(self) -> bool:
        return self.fallback_since is not None

    async def hit(self, item: RateLimitItem, client: str) -> Decision:
        """Count one request of ``client`` against ``item``; never raises for a lost Redis."""
        self.seen[client] = time.time()
        if self.fallback_since is None:
            try:
                return await self._hit(self.remote, item, client)
            except _FAILURES as exc:
                self._fall_back(exc)
        self.fallback_hits += 1
        return await self._hit(self.local, item, client)

    @staticmethod
    async def _hit(strategy: MovingWindowRateLimiter, item: RateLimitItem, client: str) -> Decision:
        allowed = await strategy.hit(item, client)
        stats = await strategy.get_window_stats(item, client)
        return Decision(allowed, item.amount, max(0, stats.remaining), stats.reset_time)

    async def stats(self, item: RateLimitItem, client: str) -> Decision:
        strategy = self.local if self.degraded else self.remote
        stats = await strategy.get_window_stats(item, client)
        return Decision(stats.remaining > 0, item.amount, max(0, stats.remaining), stats.reset_time)

    async def clear(self, client: str) -> None:
        for item in (self.requests, self.failures):
            await self.local.clear(item, client)
            if not self.degraded:
                await self.remote.clear(item, client)
        self.throttled.pop(client.removeprefix("ip:"), None)

    async def close(self) -> None:
        # Bounded: shutting down must not wait on a Redis that stopped answering.
        with contextlib.suppress(TimeoutError, *_FAILURES):
            await asyncio.wait_for(self.pool.disconnect(), CLOSE_SECONDS)

    def throttle(self, ip: str, until: float) -> None:
        self.throttled[ip] = until

    def throttled_until(self, ip: str) -> float | None:
        until = self.throttled.get(ip)
        if until is None:
            return None
        if until <= time.time():
            del self.throttled[ip]
            return None
        return until

    def _fall_back(self, exc: BaseException) -> None:
        self.fallback_since = time.time()
        self.fallback_hits = 0
        logger.warning("rate_limiter_fallback", extra={"reason": type(exc).__name__})

    async def watch_once(self) -> None:
        """Flush the clients seen; while degraded, raise the alert when possible and switch back when able."""
        await self._flush_seen()
        if self.fallback_since is None:
            return
        if not self.fallback_alerted:
            await self._fire_fallback_alert()
        try:
            if not await self.storage.check():
                return
        except _FAILURES:
            return
        since, self.fallback_since = self.fallback_since, None
        logger.info("rate_limiter_recovered", extra={"seconds_degraded": round(time.time() - since, 1)})
        if not self.fallback_alerted:
            await self._fire_fallback_alert(since)
        if self.fallback_alerted:
            await resolve_fingerprint(self.runtime.store, FALLBACK_ALERT, by="rate-limiter-recovered")
            self.fallback_alerted = False

    async def _fire_fallback_alert(self, since: float | None = None) -> None:
        started = since or self.fallback_since or time.time()
        try:
            await fire(
                self.runtime.store,
                fingerprint=FALLBACK_ALERT,
                category="security",
                severity="warning",
                title="Rate limiter fell back to per-process limits",
                message="Redis was unreachable for the rate limiter; each process counted its own requests "
                "(fail-open to a local limiter) until Redis answered again.",
                source="security.rate_limiter",
                details={"since": started, "local_hits": self.fallback_hits},
            )
        except _FAILURES:
            return
        self.fallback_alerted = True

    async def _flush_seen(self) -> None:
        if not self.seen or self.degraded:
            return
        seen, self.seen = self.seen, {}
        store = self.runtime.store
        key = store.key("ratelimit", "clients")
        try:
            async with store.redis.pipeline(transaction=False) as p:
                p.zadd(key, seen)
                p.zremrangebyscore(key, "-inf", time.time() - CLIENTS_KEEP_SECONDS)
                await p.execute()
        except _FAILURES:
            self.seen.update(seen)


def limiter(runtime: Runtime) -> Limiter:
    """This process's limiter (created on first use)."""
    found = runtime.state.get("security_limiter")
    if not isinstance(found, Limiter):
        found = Limiter(runtime)
        runtime.state["security_limiter"] = found
    return found


@background_task("security_rate_limiter", services=("api", "mcp", "web"))
async def watch_limiter(runtime: Runtime) -> None:
    """Every second: record which clients were seen and bring the Redis limiter back after an outage."""
    gate = limiter(runtime)
    try:
        while True:
            await asyncio.sleep(1.0)
            await gate.watch_once()
    finally:
        await gate.close()
