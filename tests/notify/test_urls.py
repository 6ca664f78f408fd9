"""The webhook allow-list, URL masking, Retry-After parsing and mailbox checks, as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from prism_mcp.notify.channels import parse_retry_after
from prism_mcp.notify.settings import check_email
from prism_mcp.notify.urls import (
    WebhookTarget,
    WebhookUrlError,
    check_resolved,
    check_webhook_url,
    mask_webhook_url,
)

LISTED = "127.0.0.1:18080"
GUIDE_URL = "https://hooks.slack.com/services/YOUR/SLACK/WEBHOOK"

# Every way of pointing a webhook at this machine, its network or its cloud metadata that a reviewer could think
# of; "{port}" is the loopback canary's port in the REST test.
SSRF_URLS = [
    "http://127.0.0.1:{port}/services/T/B/x",
    "https://127.0.0.1:{port}/services/T/B/x",
    "http://localhost:{port}/",
    "http://LocalHost.:{port}/",
    "http://prism.localhost:{port}/",
    "http://2130706433:{port}/",
    "http://0x7f000001:{port}/",
    "http://0177.0.0.1:{port}/",
    "http://0x7f.1:{port}/",
    "http://127.1:{port}/",
    "http://0:{port}/",
    "http://0.0.0.0:{port}/",
    "http://[::1]:{port}/",
    "http://[0:0:0:0:0:0:0:1]:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/",
    "http://[::ffff:7f00:1]:{port}/",
    "https://hooks.slack.com@127.0.0.1:{port}/services/T/B/x",
    "https://hooks.slack.com:x@127.0.0.1:{port}/services/T/B/x",
    "https://user:pass@hooks.slack.com/services/T/B/x",
    "https://127.0.0.1:{port}#@hooks.slack.com/services/T/B/x",
    "https://127.0.0.1:{port}\\@hooks.slack.com/services/T/B/x",
    "https://hooks.slack.com.127.0.0.1.nip.io/services/T/B/x",
    "https://hooks.slack.com.evil.example/services/T/B/x",
    "https://hooks.slack.com:{port}/services/T/B/x",
    "http://hooks.slack.com/services/T/B/x",
    "https://hooks.slack.com/redirect?to=http://127.0.0.1:{port}/",
    "http://10.0.0.1/services/T/B/x",
    "http://172.16.0.1/",
    "http://192.168.1.100/",
    "http://100.64.0.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fe80::1]/",
    "http://[fd00::1]/",
    "http://[::]/",
    "gopher://127.0.0.1:{port}/_",
    "file:///etc/passwd",
    "http://127.0.0.1:{port} /",
    "http://127.0.0.1:99999/",
    "",
]


@pytest.mark.parametrize("template", SSRF_URLS)
def test_ssrf_urls_are_refused(template: str) -> None:
    url = template.format(port=18081)

    with pytest.raises(WebhookUrlError):
        check_webhook_url(url, [LISTED])


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://2130706433:9/", "loopback"),
        ("http://127.1:9/", "loopback"),
        ("http://[::ffff:127.0.0.1]:9/", "loopback"),
        ("http://169.254.169.254/", "link-local"),
        ("http://192.168.1.100/", "private"),
        ("http://localhost:9/", "loopback name"),
    ],
)
def test_the_refusal_says_what_the_host_really_is(url: str, kind: str) -> None:
    with pytest.raises(WebhookUrlError, match=kind):
        check_webhook_url(url, [LISTED])


def test_the_guide_url_and_a_listed_local_receiver_are_accepted() -> None:
    slack = check_webhook_url(GUIDE_URL, [])
    local = check_webhook_url(f"http://{LISTED}/hook", [LISTED])
    dotted = check_webhook_url("https://HOOKS.slack.com./services/T/B/X", [])

    assert (slack.host, slack.port, slack.listed) == ("hooks.slack.com", 443, False)
    assert (local.scheme, local.listed) == ("http", True)
    assert dotted.host == "hooks.slack.com"


def test_listing_is_by_exact_host_and_port() -> None:
    with pytest.raises(WebhookUrlError):
        check_webhook_url("http://127.0.0.1:18081/hook", [LISTED])
    with pytest.raises(WebhookUrlError):
        check_webhook_url("http://2130706433:18080/hook", [LISTED])


def test_slack_that_resolves_inwards_is_refused_at_send_time() -> None:
    target = WebhookTarget(GUIDE_URL, "https", "hooks.slack.com", 443, listed=False)

    check_resolved(target, ["52.1.2.3"])
    with pytest.raises(WebhookUrlError, match="loopback"):
        check_resolved(target, ["52.1.2.3", "127.0.0.1"])
    with pytest.raises(WebhookUrlError, match="private"):
        check_resolved(target, ["10.1.2.3"])


def test_masking_hides_the_secret_part() -> None:
    assert mask_webhook_url("https://hooks.slack.com/services/T000/B000/XXXXSECRET") == (
        "https://hooks.slack.com/services/T000/B000/****"
    )
    assert mask_webhook_url("http://127.0.0.1:9000/hook?token=s3cret") == "http://127.0.0.1:9000/****"
    assert mask_webhook_url(None) is None


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)

    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


@pytest.mark.parametrize(
    "address",
    ["admin", "admin@", "@example.com", "a@b", "a b@example.com", "a@example.com\r\nBcc: x@evil.test", "a@-x.com"],
)
def test_bad_mailbox_addresses_are_named(address: str) -> None:
    assert check_email(address) is not None


def test_plain_mailbox_addresses_pass() -> None:
    assert check_email("admin@example.com") is None
    assert check_email("ops.team+prism@mail.example.co.jp") is None
