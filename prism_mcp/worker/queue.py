"""saq's Redis queue with every key under PRISM's prefix.

saq names its keys ``saq:<queue>:…`` and ``saq:job:<queue>:…``; this queue names them ``<prefix>saq:…`` instead,
so that several PRISM installations (or test runs) with different prefixes can share one Redis without seeing
each other's jobs. The only key saq writes outside the prefix is its short-lived abort marker
(``saq:abort:<job key>``, five seconds); PRISM's job keys start with the prefix, so those cannot collide either.
saq needs a client that returns bytes, so the queue has its own connection, built from the store's URL.
"""

from __future__ import annotations

import asyncio
from typing import Any

from saq.job import Job
from saq.queue.redis import PubSubMultiplexer, RedisQueue

from prism_mcp.store.connection import CONNECTION_ERRORS, Store

__all__ = ["QUEUE_NAME", "PrismQueue", "open_queue"]

QUEUE_NAME = "prism"
OUTAGE_PAUSE = 1.0


class PrismQueue(RedisQueue):
    def __init__(self, redis: Any, *, prefix: str) -> None:
        self.key_prefix = prefix + "saq:"
        super().__init__(redis, name=QUEUE_NAME)
        self._pubsub = PubSubMultiplexer(redis.pubsub(), prefix=self.job_id(""))

    def namespace(self, key: str) -> str:
        return self.key_prefix + key

    def job_id(self, job_key: str) -> str:
        return f"{self.key_prefix}job:{job_key}"

    def job_key_from_id(self, job_id: str) -> str:
        return job_id[len(self.job_id("")) :]

    async def dequeue(self, timeout: float = 0.0, poll_interval: float = 0.0) -> Job | None:  # noqa: ASYNC109
        # saq starts the next dequeue as soon as one fails, so a Redis outage would spin the CPU; wait instead.
        try:
            return await super().dequeue(timeout, poll_interval)
        except CONNECTION_ERRORS:
            await asyncio.sleep(OUTAGE_PAUSE)
            return None


def open_queue(store: Store) -> PrismQueue:
    """A queue on the store's server; the caller disconnects it."""
    # saq reads bytes and sets its own command timeouts, so the store's text decoding and socket timeout are off.
    client = store.client(decode_responses=False, socket_timeout=None)
    return PrismQueue(client, prefix=store.prefix)
