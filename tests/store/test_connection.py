"""Redis beyond one machine: a master found through Redis Sentinel, and TLS (``rediss://``)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from prism_mcp.bootstrap import store_for
from prism_mcp.config import ConfigError, load_settings
from prism_mcp.errors import RedisUnavailableError
from prism_mcp.store import Store
from tests.conftest import free_port

REDIS = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(REDIS is None, reason="needs Debian's redis-server binary")


def _server(*args: str) -> subprocess.Popen[bytes]:
    assert REDIS is not None
    return subprocess.Popen([REDIS, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _until(check: object, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("the condition did not hold in time")


def _answers(*cli: str) -> bool:
    result = subprocess.run(["redis-cli", *cli], capture_output=True, text=True, timeout=5, check=False)
    return result.returncode == 0 and result.stdout.strip() not in ("", "(nil)")


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[tuple[int, int]]:
    master_port, sentinel_port = free_port(), free_port()
    master = _server("--port", str(master_port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path))
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {sentinel_port}\nbind 127.0.0.1\ndir {tmp_path}\nsentinel monitor prism-test 127.0.0.1 {master_port} 1\n"
    )
    watcher = _server(str(conf), "--sentinel")
    try:
        _until(lambda: _answers("-p", str(sentinel_port), "sentinel", "get-master-addr-by-name", "prism-test"))
        yield master_port, sentinel_port
    finally:
        for process in (watcher, master):
            process.terminate()
            process.wait(timeout=10)


async def test_the_store_finds_its_master_through_sentinel(sentinel: tuple[int, int], tmp_path: Path) -> None:
    master_port, sentinel_port = sentinel
    settings = load_settings(
        REDIS_SENTINELS=f"127.0.0.1:{sentinel_port}",
        REDIS_SENTINEL_MASTER="prism-test",
        PRISM_DATA_DIR=str(tmp_path / "data"),
    )
    store = store_for(settings, "redis://")
    try:
        await store.redis.set(store.key("probe"), "via-sentinel")
        worker_client = store.client(decode_responses=False)
        raw = await worker_client.get(store.key("probe"))
        await worker_client.aclose()
    finally:
        await store.close()
    direct = subprocess.run(
        ["redis-cli", "-p", str(master_port), "get", "prism:probe"], capture_output=True, text=True, check=True
    )
    assert raw == b"via-sentinel"
    assert direct.stdout.strip() == "via-sentinel"
    assert store.location == f"sentinel://127.0.0.1:{sentinel_port}/prism-test"


def test_sentinel_settings_are_checked_at_start_up() -> None:
    with pytest.raises(ConfigError, match=r"^REDIS_SENTINELS is set: REDIS_SENTINEL_MASTER must name"):
        load_settings(REDIS_SENTINELS="127.0.0.1:26379")
    with pytest.raises(ConfigError, match=r"^REDIS_SENTINELS: .*expected host:port"):
        load_settings(REDIS_SENTINELS="127.0.0.1", REDIS_SENTINEL_MASTER="m")


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    port = free_port()
    server = _server(
        "--port",
        "0",
        "--tls-port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--tls-cert-file",
        str(cert),
        "--tls-key-file",
        str(key),
        "--tls-ca-cert-file",
        str(cert),
        "--tls-auth-clients",
        "no",
    )
    try:
        _until(lambda: _answers("--tls", "--cacert", str(cert), "-p", str(port), "ping"))
        yield port, cert
    finally:
        server.terminate()
        server.wait(timeout=10)


async def test_rediss_urls_speak_tls_and_a_plain_client_is_refused(tls_server: tuple[int, Path]) -> None:
    port, cert = tls_server
    secure = Store(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={cert}", timeout=2.0)
    plain = Store(f"redis://127.0.0.1:{port}/0", timeout=1.0)
    try:
        latency = await secure.ping()
        with pytest.raises(RedisUnavailableError):
            await asyncio.wait_for(plain.ping(), 10)
    finally:
        await secure.close()
        await plain.close()
    assert latency > 0
