"""Who the caller is: the principal a key names and the scope it holds (``/auth/whoami``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from prism_mcp.capability import Call, Scope, capability

__all__ = ["WhoAmI"]


class WhoAmI(BaseModel):
    principal: str = Field(description="The caller's name as the audit trail records it.")
    scope: Literal["read", "operate", "admin"] = Field(description="What the key may do: read < operate < admin.")
    fingerprint: str = Field(description="Short, non-reversible name of the key; never the key.")
    allowed_scopes: list[str] = Field(description="Every scope this key satisfies, lowest first.")


@capability("GET /auth/whoami", scope=Scope.READ, read_only=True)
async def whoami(call: Call) -> WhoAmI:
    """The calling key's principal, scope and fingerprint: check a key, or which actions it may take.

    Capabilities declare the scope they need (read, operate or admin); a key may call those at or below its scope.
    """
    principal = call.principal
    allowed = [scope.value for scope in Scope if principal.allows(scope)]
    return WhoAmI(
        principal=principal.name,
        scope=principal.scope.value,
        fingerprint=principal.fingerprint,
        allowed_scopes=allowed,
    )
