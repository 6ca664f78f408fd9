"""The security guards on the request gate, and the observer that turns scope denials into events.

Order at the door (pre-auth guards run in the order they are declared here):

1. a blocked address gets 403 (never for ``PRISM_NEVER_BLOCK``);
2. an address over the failed-authentication limit gets 429, whatever key it now presents;
3. a key in the query string gets 401 and counts as a failed authentication;
4. hostile-looking requests are recorded (never refused).

Then the key; a refused key is an ``auth_failure`` event and a hit on the failure limit; an accepted key is
counted against ``PRISM_RATE_LIMIT`` and its ``X-RateLimit-*`` headers go on the response.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl

from prism_mcp.capability import Call, Capability, Principal
from prism_mcp.errors import BlockedAddressError, InvalidApiKeyError, PrismError, RateLimitedError
from prism_mcp.http_bridge.gate import (
    RequestInfo,
    auth_failure_hook,
    not_found_hook,
    post_auth_guard,
    pre_auth_guard,
    set_client_address_resolver,
)
from prism_mcp.runtime import Runtime, on_runtime_start
from prism_mcp.security.addresses import contains, parse_address, resolve_client, to_networks
from prism_mcp.security.blocklist import blocklist
from prism_mcp.security.payloads import findings, printable
from prism_mcp.security.pipeline import emit
from prism_mcp.security.ratelimit import limiter
from prism_mcp.security_events import current_client

__all__ = ["QUERY_KEY_NAMES", "current_client"]

logger = logging.getLogger(__name__)

QUERY_KEY_NAMES = frozenset(
    {"api_key", "apikey", "api-key", "key", "token", "access_token", "auth", "authorization", "bearer", "x-api-key"}
)


set_client_address_resolver(resolve_client)


def _request_details(info: RequestInfo) -> dict[str, str]:
    return {"port": info.port, "method": info.method, "path": printable(info.path)}


@pre_auth_guard
async def refuse_blocked(runtime: Runtime, info: RequestInfo) -> None:
    address = parse_address(info.client_ip)
    if address is None or contains(to_networks(tuple(runtime.settings.never_block)), address):
        return
    snapshot = blocklist(runtime)
    await snapshot.ensure_loaded(runtime.store)
    entry = snapshot.match(address)
    if entry is None:
        return
    emit(
        runtime,
        "blocked_request",
        f"refused {info.method} {printable(info.path)} from blocked {info.client_ip}",
        severity="warning",
        client_ip=info.client_ip,
        details={**_request_details(info), "network": str(entry.network)},
    )
    raise BlockedAddressError(
        f"access from {info.client_ip} is blocked ({entry.network}); ask an administrator to unblock it"
    )


@pre_auth_guard
async def refuse_throttled(runtime: Runtime, info: RequestInfo) -> None:
    until = limiter(runtime).throttled_until(info.client_ip)
    if until is None:
        return
    gate = limiter(runtime)
    decision = await gate.stats(gate.failures, f"ip:{info.client_ip}")
    info.response_headers.update(decision.headers())
    raise RateLimitedError(retry_after=decision.retry_after, limit=decision.limit)


@pre_auth_guard
async def refuse_query_keys(runtime: Runtime, info: RequestInfo) -> None:
    if not info.query_string:
        return
    names = {name.lower() for name, _ in parse_qsl(info.query_string, keep_blank_values=True)}
    offending = sorted(names & QUERY_KEY_NAMES)
    if not offending:
        return
    error = InvalidApiKeyError(
        f"API keys are not accepted in the query string (got parameter {offending[0]!r}); "
        "send the header Authorization: Bearer <key>"
    )
    await count_failure(runtime, info, error)
    raise error


@pre_auth_guard
async def notice_suspicious(runtime: Runtime, info: RequestInfo) -> None:
    found = findings(info.path, info.query_string, info.headers.get("user-agent", ""))
    if not found:
        return
    extra = {"client_ip": info.client_ip, "kinds": found, "port": info.port, "path": printable(info.path)}
    logger.warning("suspicious_request", extra=extra)
    emit(
        runtime,
        "suspicious_request",
        f"{', '.join(found)} in {info.method} {printable(info.path)}",
        severity="warning",
        client_ip=info.client_ip,
        details={
            **_request_details(info),
            "kinds": found,
            "query": printable(_masked_query(info.query_string)),
            "user_agent": printable(info.headers.get("user-agent", ""), 120),
        },
    )


def _masked_query(query: str) -> str:
    """The query string with the value of any key-like parameter replaced, so no event can hold a key."""
    pairs = parse_qsl(query, keep_blank_values=True)
    return "&".join(f"{name}={'***' if name.lower() in QUERY_KEY_NAMES else value}" for name, value in pairs)


@auth_failure_hook
async def count_failure(runtime: Runtime, info: RequestInfo, error: PrismError) -> None:
    emit(
        runtime,
        "auth_failure",
        f"{error.message} on {info.method} {printable(info.path)}",
        severity="warning",
        client_ip=info.client_ip,
        details={**_request_details(info), "scheme": _scheme(info)},
    )
    gate = limiter(runtime)
    client = f"ip:{info.client_ip}"
    decision = await gate.hit(gate.failures, client)
    if decision.allowed:
        return
    gate.throttle(info.client_ip, decision.reset_at)
    _limited(runtime, info, client, decision.limit, "auth_failures")
    info.response_headers.update(decision.headers())
    raise RateLimitedError(retry_after=decision.retry_after, limit=decision.limit)


def _scheme(info: RequestInfo) -> str:
    header = info.headers.get("authorization")
    if header is None:
        return "none"
    scheme = header.partition(" ")[0].lower()
    return scheme if scheme in {"bearer", "basic", "digest", "token"} else "other"


@post_auth_guard
async def limit_requests(runtime: Runtime, info: RequestInfo, principal: Principal) -> None:
    current_client.set(info.client_ip)
    gate = limiter(runtime)
    decision = await gate.hit(gate.requests, principal.name)
    info.response_headers.update(decision.headers())
    if decision.allowed:
        return
    _limited(runtime, info, principal.name, decision.limit, "requests", principal.fingerprint)
    raise RateLimitedError(retry_after=decision.retry_after, limit=decision.limit)


def _limited(
    runtime: Runtime, info: RequestInfo, client: str, limit: int, which: str, principal: str | None = None
) -> None:
    emit(
        runtime,
        "rate_limited",
        f"{client} is over its {which} limit of {limit} per window",
        severity="warning",
        client_ip=info.client_ip,
        principal=principal,
        details={**_request_details(info), "client": client, "limit": limit, "which": which},
    )


@not_found_hook
async def count_misses(runtime: Runtime, info: RequestInfo) -> None:
    await refuse_blocked(runtime, info)
    await refuse_query_keys(runtime, info)
    await notice_suspicious(runtime, info)
    emit(runtime, "not_found", f"{info.method} {printable(info.path)}", client_ip=info.client_ip, stored=False)


class ScopeObserver:
    """Records a ``scope_denied`` event for every 403 of :func:`invoke`.

    Settings changes are recorded by the capabilities that make them, which know which fields changed.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def __call__(self, cap: Capability, call: Call, outcome: str, status: int, seconds: float) -> None:
        if status == 403:
            emit(
                self.runtime,
                "scope_denied",
                f"{cap.name} needs the {cap.scope.value} scope; the key has {call.principal.scope.value}",
                severity="warning",
                client_ip=current_client.get(),
                principal=call.principal.fingerprint,
                details={"capability": cap.name, "surface": call.surface, "needed": cap.scope.value},
            )


@on_runtime_start
def _observe(runtime: Runtime) -> None:
    runtime.observers.append(ScopeObserver(runtime))
