"""Notification settings: where alerts and reports go, kept in Redis so every replica reads the same.

One JSON document under ``notifications:settings``. :func:`update_settings` changes only the fields it is given,
validates the merged result, and writes it with WATCH/MULTI so two concurrent PUTs never lose each other's
fields.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel
from redis.exceptions import WatchError

from prism_mcp.errors import ConflictError, InvalidInputError
from prism_mcp.notify.urls import WebhookUrlError, check_webhook_url
from prism_mcp.store.connection import Store

__all__ = [
    "SEVERITY_RANK",
    "NotificationSettings",
    "check_email",
    "load_settings",
    "settings_key",
    "update_settings",
]

Severity = Literal["warning", "critical"]
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
MAX_RECIPIENTS = 50
_RETRIES = 20

# Deliberately narrower than RFC 5321: a dot-atom local part and a dotted domain of letters, digits and
# hyphens. Anything that could smuggle a header (CR, LF, commas, angle brackets, quotes) fails it.
_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


class NotificationSettings(BaseModel):
    """The stored settings; the webhook URL here is the real one and never leaves the process unmasked."""

    slack_enabled: bool = False
    slack_webhook_url: str | None = None
    email_enabled: bool = False
    email_recipients: list[str] = []
    system_alerts: bool = True
    performance_alerts: bool = True
    security_alerts: bool = True
    daily_reports: bool = False
    repeat_interval_seconds: int = 3600
    min_severity: Severity = "warning"
    updated_at: datetime | None = None
    updated_by: str | None = None

    def wants_category(self, category: str) -> bool:
        return bool(getattr(self, f"{category}_alerts", False))

    def channel_enabled(self, channel: str) -> bool:
        if channel == "slack":
            return self.slack_enabled and bool(self.slack_webhook_url)
        return self.email_enabled and bool(self.email_recipients)

    def enabled_channels(self) -> list[str]:
        return [c for c in ("slack", "email") if self.channel_enabled(c)]


def settings_key(store: Store) -> str:
    return store.key("notifications", "settings")


def check_email(address: str) -> str | None:
    """Why ``address`` is not a plain mailbox address, or ``None`` when it is one."""
    if len(address) > 254:
        return "expected at most 254 characters"
    local, sep, domain = address.rpartition("@")
    if not sep or not local or not domain:
        return "expected name@domain"
    if len(local) > 64 or not _LOCAL.match(local):
        return "expected a plain local part before '@' (letters, digits, dots and !#$%&'*+/=?^_`{|}~-)"
    labels = domain.rstrip(".").split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        return "expected a dotted domain name after '@', such as example.com"
    return None


async def load_settings(store: Store) -> NotificationSettings:
    raw = await store.redis.get(settings_key(store))
    return NotificationSettings.model_validate_json(raw) if raw else NotificationSettings()


def _check_recipients(recipients: Sequence[str]) -> list[str]:
    if len(recipients) > MAX_RECIPIENTS:
        raise InvalidInputError("email_recipients", f"expected at most {MAX_RECIPIENTS} addresses")
    seen: list[str] = []
    for index, address in enumerate(recipients):
        address = address.strip()
        problem = check_email(address)
        if problem is not None:
            raise InvalidInputError(f"email_recipients.{index}", f"{problem} (got {address[:80]!r})")
        if address.lower() not in (s.lower() for s in seen):
            seen.append(address)
    return seen


def _checked_changes(changes: Mapping[str, Any], allowed_hosts: Sequence[str]) -> dict[str, Any]:
    checked = dict(changes)
    url = checked.get("slack_webhook_url")
    if url is not None:
        if url == "":
            checked["slack_webhook_url"] = None
        else:
            try:
                check_webhook_url(url, allowed_hosts)
            except WebhookUrlError as exc:
                raise InvalidInputError("slack_webhook_url", str(exc)) from exc
    if checked.get("email_recipients") is not None:
        checked["email_recipients"] = _check_recipients(checked["email_recipients"])
    return checked


def _check_merged(merged: NotificationSettings) -> None:
    if merged.slack_enabled and not merged.slack_webhook_url:
        raise InvalidInputError("slack_webhook_url", "needed when slack_enabled is true; give the webhook URL")
    if merged.email_enabled and not merged.email_recipients:
        raise InvalidInputError("email_recipients", "needed when email_enabled is true; give at least one address")


async def update_settings(
    store: Store, changes: Mapping[str, Any], *, allowed_hosts: Sequence[str], by: str, now: datetime
) -> tuple[NotificationSettings, list[str]]:
    """Apply the fields in ``changes`` (others stay); returns the new settings and the names that changed.

    Raises :class:`InvalidInputError` naming the first bad field; nothing is written then.
    """
    checked = _checked_changes(changes, allowed_hosts)
    key = settings_key(store)
    for _ in range(_RETRIES):
        async with store.redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(key)
                raw = await pipe.get(key)
                current = NotificationSettings.model_validate_json(raw) if raw else NotificationSettings()
                changed = [name for name, value in checked.items() if getattr(current, name) != value]
                merged = current.model_copy(update={**checked, "updated_at": now, "updated_by": by})
                _check_merged(merged)
                if not changed:
                    return current, []
                pipe.multi()
                pipe.set(key, merged.model_dump_json())
                await pipe.execute()
                return merged, changed
            except WatchError:
                continue
    raise ConflictError("notification settings kept changing while this update was applied; try again")
