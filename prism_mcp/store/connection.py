"""The process's Redis client, wrapped so that every failure becomes ``Redis connection failed``."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import parse_url
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from prism_mcp.errors import RedisUnavailableError

__all__ = ["Store", "redis_errors"]

# What a lost, refused, slow or busy server raises. Every other RedisError is a PRISM bug and is not masked.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError, OSError)


@asynccontextmanager
async def redis_errors() -> AsyncIterator[None]:
    """Translate a connection failure inside the block into :class:`RedisUnavailableError`."""
    try:
        yield
    except CONNECTION_ERRORS as exc:
        raise RedisUnavailableError() from exc


class Store:
    """PRISM's shared state on one Redis server, every key under one prefix.

    The client has bounded connect and command timeouts and no retries of its own: a caller waits at most
    ``timeout`` seconds and then gets ``Redis connection failed``. redis-py reconnects on the next command, so
    PRISM recovers by itself when the server returns. A burst beyond the pool's size waits (up to ``timeout``)
    for a free connection instead of failing as if Redis were down.

    With ``sentinels`` the server is the current master of ``sentinel_master`` as Redis Sentinel reports it,
    and ``url`` only gives the database, credentials and TLS (``rediss://``); a failover is followed on the
    next command. Every client PRISM opens (the worker's queue, backups, the rate limiter) comes from
    :meth:`client` or :meth:`pool`, so all of them follow the same rules.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "prism:",
        timeout: float = 2.0,
        sentinels: Sequence[tuple[str, int]] = (),
        sentinel_master: str | None = None,
    ) -> None:
        if sentinels and not sentinel_master:
            raise ValueError("a Sentinel deployment needs the master's name (REDIS_SENTINEL_MASTER)")
        self.url = url
        self.prefix = prefix
        self.timeout = timeout
        self.sentinels = tuple(sentinels)
        self.sentinel_master = sentinel_master
        self._manager: Sentinel | None = None
        self.redis: aioredis.Redis = self.client()

    @property
    def location(self) -> str:
        """Where the data lives, for start-up lines and health (no password)."""
        if not self.sentinels:
            return self.url
        hosts = ",".join(f"{host}:{port}" for host, port in self.sentinels)
        return f"sentinel://{hosts}/{self.sentinel_master}"

    def _options(self, overrides: dict[str, Any]) -> dict[str, Any]:
        options: dict[str, Any] = {
            "decode_responses": True,
            "socket_timeout": self.timeout,
            "socket_connect_timeout": min(self.timeout, 1.0),
            "health_check_interval": 15,
            "retry_on_timeout": False,
        }
        options.update(overrides)
        return options

    def client(
        self, *, max_connections: int = 64, wait: float | bool | None = True, **overrides: Any
    ) -> aioredis.Redis:
        """A new client on PRISM's server (the caller closes it); ``overrides`` are redis-py options.

        ``wait`` bounds how long a command waits for a free connection when all are busy: ``True`` means the
        store's timeout, ``None`` waits as long as the connections in use take (their own timeouts bound it).
        """
        options = self._options(overrides)
        if self.sentinels:
            return self._sentinel().master_for(self.sentinel_master or "", **options)
        pool = aioredis.BlockingConnectionPool.from_url(
            self.url, max_connections=max_connections, timeout=self.timeout if wait is True else wait, **options
        )
        return aioredis.Redis.from_pool(pool)  # the client owns the pool: aclose() disconnects it

    def pool(
        self, *, max_connections: int, wait: float | bool | None = True, **overrides: Any
    ) -> aioredis.ConnectionPool:
        """A connection pool on PRISM's server, for libraries that take one (the rate limiter)."""
        client = self.client(max_connections=max_connections, wait=wait, **overrides)
        pool: aioredis.ConnectionPool = client.connection_pool
        return pool

    def _sentinel(self) -> Sentinel:
        if self._manager is None:
            self._manager = self._new_sentinel()
        return self._manager

    def _new_sentinel(self) -> Sentinel:
        parsed = parse_url(self.url)
        auth = {k: parsed[k] for k in ("db", "username", "password") if k in parsed}
        tls: dict[str, Any] = {k: v for k, v in parsed.items() if k.startswith("ssl_")}
        if self.url.startswith("rediss://"):
            tls["ssl"] = True
        timeouts = {"socket_timeout": self.timeout, "socket_connect_timeout": min(self.timeout, 1.0)}
        return Sentinel(list(self.sentinels), sentinel_kwargs={**timeouts, **tls}, **auth, **tls)

    def key(self, *parts: str | int) -> str:
        """``prism:`` + the parts joined by ``:``."""
        return self.prefix + ":".join(str(part) for part in parts)

    async def ping(self) -> float:
        """Round-trip time in milliseconds; raises :class:`RedisUnavailableError` when unreachable."""
        started = time.perf_counter()
        async with redis_errors():
            await self.redis.ping()
        return (time.perf_counter() - started) * 1000.0

    async def server_info(self) -> dict[str, object]:
        async with redis_errors():
            info: dict[str, object] = await self.redis.info(section="server")
        return info

    async def close(self) -> None:
        with contextlib.suppress(RedisError, *CONNECTION_ERRORS):
            await self.redis.aclose()
        if self._manager is not None:
            for client in self._manager.sentinels:
                with contextlib.suppress(RedisError, *CONNECTION_ERRORS):
                    await client.aclose()

    @staticmethod
    def is_connection_error(exc: BaseException) -> bool:
        return isinstance(exc, CONNECTION_ERRORS)
