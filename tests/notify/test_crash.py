"""At-least-once delivery: `prism notifier` killed between send and acknowledgement, again and again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
import pytest

from prism_mcp.alerts import fire
from prism_mcp.config import Settings
from prism_mcp.notify import ledger
from prism_mcp.runtime import Runtime
from tests.conftest import ADMIN_KEY
from tests.notify.receivers import Reply, WebhookReceiver, eventually, wait_until

ALERTS = 6
KILLS = 3


def _start_notifier(settings: Settings, slack: WebhookReceiver, data: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "REDIS_URL": str(settings.redis_url),
        "API_KEY": ADMIN_KEY,
        "PRISM_KEY_PREFIX": settings.key_prefix,
        "PRISM_DATA_DIR": str(data),
        "PRISM_WEBHOOK_ALLOWED_HOSTS": slack.host_port,
        "PRISM_NOTIFY_TIMEOUT_SECONDS": "1",
        "PRISM_NOTIFY_CLAIM_IDLE_SECONDS": "0.5",
        "PRISM_NOTIFY_BACKOFF_SECONDS": "0.05",
        "PRISM_LOG_LEVEL": "WARNING",
    }
    with log.open("ab") as err:
        return subprocess.Popen(
            [sys.executable, "-c", "from prism_mcp.cli import main; main()", "notifier"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def _stop(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    process.send_signal(sig)
    process.wait(timeout=15)


async def _all_delivered(runtime: Runtime) -> bool:
    entries = await ledger.read_history(runtime.store, limit=1000, status="delivered")
    return len({e.event_id for e in entries}) >= ALERTS


@pytest.mark.slow
async def test_a_notifier_killed_between_send_and_ack_loses_nothing_and_duplicates_are_bounded(
    api: httpx.AsyncClient, runtime: Runtime, settings: Settings, slack: WebhookReceiver, tmp_path: Path
) -> None:
    await api.put("/notifications/settings", json={"slack_enabled": True, "slack_webhook_url": slack.url()})
    # The receiver answers late, so a kill right after a request arrives lands before the acknowledgement.
    slack.default = Reply(200, delay=0.6)
    for n in range(ALERTS):
        await fire(
            runtime.store,
            fingerprint=f"crash:{n}",
            category="system",
            severity="critical",
            title=f"crash-{n}",
            message="m",
            source="test",
        )
    log = tmp_path / "notifier.log"

    for _ in range(KILLS):
        seen = len(slack.arrivals)
        process = _start_notifier(settings, slack, tmp_path / "data", log)
        try:
            await wait_until(lambda seen=seen: len(slack.arrivals) > seen, timeout=30, what="a delivery to start")
        finally:
            _stop(process, signal.SIGKILL)
    survivor = _start_notifier(settings, slack, tmp_path / "data", log)
    try:
        await eventually(lambda: _all_delivered(runtime), timeout=60, what="every alert delivered")
    finally:
        _stop(survivor, signal.SIGTERM)

    stats = await ledger.stats(runtime.store)
    per_alert = Counter(text.split("crash-")[1] for text in slack.texts())
    duplicates = sum(per_alert.values()) - ALERTS
    assert sorted(per_alert) == [str(n) for n in range(ALERTS)], log.read_text()
    assert 1 <= duplicates <= stats.get("duplicates", 0) <= KILLS
