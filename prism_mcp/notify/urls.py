"""Which webhook URLs PRISM may post to, and how a URL is shown without its secret.

A Slack webhook URL is a bearer secret and a request PRISM makes on an operator's behalf, so it is the classic
server-side request forgery door. The rule is an allow-list, not a deny-list:

* ``https://hooks.slack.com/services/…`` (also ``/workflows/`` and ``/triggers/``) on port 443, or
* any ``http`` or ``https`` URL whose exact ``host:port`` is listed in ``PRISM_WEBHOOK_ALLOWED_HOSTS`` (for local
  receivers and relays the operator vouches for).

Everything else is refused, and the reason names what the host is (a loopback, private or link-local address, a
numeric form of one, a name that is not Slack's). No name is resolved here: an unlisted name other than
``hooks.slack.com`` is refused without a lookup. The notifier checks again just before each send and resolves
``hooks.slack.com`` then, refusing it if it points at a non-public address (:func:`check_resolved`).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

__all__ = ["WebhookTarget", "WebhookUrlError", "check_resolved", "check_webhook_url", "mask_webhook_url"]

SLACK_HOST = "hooks.slack.com"
SLACK_PATHS = ("/services/", "/workflows/", "/triggers/")
MAX_URL_LENGTH = 2048
_DEFAULT_PORTS = {"http": 80, "https": 443}


class WebhookUrlError(ValueError):
    """The URL is refused; the message says why without repeating the URL's secret path."""


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """A URL that passed the rules: where it points, and whether it was admitted by the allow-list."""

    url: str
    scheme: str
    host: str
    port: int
    listed: bool


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def normalise_allowed(entries: Iterable[str]) -> frozenset[str]:
    """``PRISM_WEBHOOK_ALLOWED_HOSTS`` entries as ``host:port`` in lower case, without a trailing dot."""
    out = set()
    for entry in entries:
        text = entry.strip().lower()
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit():
            continue
        out.add(_host_port(host.strip("[]").rstrip("."), int(port)))
    return frozenset(out)


def _numeric_ipv4(host: str) -> ipaddress.IPv4Address | None:
    # The C resolver reads "2130706433", "127.1", "0x7f.1" and "0177.0.0.1" as 127.0.0.1; so would a client
    # that hands the host to it. Only digits, dots and hex marks can form such a literal.
    if not host or any(c not in "0123456789abcdefx." for c in host) or not host[0].isdigit():
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host names literally, in any form a resolver would accept; ``None`` for a name."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return _numeric_ipv4(host)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def address_kind(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why an address is not a public destination (``loopback``, ``private`` …), or ``None`` if it is one."""
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_unspecified:
        return "unspecified"
    if address.is_multicast:
        return "multicast"
    if address.is_private or address.is_reserved or not address.is_global:
        return "private"
    return None


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _describe(host: str) -> str:
    address = literal_address(host)
    if address is not None:
        kind = address_kind(address)
        shown = f"{host!r} (= {address})" if str(address) != host else repr(host)
        return f"{shown}, {_a(kind)} address" if kind else f"{shown}, an address that is not listed"
    if host == "localhost" or host.endswith(".localhost"):
        return f"{host!r}, a loopback name"
    return f"{host!r}, a name that is not {SLACK_HOST}"


def _split(url: str) -> tuple[str, str, int, str]:
    if len(url) > MAX_URL_LENGTH:
        raise WebhookUrlError(f"expected at most {MAX_URL_LENGTH} characters, got {len(url)}")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url) or "\\" in url:
        raise WebhookUrlError("expected a URL without spaces, control characters or backslashes")
    if "@" in url:
        raise WebhookUrlError("expected a URL without '@': user info in a webhook URL is refused")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise WebhookUrlError(f"expected an https:// URL, got scheme {parts.scheme!r}")
    if parts.fragment:
        raise WebhookUrlError("expected a URL without a '#' fragment")
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError as exc:
        raise WebhookUrlError("expected a numeric port between 1 and 65535") from exc
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise WebhookUrlError("expected a URL with a host")
    return scheme, host, port, parts.path


def _same_as_httpx(url: str, scheme: str, host: str, port: int) -> None:
    # The URL is checked with one parser and sent with another; refuse any URL the two read differently.
    try:
        seen = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise WebhookUrlError("expected a URL httpx can parse") from exc
    seen_port = seen.port or _DEFAULT_PORTS.get(seen.scheme, 0)
    if (seen.scheme, seen.host.rstrip("."), seen_port) != (scheme, host, port):
        raise WebhookUrlError("the URL reads differently to different parsers; write it plainly")


def check_webhook_url(url: str, allowed_hosts: Sequence[str]) -> WebhookTarget:
    """The target of ``url`` if the rules above admit it; :class:`WebhookUrlError` saying why not."""
    scheme, host, port, path = _split(url)
    if _host_port(host, port) in normalise_allowed(allowed_hosts):
        _same_as_httpx(url, scheme, host, port)
        return WebhookTarget(url, scheme, host, port, listed=True)
    if host != SLACK_HOST:
        raise WebhookUrlError(
            f"refused host {_describe(host)}: expected https://{SLACK_HOST}/services/..., or a host:port "
            "listed in PRISM_WEBHOOK_ALLOWED_HOSTS"
        )
    if scheme != "https" or port != 443:
        raise WebhookUrlError(f"expected https on port 443 for {SLACK_HOST}, got {scheme} on port {port}")
    if not path.startswith(SLACK_PATHS):
        raise WebhookUrlError(f"expected a path starting with {', '.join(SLACK_PATHS)} on {SLACK_HOST}")
    _same_as_httpx(url, scheme, host, port)
    return WebhookTarget(url, scheme, host, port, listed=False)


def check_resolved(target: WebhookTarget, addresses: Iterable[str]) -> None:
    """Refuse an unlisted target whose name resolved to a non-public address (DNS pointing inwards)."""
    if target.listed:
        return
    for text in addresses:
        address = literal_address(text)
        kind = address_kind(address) if address is not None else "unreadable"
        if kind is not None:
            raise WebhookUrlError(f"{target.host} resolved to {text}, {_a(kind)} address; refused")


def mask_webhook_url(url: str | None) -> str | None:
    """The URL with its secret part hidden: ``https://hooks.slack.com/services/T000/B000/****``."""
    if not url:
        return None
    parts = urlsplit(url)
    host = parts.hostname or "?"
    netloc = host + (f":{parts.port}" if _safe_port(parts) else "")
    segments = parts.path.split("/")
    keep = 3 if parts.path.startswith(SLACK_PATHS) else 0
    shown = "/".join(segments[: keep + 1]) if len(segments) > keep + 1 else ""
    return f"{parts.scheme}://{netloc}{shown}/****"


def _safe_port(parts: object) -> int | None:
    try:
        return getattr(parts, "port", None)
    except ValueError:
        return None
