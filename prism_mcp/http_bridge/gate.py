"""The gate every HTTP request passes on the API, MCP and web ports: guards, then the key, then guards.

Areas add guards without editing the bridges: a *pre-auth* guard runs before the key is read (the block list),
a *post-auth* guard after it (rate limits) and may add response headers, and an *auth-failure* hook hears of
every refused key (security events, the failed-authentication limit).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from prism_mcp.auth import KeyRing
from prism_mcp.capability import Principal
from prism_mcp.errors import InvalidApiKeyError, PrismError
from prism_mcp.runtime import Runtime

__all__ = [
    "RequestInfo",
    "admit",
    "auth_failure_hook",
    "client_address",
    "post_auth_guard",
    "pre_auth_guard",
    "screen",
]

Port = Literal["api", "mcp", "web"]


@dataclass(slots=True)
class RequestInfo:
    """What the guards may look at; ``client_ip`` is the socket peer unless a trusted proxy says otherwise."""

    port: Port
    method: str
    path: str
    client_ip: str
    peer_ip: str
    headers: Mapping[str, str]
    query_string: str = ""
    response_headers: dict[str, str] = field(default_factory=dict)


PreAuthGuard = Callable[[Runtime, RequestInfo], Awaitable[None]]
PostAuthGuard = Callable[[Runtime, RequestInfo, Principal], Awaitable[None]]
AuthFailureHook = Callable[[Runtime, RequestInfo, PrismError], Awaitable[None]]

_PRE: list[PreAuthGuard] = []
_POST: list[PostAuthGuard] = []
_FAIL: list[AuthFailureHook] = []

ClientAddressResolver = Callable[[Runtime, str, Mapping[str, str]], str]
_resolver: list[ClientAddressResolver] = []


def pre_auth_guard(fn: PreAuthGuard) -> PreAuthGuard:
    _PRE.append(fn)
    return fn


def post_auth_guard(fn: PostAuthGuard) -> PostAuthGuard:
    _POST.append(fn)
    return fn


def auth_failure_hook(fn: AuthFailureHook) -> AuthFailureHook:
    _FAIL.append(fn)
    return fn


def set_client_address_resolver(fn: ClientAddressResolver) -> None:
    """Replace how the client address is derived (the security area honours trusted proxies)."""
    _resolver[:] = [fn]


def client_address(runtime: Runtime, peer_ip: str, headers: Mapping[str, str]) -> str:
    return _resolver[0](runtime, peer_ip, headers) if _resolver else peer_ip


async def screen(runtime: Runtime, info: RequestInfo) -> None:
    """Run only the pre-auth guards (the block list): for ports such as the dashboard that hold no bearer key.

    Raises the :class:`PrismError` to answer with.
    """
    for guard in _PRE:
        await guard(runtime, info)


async def admit(runtime: Runtime, keys: KeyRing, info: RequestInfo) -> Principal:
    """Run the guards and read the bearer key; raises the :class:`PrismError` to answer with."""
    await screen(runtime, info)
    try:
        principal = keys.principal_for_header(info.headers.get("authorization"))
    except InvalidApiKeyError as exc:
        for hook in _FAIL:
            await hook(runtime, info, exc)
        raise
    for post in _POST:
        await post(runtime, info, principal)
    return principal
