"""Keys to principals: ``API_KEY`` is admin, ``PRISM_OPERATOR_KEYS`` operate, ``PRISM_READ_KEYS`` read.

Presented keys are hashed and compared with every known key's hash in constant time, so neither the key nor
how much of it matched leaks through timing. Keys are never logged; events name a key by its fingerprint.
"""

from __future__ import annotations

import hashlib
import hmac
from contextvars import ContextVar

from prism_mcp.capability import Principal, Scope
from prism_mcp.config import Settings
from prism_mcp.errors import InvalidApiKeyError

__all__ = ["KeyRing", "current_principal", "fingerprint"]

# The caller of the request being served. The MCP transport's auth middleware sets it and the MCP tool
# wrappers read it: the SDK runs each request's handler in the request task's context.
current_principal: ContextVar[Principal | None] = ContextVar("prism_principal", default=None)


def fingerprint(key: str) -> str:
    """A short, stable, non-reversible name for a key (``k:1a2b3c4d``)."""
    return "k:" + hashlib.sha256(key.encode()).hexdigest()[:8]


class KeyRing:
    """The keys this process accepts and the scope each grants."""

    def __init__(self, settings: Settings) -> None:
        entries: list[tuple[bytes, Scope, str]] = []
        admin = settings.api_key.get_secret_value() if settings.api_key else ""
        if admin:
            entries.append((self._digest(admin), Scope.ADMIN, fingerprint(admin)))
        for key in settings.operator_keys:
            entries.append((self._digest(key), Scope.OPERATE, fingerprint(key)))
        for key in settings.read_keys:
            entries.append((self._digest(key), Scope.READ, fingerprint(key)))
        self._entries = entries

    @staticmethod
    def _digest(key: str) -> bytes:
        return hashlib.sha256(key.encode()).digest()

    def __len__(self) -> int:
        return len(self._entries)

    def principal_for_key(self, key: str) -> Principal:
        """The principal a key names; :class:`InvalidApiKeyError` for an unknown or empty key."""
        digest = self._digest(key)
        found: tuple[Scope, str] | None = None
        for known, scope, fp in self._entries:
            # Compare against every entry so the time taken does not say which one matched.
            if hmac.compare_digest(known, digest) and found is None:
                found = (scope, fp)
        if not key or found is None:
            raise InvalidApiKeyError()
        return Principal(name=f"key:{found[1][2:]}", scope=found[0], fingerprint=found[1])

    def principal_for_header(self, authorization: str | None) -> Principal:
        """The principal of an ``Authorization: Bearer <key>`` header; anything else is an invalid key."""
        if not authorization:
            raise InvalidApiKeyError()
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidApiKeyError()
        return self.principal_for_key(token.strip())
