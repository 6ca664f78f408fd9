"""Dashboard sessions: the API key stays on the server, the browser holds a signed, opaque session id.

A session lives in Redis under ``store.key("web", "session", id)`` with a sliding TTL, so any PRISM-WEB
replica on the same Redis and secret accepts it. The cookie is ``<id>.<HMAC-SHA256(id)>``; a cookie whose
signature does not match is treated as absent, never looked up.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from prism_mcp.capability import Scope
from prism_mcp.store import Store

__all__ = ["CookieSigner", "Session", "SessionStore"]


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    key: str
    principal: str
    scope: Scope
    fingerprint: str
    csrf: str

    def allows(self, needed: Scope) -> bool:
        return self.scope.rank >= needed.rank


class CookieSigner:
    """Signs and checks values with HMAC-SHA256 under ``PRISM_WEB_SECRET``."""

    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()

    def _mac(self, value: str) -> str:
        digest = hmac.new(self._secret, value.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def sign(self, value: str) -> str:
        return f"{value}.{self._mac(value)}"

    def unsign(self, token: str | None) -> str | None:
        """The value of a signed token, or ``None`` when it is missing or its signature does not match."""
        if not token or "." not in token:
            return None
        value, _, mac = token.rpartition(".")
        return value if hmac.compare_digest(mac, self._mac(value)) else None


class SessionStore:
    """Sessions in Redis; each read extends the TTL (idle sessions expire, active ones do not)."""

    def __init__(self, store: Store, ttl_seconds: int) -> None:
        self._store = store
        self._ttl = ttl_seconds

    def _key(self, session_id: str) -> str:
        return self._store.key("web", "session", session_id)

    async def create(self, key: str, principal: str, scope: Scope, fingerprint: str) -> Session:
        session = Session(secrets.token_urlsafe(24), key, principal, scope, fingerprint, secrets.token_urlsafe(24))
        record = {
            "key": key,
            "principal": principal,
            "scope": scope.value,
            "fingerprint": fingerprint,
            "csrf": session.csrf,
        }
        await self._store.redis.set(self._key(session.id), json.dumps(record), ex=self._ttl)
        return session

    async def get(self, session_id: str) -> Session | None:
        key = self._key(session_id)
        raw = await self._store.redis.getex(key, ex=self._ttl)
        if raw is None:
            return None
        record = json.loads(raw)
        scope = Scope(record["scope"])
        return Session(session_id, record["key"], record["principal"], scope, record["fingerprint"], record["csrf"])

    async def delete(self, session_id: str) -> None:
        await self._store.redis.delete(self._key(session_id))
