"""The capability declaration, the registry, and the one invocation path.

A capability is a typed async function declared once with :func:`capability`::

    @capability("GET /monitoring/logs/stats", scope=Scope.READ, read_only=True)
    async def logs_stats(call: Call, hours: Annotated[int, Field(ge=1, le=720, description="…")] = 24) -> LogStats:
        ...

From the declaration PRISM generates its REST route, its OpenAPI operation, its MCP tool (or ``prism://``
resource), its ``prism call`` command and its worker job target. Every surface then calls :func:`invoke`, which
checks the caller's scope, validates the arguments against the declaration, runs the handler, records an audit
event for anything that changes state, and returns the typed result or raises a :class:`PrismError`.
"""

from __future__ import annotations

import inspect
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_type_hints

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from prism_mcp.errors import InvalidInputError, PrismError, RedisUnavailableError
from prism_mcp.store.connection import CONNECTION_ERRORS

if TYPE_CHECKING:
    from prism_mcp.runtime import Runtime

__all__ = [
    "Call",
    "Capability",
    "Principal",
    "ProgressFn",
    "Registry",
    "Scope",
    "capability",
    "current_call",
    "invoke",
    "registry",
]

logger = logging.getLogger(__name__)

ProgressFn = Callable[[float, float | None, str | None], Awaitable[None]]
Surface = Literal["rest", "mcp", "cli", "worker", "web", "internal"]


class Scope(StrEnum):
    """What a key may do: ``read`` < ``operate`` < ``admin``."""

    READ = "read"
    OPERATE = "operate"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _SCOPE_RANK[self]


_SCOPE_RANK = {Scope.READ: 0, Scope.OPERATE: 1, Scope.ADMIN: 2}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a name for audit, the scope of their key, and the key's short fingerprint."""

    name: str
    scope: Scope
    fingerprint: str = "-"

    def allows(self, needed: Scope) -> bool:
        return self.scope.rank >= needed.rank


@dataclass(slots=True)
class Call:
    """What a handler knows about the call it serves."""

    runtime: Runtime
    principal: Principal
    surface: Surface
    request_id: str
    capability: Capability
    progress: ProgressFn | None = None

    async def report(self, done: float, total: float | None = None, message: str | None = None) -> None:
        """Report progress of long work; a no-op where the surface shows none."""
        if self.progress is not None:
            await self.progress(done, total, message)


# The call being served, for whatever runs inside it: log lines take their request id, capability and service
# from it.
current_call: ContextVar[Call | None] = ContextVar("prism_call", default=None)


class Observer(Protocol):
    """Called after every invocation with its outcome (``ok`` or an error code); must not block."""

    def __call__(self, cap: Capability, call: Call, outcome: str, status: int, seconds: float) -> None: ...


Handler = Callable[..., Awaitable[BaseModel]]


@dataclass(frozen=True, slots=True)
class Capability:
    """One declared capability; see the module docstring."""

    name: str
    method: str
    path: str
    scope: Scope
    summary: str
    description: str
    handler: Handler
    params: tuple[inspect.Parameter, ...]
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    resource_uri: str | None = None
    read_only: bool = True
    destructive: bool = False
    idempotent: bool = True
    long_running: bool = False
    secret_params: frozenset[str] = field(default_factory=frozenset)
    title: str = ""

    @property
    def is_resource(self) -> bool:
        return self.resource_uri is not None

    @property
    def path_params(self) -> tuple[str, ...]:
        """Names of the ``{placeholders}`` in the REST path, each also a declared input."""
        return tuple(_PLACEHOLDER.findall(self.path))

    def match_uri(self, uri: str) -> dict[str, str] | None:
        """The inputs a ``prism://`` URI gives this resource, or ``None`` if it is not this resource's."""
        if self.resource_uri is None:
            return None
        if "{" not in self.resource_uri:
            return {} if uri == self.resource_uri else None
        found = _template_regex(self.resource_uri).fullmatch(uri)
        return found.groupdict() if found else None

    @property
    def mutates(self) -> bool:
        return not self.read_only

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)


