"""The delivery channels: a Slack incoming webhook over httpx and email over SMTP with aiosmtplib.

A channel makes one attempt per :meth:`Channel.send` and raises :class:`DeliveryError` saying whether another
try could help (``permanent``) and how long the receiver asked us to wait (``retry_after``); the retry loop lives
in the notifier. Reasons are written for the history and never contain the webhook URL or a password.
"""

from __future__ import annotations

import asyncio
import re
import socket
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from typing import Protocol

import aiosmtplib
import httpx

from prism_mcp.config import Settings
from prism_mcp.notify.messages import Notice
from prism_mcp.notify.settings import NotificationSettings
from prism_mcp.notify.urls import WebhookTarget, WebhookUrlError, check_resolved, check_webhook_url

__all__ = ["Channel", "DeliveryError", "EmailChannel", "SlackChannel", "parse_retry_after"]

_SLACK_ERROR = re.compile(r"^[a-z_]{1,64}$")
DNS_TIMEOUT = 3.0


class DeliveryError(Exception):
    """One attempt failed: ``reason`` for the history, ``permanent`` if retrying cannot help."""

    def __init__(self, reason: str, *, permanent: bool = False, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.retry_after = retry_after


class Channel(Protocol):
    name: str

    async def send(self, notice: Notice, settings: NotificationSettings) -> None: ...


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date); ``None`` if unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class SlackChannel:
    """Posts to the configured incoming webhook; redirects are never followed."""

    name = "slack"

    def __init__(self, settings: Settings, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.client = client

    async def send(self, notice: Notice, settings: NotificationSettings) -> None:
        url = settings.slack_webhook_url or ""
        target = await self._target(url)
        try:
            response = await self.client.post(target.url, json=notice.slack())
        except httpx.TimeoutException as exc:
            raise DeliveryError(f"webhook timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise DeliveryError(f"webhook connection failed ({type(exc).__name__})") from exc
        self._check_status(response)

    async def _target(self, url: str) -> WebhookTarget:
        # Checked again at send time: the allow-list is this process's, and DNS may have changed since the PUT.
        try:
            target = check_webhook_url(url, self.settings.webhook_allowed_hosts)
            if not target.listed:
                check_resolved(target, await _resolve(target))
        except WebhookUrlError as exc:
            raise DeliveryError(f"webhook URL refused: {exc}", permanent=True) from exc
        return target

    @staticmethod
    def _check_status(response: httpx.Response) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        if 300 <= status < 400:
            raise DeliveryError(f"HTTP {status}: the webhook redirects, and redirects are not followed", permanent=True)
        if status == 429:
            wait = parse_retry_after(response.headers.get("retry-after"))
            raise DeliveryError("HTTP 429: the webhook is rate limiting", retry_after=wait)
        if status >= 500:
            raise DeliveryError(f"HTTP {status} from the webhook")
        code = response.text.strip()[:64]
        detail = f" ({code})" if _SLACK_ERROR.match(code) else ""
        raise DeliveryError(f"HTTP {status} from the webhook{detail}", permanent=True)


async def _resolve(target: WebhookTarget) -> list[str]:
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM), DNS_TIMEOUT)
    except (TimeoutError, socket.gaierror):
        # Unresolvable here means httpx cannot connect either; the send fails as a connection error.
        return []
    return [str(info[4][0]) for info in infos]


def _one_line(text: str, limit: int = 200) -> str:
    return " ".join(text.split())[:limit]


_SMTP_CONNECTION_ERRORS = (
    aiosmtplib.SMTPConnectError,
    aiosmtplib.SMTPTimeoutError,
    aiosmtplib.SMTPServerDisconnected,
    OSError,
)


class EmailChannel:
    """Sends one message with a plain-text and an HTML part to every recipient, through ``SMTP_HOST``."""

    name = "email"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def build(self, notice: Notice, recipients: list[str]) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = _one_line(notice.title)
        message["From"] = self.settings.smtp_from
        message["To"] = ", ".join(recipients)
        message.set_content(notice.text)
        message.add_alternative(notice.html, subtype="html")
        return message

    async def send(self, notice: Notice, settings: NotificationSettings) -> None:
        cfg = self.settings
        if not cfg.smtp_host:
            raise DeliveryError("SMTP_HOST is not set in the notifier's environment", permanent=True)
        message = self.build(notice, settings.email_recipients)
        try:
            await aiosmtplib.send(
                message,
                hostname=cfg.smtp_host,
                port=cfg.smtp_port,
                username=cfg.smtp_username,
                password=cfg.smtp_password.get_secret_value() if cfg.smtp_password else None,
                start_tls=cfg.smtp_starttls,
                timeout=cfg.notify_timeout_seconds,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"SMTP refused every recipient ({len(exc.recipients)})", permanent=True) from exc
        except aiosmtplib.SMTPResponseException as exc:
            permanent = 500 <= exc.code < 600
            raise DeliveryError(f"SMTP {exc.code}: {_one_line(exc.message, 120)}", permanent=permanent) from exc
        except _SMTP_CONNECTION_ERRORS as exc:
            raise DeliveryError(f"SMTP connection failed ({type(exc).__name__})") from exc
        except aiosmtplib.SMTPException as exc:
            raise DeliveryError(f"SMTP failed ({type(exc).__name__}: {_one_line(str(exc), 120)})") from exc
