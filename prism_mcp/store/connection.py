"""The process's Redis client, wrapped so that every failure becomes ``Redis connection failed``."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
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
    PRISM recovers by itself when the server returns.
    """

    def __init__(self, url: str, *, prefix: str = "prism:", timeout: float = 2.0) -> None:
        self.url = url
        self.prefix = prefix
        self.timeout = timeout
        self.redis: aioredis.Redis = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=timeout,
            socket_connect_timeout=min(timeout, 1.0),
            health_check_interval=15,
            retry_on_timeout=False,
            max_connections=64,
        )

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

    @staticmethod
    def is_connection_error(exc: BaseException) -> bool:
        return isinstance(exc, CONNECTION_ERRORS)
