"""The declaration and the one invocation path: scope, validation, crash containment, audit, observers."""

from __future__ import annotations

from typing import Annotated

import httpx
import pytest
from pydantic import BaseModel, Field

from prism_mcp.capability import Call, Capability, Principal, Registry, Scope, capability, invoke
from prism_mcp.errors import ForbiddenError, InvalidInputError, PrismError
from prism_mcp.http_bridge.app import _Envelope
from prism_mcp.runtime import Runtime

local = Registry()


class Echo(BaseModel):
    text: str
    times: int


@capability("POST /test/echo", scope=Scope.OPERATE, target=local, secret_params=frozenset({"token"}))
async def echo(
    call: Call,
    text: Annotated[str, Field(min_length=1, max_length=20, description="What to echo.")],
    times: Annotated[int, Field(ge=1, le=3, description="How often.")] = 1,
    token: Annotated[str | None, Field(max_length=64, description="A secret that must never be shown.")] = None,
) -> Echo:
    """Echo text back; changes nothing but is declared as a state change to exercise the audit."""
    return Echo(text=text * times, times=times)


@capability("GET /test/crash", scope=Scope.READ, read_only=True, target=local)
async def crash(call: Call) -> Echo:
    """Always fails with an unexpected exception."""
    raise RuntimeError("internal detail that must not leak")


def _cap(name: str) -> Capability:
    cap = local.get(name)
    assert cap is not None
    return cap


OPERATOR = Principal("op", Scope.OPERATE, "k:op")
READER = Principal("reader", Scope.READ, "k:reader")


async def test_a_reader_is_refused_an_operate_capability_before_validation(runtime: Runtime) -> None:
    with pytest.raises(ForbiddenError, match="echo needs the operate scope; this key has read"):
        await invoke(runtime, _cap("echo"), READER, {"text": ""}, surface="internal")


@pytest.mark.parametrize(
    ("arguments", "field", "fragment"),
    [
        ({"text": "x", "times": 4}, "times", "less than or equal to 3 (got 4)"),
        ({"text": ""}, "text", "at least 1 character"),
        ({}, "text", "this parameter is required"),
        ({"text": "x", "loud": True}, "loud", "unknown parameter; echo accepts: text, times, token"),
        ({"text": "x", "token": "s" * 65}, "token", "at most 64 characters"),
    ],
)
async def test_bad_input_names_the_field_and_the_bound(
    runtime: Runtime, arguments: dict[str, object], field: str, fragment: str
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        await invoke(runtime, _cap("echo"), OPERATOR, arguments, surface="internal")
    assert caught.value.field == field
    assert caught.value.message.startswith(f"{field}: ")
    assert fragment in caught.value.message
    assert "s" * 65 not in caught.value.message


async def test_a_secret_argument_is_masked_in_the_audit(runtime: Runtime) -> None:
    await invoke(runtime, _cap("echo"), OPERATOR, {"text": "hi", "token": "hunter2"}, surface="rest")
    entries = await runtime.store.redis.xrange(runtime.store.key("audit"))
    assert len(entries) == 1
    fields = entries[0][1]
    assert (fields["capability"], fields["principal"], fields["surface"]) == ("echo", "op", "rest")
    assert "hunter2" not in fields["arguments"]
    assert '"token": "***"' in fields["arguments"]


async def test_a_crash_becomes_a_bare_internal_error_and_is_observed(runtime: Runtime) -> None:
    seen: list[tuple[str, str, int]] = []
    runtime.observers.append(lambda cap, call, outcome, status, seconds: seen.append((cap.name, outcome, status)))
    with pytest.raises(PrismError) as caught:
        await invoke(runtime, _cap("crash"), READER, {}, surface="internal")
    assert type(caught.value) is PrismError
    assert caught.value.message == "Internal error"
    assert seen == [("crash", "internal_error", 500)]


async def test_an_exception_escaping_a_route_answers_500_in_the_envelope_without_traceback() -> None:
    async def broken(scope: object, receive: object, send: object) -> None:
        raise RuntimeError("secret internals")

    transport = httpx.ASGITransport(app=_Envelope(broken), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/anything")
    assert response.status_code == 500
    assert response.json()["error"] == {"code": "internal_error", "message": "Internal error"}
    assert "secret internals" not in response.text


def test_declarations_that_would_break_a_surface_are_refused() -> None:
    scratch = Registry()

    async def no_doc(call: Call) -> Echo:
        return Echo(text="", times=1)

    async def documented(call: Call) -> Echo:
        """Documented."""
        return Echo(text="", times=1)

    with pytest.raises(ValueError, match="needs a docstring"):
        capability("GET /x/a", scope=Scope.READ, read_only=True, target=scratch)(no_doc)
    with pytest.raises(ValueError, match="must look like"):
        capability("FETCH /x", scope=Scope.READ, target=scratch)
    with pytest.raises(ValueError, match="a GET route must be read-only"):
        capability("GET /x/b", scope=Scope.READ, target=scratch)(documented)
    capability("GET /x/c", scope=Scope.READ, read_only=True, target=scratch, name="first")(documented)
    with pytest.raises(ValueError, match="declared by both"):
        capability("GET /x/c", scope=Scope.READ, read_only=True, target=scratch, name="second")(documented)
