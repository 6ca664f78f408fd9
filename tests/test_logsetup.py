"""The logging pipeline as an operator reads it: JSON lines on a process's stdout, level names greppable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from prism_mcp.config import Settings
from tests.conftest import ADMIN_KEY, free_port

PIPELINE = """
import logging, structlog
from prism_mcp.logsetup import configure_logging, service_context
configure_logging("worker", "INFO")
logging.getLogger("prism_mcp.demo").error("backup_failed", extra={"target": "notion", "api_key": "sk-123"})
logging.getLogger("uvicorn.error").warning("server_warning")
structlog.get_logger("prism_mcp.other").info("job_finished", job="daily_report")
with service_context("notifier"):
    logging.getLogger("prism_mcp.notify").info("alert_sent")
logging.getLogger("prism_mcp.demo").debug("too_chatty")
"""


def lines_of(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_every_logger_prints_one_json_line_with_the_level_name_and_service() -> None:
    done = subprocess.run([sys.executable, "-c", PIPELINE], capture_output=True, text=True, timeout=60, check=True)
    lines = lines_of(done.stdout)

    assert [(line["level"], line["event"]) for line in lines] == [
        ("ERROR", "backup_failed"),
        ("WARNING", "server_warning"),
        ("INFO", "job_finished"),
        ("INFO", "alert_sent"),
    ]
    assert '"level": "ERROR"' in done.stdout
    assert [line["service"] for line in lines] == ["worker", "worker", "worker", "notifier"]
    assert lines[0]["target"] == "notion"
    assert lines[0]["api_key"] == "***"
    assert "sk-123" not in done.stdout
    assert lines[2]["job"] == "daily_report"
    assert list(lines[0])[:3] == ["ts", "level", "service"]
    assert done.stderr == ""


def _wait_healthy(url: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, "prism serve api exited early"
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("prism serve api did not answer /healthz within 30 s")


def test_prism_serve_api_writes_one_summary_line_per_request_to_stdout(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "API_KEY": ADMIN_KEY,
        "REDIS_URL": settings.redis_url or "",
        "PRISM_DATA_DIR": str(tmp_path / "serve"),
        "PRISM_KEY_PREFIX": settings.key_prefix,
        "PRISM_API_PORT": str(port),
    }
    command = [sys.executable, "-c", "from prism_mcp.cli import main; main()", "serve", "api"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, proc)
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        httpx.get(f"{url}/monitoring/logs/stats", headers={**headers, "X-Request-ID": "req-ok-1"}, timeout=10)
        httpx.get(f"{url}/monitoring/logs/stats?hours=0", headers={**headers, "X-Request-ID": "req-bad-1"}, timeout=10)
        httpx.get(f"{url}/monitoring/logs/stats", headers={"Authorization": "Bearer wrong-key"}, timeout=10)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    lines = lines_of(out)
    summaries = [line for line in lines if line["event"] == "request_finished"]

    assert [(s.get("request_id"), s["level"], s["status"]) for s in summaries] == [
        ("req-ok-1", "INFO", 200),
        ("req-bad-1", "WARNING", 422),
        (None, "WARNING", 401),
    ]
    assert all(s["service"] == "api" for s in summaries)
    assert [s.get("capability") for s in summaries] == ["logs_stats", "logs_stats", None]
    assert summaries[2]["path"] == "/monitoring/logs/stats"
    assert "wrong-key" not in out
    assert {"INFO"} <= {line["level"] for line in lines}
    assert ADMIN_KEY not in out
