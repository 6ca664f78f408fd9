"""The block list: addresses and CIDR ranges refused before authentication, on every port.

Entries live in one Redis hash (``security:blocklist``) with a version counter bumped on every change. Each
process keeps a local snapshot that a background task refreshes when the version moves, so the per-request
check touches no network, and a Redis outage leaves the last snapshot in force until Redis returns. Entries
with a TTL carry their expiry time, so they stop matching on time even while the snapshot cannot refresh.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass

from prism_mcp.runtime import Runtime, background_task
from prism_mcp.security.addresses import Address, Network, parse_network
from prism_mcp.store.connection import CONNECTION_ERRORS, Store

__all__ = ["BlockList", "Entry", "block", "blocklist", "refresh_blocklist", "unblock"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Entry:
    network: Network
    reason: str
    blocked_at: float
    expires_at: float | None
    by: str

    def active(self, now: float) -> bool:
        return self.expires_at is None or self.expires_at > now

    def to_json(self) -> str:
        fields = {"reason": self.reason, "blocked_at": self.blocked_at, "expires_at": self.expires_at, "by": self.by}
        return json.dumps(fields)

    @classmethod
    def from_json(cls, network: str, raw: str) -> Entry:
        fields = json.loads(raw)
        return cls(parse_network(network), fields["reason"], fields["blocked_at"], fields["expires_at"], fields["by"])


def _hash_key(store: Store) -> str:
    return store.key("security", "blocklist")


def _version_key(store: Store) -> str:
    return store.key("security", "blocklist", "version")


class BlockList:
    """One process's snapshot of the block list."""

    def __init__(self) -> None:
        self.entries: tuple[Entry, ...] = ()
        self.version: str | None = None
        self.loaded = False
        self.refreshed_at = 0.0
        self.stale = False

    def match(self, address: Address) -> Entry | None:
        now = time.time()
        for entry in self.entries:
            if entry.network.version == address.version and address in entry.network and entry.active(now):
                return entry
        return None

    def active(self) -> list[Entry]:
        now = time.time()
        return [entry for entry in self.entries if entry.active(now)]

    async def refresh(self, store: Store, *, force: bool = False) -> None:
        """Reload from Redis when the version moved (or ``force``); raises the connection error if unreachable."""
        version = await store.redis.get(_version_key(store))
        if self.loaded and not force and version == self.version:
            self._mark_fresh()
            return
        raw: dict[str, str] = await store.redis.hgetall(_hash_key(store))
        now = time.time()
        entries: list[Entry] = []
        expired: list[Entry] = []
        for network, fields in raw.items():
            entry = Entry.from_json(network, fields)
            (entries if entry.active(now) else expired).append(entry)
        if expired:
            # Expired entries are dropped without a version bump: every snapshot ignores them already.
            await store.redis.hdel(_hash_key(store), *[str(e.network) for e in expired])
        self.entries, self.version, self.loaded = tuple(entries), version, True
        self._mark_fresh()

    def _mark_fresh(self) -> None:
        self.refreshed_at = time.time()
        if self.stale:
            logger.info("blocklist_snapshot_fresh_again", extra={"entries": len(self.entries)})
        self.stale = False

    async def ensure_loaded(self, store: Store) -> None:
        if self.loaded:
            return
        try:
            await self.refresh(store)
        except CONNECTION_ERRORS:
            self.mark_stale()

    def mark_stale(self) -> None:
        if not self.stale:
            logger.warning("blocklist_snapshot_stale", extra={"entries": len(self.entries)})
        self.stale = True


def blocklist(runtime: Runtime) -> BlockList:
    """This process's snapshot (created on first use)."""
    found = runtime.state.get("security_blocklist")
    if not isinstance(found, BlockList):
        found = BlockList()
        runtime.state["security_blocklist"] = found
    return found


async def block(runtime: Runtime, network: Network, *, reason: str, ttl_seconds: int | None, by: str) -> Entry:
    """Add or replace the entry for ``network`` and refresh this process's snapshot at once."""
    now = time.time()
    entry = Entry(network, reason, now, now + ttl_seconds if ttl_seconds else None, by)
    store = runtime.store
    async with store.redis.pipeline(transaction=True) as pipe:
        pipe.hset(_hash_key(store), str(network), entry.to_json())
        pipe.incr(_version_key(store))
        await pipe.execute()
    await blocklist(runtime).refresh(store, force=True)
    return entry


async def unblock(runtime: Runtime, network: Network) -> Entry | None:
    """Remove the entry for exactly ``network``; returns what was removed, or ``None`` if it was not listed."""
    store = runtime.store
    raw = await store.redis.hget(_hash_key(store), str(network))
    if raw is None:
        return None
    async with store.redis.pipeline(transaction=True) as pipe:
        pipe.hdel(_hash_key(store), str(network))
        pipe.incr(_version_key(store))
        await pipe.execute()
    await blocklist(runtime).refresh(store, force=True)
    return Entry.from_json(str(network), raw)


@background_task("security_blocklist", services=("api", "mcp", "web"))
async def refresh_blocklist(runtime: Runtime) -> None:
    """Every ``PRISM_BLOCKLIST_REFRESH`` seconds, pick up changes made by other processes; keep the snapshot
    (and say so once) while Redis cannot be reached."""
    snapshot = blocklist(runtime)
    while True:
        # Sleep first: the first request loads the snapshot itself (ensure_loaded), and a runtime stopped at
        # once is then cancelled in a sleep rather than while redis-py opens its first connection.
        await asyncio.sleep(runtime.settings.blocklist_refresh)
        try:
            await snapshot.refresh(runtime.store)
        except CONNECTION_ERRORS:
            snapshot.mark_stale()