class Registry:
    """Every declared capability, by name, in declaration order."""

    def __init__(self) -> None:
        self._by_name: dict[str, Capability] = {}

    def add(self, cap: Capability) -> None:
        if cap.name in self._by_name:
            raise ValueError(f"capability {cap.name!r} is declared twice")
        for other in self._by_name.values():
            if (other.method, other.path) == (cap.method, cap.path):
                raise ValueError(f"{cap.method} {cap.path} is declared by both {other.name!r} and {cap.name!r}")
            if cap.resource_uri and other.resource_uri == cap.resource_uri:
                raise ValueError(f"resource {cap.resource_uri} is declared twice")
        self._by_name[cap.name] = cap

    def get(self, name: str) -> Capability | None:
        return self._by_name.get(name)

    def by_uri(self, uri: str) -> tuple[Capability, dict[str, str]] | None:
        """The resource a URI names (static or template) and the inputs the URI carries."""
        for cap in self._by_name.values():
            found = cap.match_uri(uri)
            if found is not None:
                return cap, found
        return None

    def __iter__(self) -> Iterator[Capability]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def names(self) -> list[str]:
        return list(self._by_name)


registry = Registry()

_NAME = re.compile(r"^[a-z][a-z0-9_]{2,63}$")
_ROUTE = re.compile(r"^(GET|POST|PUT|DELETE|PATCH) (/[a-z0-9_./{}-]*)$")
_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


def _template_regex(template: str) -> re.Pattern[str]:
    """A regex for a path or URI template: each ``{name}`` matches one segment (no ``/``)."""
    parts = _PLACEHOLDER.split(template)
    pattern = "".join(re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)" for i, part in enumerate(parts))
    return re.compile(pattern)


def path_regex(path: str) -> re.Pattern[str]:
    return _template_regex(path)


def capability(
    route: str,
    *,
    scope: Scope,
    name: str | None = None,
    resource: str | None = None,
    read_only: bool = False,
    destructive: bool = False,
    idempotent: bool | None = None,
    long_running: bool = False,
    secret_params: frozenset[str] = frozenset(),
    title: str = "",
    target: Registry | None = None,
) -> Callable[[Handler], Handler]:
    """Declare ``fn`` as a capability served at ``route`` (``"GET /monitoring/metrics"``).

    The function's first parameter receives the :class:`Call`; the others are the capability's inputs, each
    ``Annotated[type, Field(description=…, bounds…)]`` with a default where optional. The return annotation is
    the output model. The docstring's first paragraph is the summary agents read; the rest is the description.
    ``resource`` (a ``prism://`` URI) makes the MCP face a resource instead of a tool; resources take no inputs.
    """
    match = _ROUTE.match(route)
    if match is None:
        raise ValueError(f"route {route!r} must look like 'GET /path'")
    method, path = match.group(1), match.group(2)

    def declare(fn: Handler) -> Handler:
        cap = _build(
            fn,
            method,
            path,
            scope,
            name,
            resource,
            read_only,
            destructive,
            idempotent,
            long_running,
            secret_params,
            title,
        )
        (registry if target is None else target).add(cap)
        return fn

    return declare


def _build(
    fn: Handler,
    method: str,
    path: str,
    scope: Scope,
    name: str | None,
    resource: str | None,
    read_only: bool,
    destructive: bool,
    idempotent: bool | None,
    long_running: bool,
    secret_params: frozenset[str],
    title: str,
) -> Capability:
    cap_name = name or fn.__name__
    if not _NAME.match(cap_name):
        raise ValueError(f"capability name {cap_name!r} must be snake_case, 3 to 64 characters")
    if not inspect.iscoroutinefunction(fn):
        raise TypeError(f"capability {cap_name!r} must be an async function")
    hints = get_type_hints(fn, include_extras=True)
    output = hints.get("return")
    if not (isinstance(output, type) and issubclass(output, BaseModel)):
        raise TypeError(f"capability {cap_name!r} must return a pydantic model, not {output!r}")
    params = tuple(inspect.signature(fn).parameters.values())[1:]
    for param in params:
        if param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            raise TypeError(f"capability {cap_name!r}: parameter {param.name!r} must be a plain keyword")
        params_hint = hints.get(param.name)
        if params_hint is None:
            raise TypeError(f"capability {cap_name!r}: parameter {param.name!r} needs a type annotation")
    params = tuple(p.replace(annotation=hints[p.name], kind=p.KEYWORD_ONLY) for p in params)
    names = {p.name for p in params}
    placeholders = set(_PLACEHOLDER.findall(path))
    if not placeholders <= names:
        raise ValueError(f"capability {cap_name!r}: path placeholders {sorted(placeholders - names)} are not inputs")
    if resource is not None:
        in_uri = set(_PLACEHOLDER.findall(resource))
        if method != "GET" or not read_only or in_uri != names or in_uri != placeholders:
            raise ValueError(
                f"resource capability {cap_name!r} must be a read-only GET whose only inputs are the "
                "placeholders of both its path and its URI"
            )
    if method == "GET" and not read_only:
        raise ValueError(f"capability {cap_name!r}: a GET route must be read-only")

    fields: dict[str, Any] = {
        p.name: (p.annotation, ... if p.default is inspect.Parameter.empty else p.default) for p in params
    }
    input_model = create_model(f"{_camel(cap_name)}Input", __config__=ConfigDict(extra="forbid"), **fields)
    summary, description = _split_doc(fn.__doc__ or "", cap_name)
    return Capability(
        name=cap_name,
        method=method,
        path=path,
        scope=scope,
        summary=summary,
        description=description,
        handler=fn,
        params=params,
        input_model=input_model,
        output_model=output,
        resource_uri=resource,
        read_only=read_only,
        destructive=destructive,
        idempotent=read_only if idempotent is None else idempotent,
        long_running=long_running,
        secret_params=secret_params,
        title=title or summary.rstrip("."),
    )


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _split_doc(doc: str, name: str) -> tuple[str, str]:
    text = inspect.cleandoc(doc)
    if not text:
        raise ValueError(f"capability {name!r} needs a docstring: agents read it as the contract")
    summary, _, rest = text.partition("\n\n")
    summary = " ".join(summary.split())
    description = " ".join(summary.split()) if not rest else summary + "\n\n" + rest.strip()
    return summary, description


def validate_arguments(cap: Capability, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``arguments`` against the declaration; the first problem becomes an error naming its field."""
    if not arguments and not cap.params:
        return {}
    try:
        model = cap.input_model.model_validate(dict(arguments))
    except ValidationError as exc:
        raise _input_error(cap, exc) from exc
    return {name: getattr(model, name) for name in cap.param_names}


def _input_error(cap: Capability, exc: ValidationError) -> InvalidInputError:
    error = exc.errors(include_url=False)[0]
    loc = ".".join(str(part) for part in error["loc"]) or "body"
    if error["type"] == "extra_forbidden":
        known = ", ".join(cap.param_names) or "none"
        return InvalidInputError(loc, f"unknown parameter; {cap.name} accepts: {known}")
    top = str(error["loc"][0]) if error["loc"] else ""
    if error["type"] == "missing":
        return InvalidInputError(loc, "this parameter is required")
    if top in cap.secret_params:
        return InvalidInputError(loc, error["msg"])
    # str(), not repr(): the query string delivers every value as text, and the message must read the same
    # whether the value came from a query string, a JSON body or an MCP call.
    shown = str(error.get("input")) or "''"
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return InvalidInputError(loc, f"{error['msg']} (got {shown})")


async def invoke(
    runtime: Runtime,
    cap: Capability,
    principal: Principal,
    arguments: Mapping[str, Any],
    *,
    surface: Surface,
    request_id: str | None = None,
    progress: ProgressFn | None = None,
) -> BaseModel:
    """Run one capability for one caller: scope, validation, handler, audit, observers.

    Raises the :class:`PrismError` the caller should see. A lost Redis connection anywhere inside becomes
    :class:`RedisUnavailableError`; any other unexpected exception is logged with its traceback and reported as
    a bare internal error, so no traceback reaches a response.
    """
    from prism_mcp.errors import ForbiddenError

    call = Call(runtime, principal, surface, request_id or uuid.uuid4().hex[:16], cap, progress)
    token = current_call.set(call)
    started = time.perf_counter()
    outcome, status = "ok", 200
    runtime.in_flight += 1
    try:
        if not principal.allows(cap.scope):
            raise ForbiddenError(
                f"{cap.name} needs the {cap.scope.value} scope; this key has {principal.scope.value}",
                needed=cap.scope.value,
            )
        values = validate_arguments(cap, arguments)
        result = await cap.handler(call, **values)
    except PrismError as exc:
        outcome, status = exc.code, exc.status
        raise
    except CONNECTION_ERRORS as exc:
        outcome, status = RedisUnavailableError.code, RedisUnavailableError.status
        raise RedisUnavailableError() from exc
    except Exception as exc:
        outcome, status = PrismError.code, PrismError.status
        logger.exception("capability_crashed", extra={"capability": cap.name, "request_id": call.request_id})
        raise PrismError() from exc
    finally:
        runtime.in_flight -= 1
        seconds = time.perf_counter() - started
        for observer in runtime.observers:
            observer(cap, call, outcome, status, seconds)
        current_call.reset(token)
    if cap.mutates:
        await runtime.audit(cap, call, arguments, outcome)
    return result
