"""The dashboard in headless Chromium against a real ``prism up`` on loopback.

Steps on pages whose area this build lacks skip and name the route they wait for; after the areas are merged
the same tests exercise them (``Prism.need``). Every page is photographed to ``tests/artifacts/web/``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import pytest

from prism_mcp import alerts
from prism_mcp.store import Store
from tests.conftest import ADMIN_KEY, READ_KEY
from tests.web.conftest import WEBHOOK_HOST, Prism, screenshot_path

pytestmark = pytest.mark.slow

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
PAGES = ("overview", "logs", "performance", "security", "notifications", "jobs", "audit")
WAIT_MS = 15_000
F = TypeVar("F", bound=Callable[..., Any])


def url_of(prism: Prism, slug: str) -> str:
    return f"{prism.web}/" if slug == "overview" else f"{prism.web}/{slug}"


async def open_signed_in(browser: Any, prism: Prism, key: str, viewport: dict[str, int] = DESKTOP) -> Any:
    context = await browser.new_context(viewport=viewport)
    context.set_default_timeout(WAIT_MS)
    page = await context.new_page()
    await page.goto(f"{prism.web}/")
    await page.fill("#api_key", key)
    await page.click("button[type=submit]")
    await page.wait_for_selector("#overall-status")
    return page


def needs(*paths: str) -> Callable[[F], F]:
    """Mark a test as needing these API routes: it skips, before opening a browser, where they are absent."""

    def mark(fn: F) -> F:
        fn.needs = paths  # type: ignore[attr-defined]
        return fn

    return mark


@pytest.fixture
async def admin(browser: Any, prism: Prism, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    prism.need(*getattr(request.function, "needs", ()))
    page = await open_signed_in(browser, prism, ADMIN_KEY)
    yield page
    await page.context.close()


@pytest.fixture
async def reader(browser: Any, prism: Prism) -> AsyncIterator[Any]:
    page = await open_signed_in(browser, prism, READ_KEY)
    yield page
    await page.context.close()


async def live_updates(page: Any, count: int) -> None:
    """Wait (bounded) until the page has applied ``count`` pushes from the live stream.

    Polled from here: the page's content security policy forbids the eval that ``wait_for_function`` needs.
    """
    deadline = asyncio.get_running_loop().time() + WAIT_MS / 1000
    while int(await page.get_attribute("body", "data-live-count") or 0) < count:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"fewer than {count} live updates within {WAIT_MS} ms")
        await asyncio.sleep(0.1)


async def csrf_of(page: Any) -> str:
    return str(await page.get_attribute("form[action='/logout'] input[name=csrf]", "value"))


async def test_a_wrong_key_shows_invalid_api_key(browser: Any, prism: Prism) -> None:
    context = await browser.new_context(viewport=DESKTOP)
    page = await context.new_page()
    await page.goto(f"{prism.web}/login")
    await page.fill("#api_key", "wrong-key")
    await page.click("button[type=submit]")
    message = await page.text_content("#login-error")
    await page.screenshot(path=screenshot_path("login-wrong-key"))
    await context.close()
    assert message == "Invalid API key"


async def test_sign_in_shows_status_and_metrics_that_refresh_without_reloading(admin: Any) -> None:
    status = await admin.text_content("#overall-status")
    cpu = await admin.get_attribute("#gauge-cpu", "data-value")
    await live_updates(admin, 2)
    conn = await admin.text_content("#conn")
    navigations = await admin.evaluate("performance.getEntriesByType('navigation').length")
    assert status in {"healthy", "degraded", "unhealthy"}
    assert cpu is not None
    assert 0.0 <= float(cpu) <= 100.0
    assert await admin.locator("#gauge-memory svg.gauge").count() == 1
    assert conn == "live"
    assert navigations == 1  # the refreshes came over the stream, not from reloading the page


@needs("/monitoring/alerts", "/monitoring/alerts/resolve")
async def test_a_new_alert_appears_live_and_resolving_it_removes_it(admin: Any, prism: Prism) -> None:
    store = Store(prism.redis_url, prefix=prism.prefix)
    fingerprint = f"web-test:{uuid.uuid4().hex[:8]}"
    try:
        alert, _ = await alerts.fire(
            store,
            fingerprint=fingerprint,
            category="system",
            severity="warning",
            title="Dashboard test alert",
            message="raised by the browser test",
            source="tests.web",
        )
    finally:
        await store.close()
    row = admin.locator(f"[data-alert-id='{alert.id}']")
    await row.wait_for()
    await admin.screenshot(path=screenshot_path("overview-with-alert"), full_page=True)
    await row.get_by_role("button", name="Resolve").click()
    await admin.wait_for_selector("#flash")
    await row.wait_for(state="detached")
    assert await row.count() == 0


@needs("/monitoring/logs", "/monitoring/logs/stats")
async def test_logs_search_filters_by_text_and_level(admin: Any, prism: Prism) -> None:
    now = datetime.now(UTC).isoformat()
    records = [
        {"timestamp": now, "level": level, "service": "billing", "event": event, "message": f"{event} for web test"}
        for level, event in (("INFO", "invoice_sent"), ("ERROR", "payment_failed"), ("ERROR", "payment_failed"))
    ]
    async with httpx.AsyncClient(base_url=prism.api, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as api:
        assert (await api.post("/monitoring/logs", json={"records": records})).status_code == 200
    await admin.goto(f"{prism.web}/logs")
    form = admin.locator("#log-search form.filters")
    await form.locator("input[name=q]").fill("payment_failed")
    await form.locator("select[name=level]").select_option("ERROR")
    await form.get_by_role("button", name="Filter").click()
    await admin.wait_for_url("**/logs?*q=payment_failed*")
    found = await admin.text_content("#log-search .body")
    await admin.screenshot(path=screenshot_path("logs-search"), full_page=True)
    assert "payment_failed for web test" in (found or "")
    assert "invoice_sent" not in (found or "")
    assert await admin.locator("#log-stats svg.chart").count() >= 1


@needs("/monitoring/logs/cleanup")
async def test_cleanup_shows_a_dry_run_before_asking_to_confirm(admin: Any, prism: Prism) -> None:
    await admin.goto(f"{prism.web}/logs")
    await admin.locator("#form-logs_cleanup").get_by_role("button").click()
    await admin.wait_for_selector("#confirm-title")
    dry_run = await admin.locator("#dry-run").count()
    await admin.screenshot(path=screenshot_path("logs-cleanup-confirm"), full_page=True)
    await admin.get_by_role("link", name="Cancel").click()
    assert dry_run == 1


@needs("/security/ips", "/security/ips/action")
async def test_blocking_and_unblocking_an_address_changes_the_list(admin: Any, prism: Prism) -> None:
    address = "127.0.0.3"
    await admin.goto(f"{prism.web}/security")
    form = admin.locator("#form-security_ip_action")
    await form.locator("select[name=action]").select_option("block")
    await form.locator("input[name=ip_address]").fill(address)
    await form.locator("input[name=reason]").fill("browser test")
    await form.get_by_role("button", name="Apply").click()
    listed = admin.locator("#sec-ips .body")
    await admin.wait_for_selector("#flash")
    blocked = await listed.text_content()
    await admin.screenshot(path=screenshot_path("security-blocked"), full_page=True)
    await listed.get_by_role("button", name=f"Unblock {address}").click()
    await admin.wait_for_selector("#flash")
    after = await admin.locator("#sec-ips .body").text_content()
    assert address in (blocked or "")
    assert address not in (after or "")


@needs("/notifications/settings")
async def test_saved_notification_settings_show_the_webhook_masked(admin: Any, prism: Prism) -> None:
    secret = "B0WEBTEST/xYzSecretPart123"
    await admin.goto(f"{prism.web}/notifications")
    await admin.check("#f-slack_enabled")
    await admin.fill("#f-slack_webhook_url", f"http://{WEBHOOK_HOST}/services/T0WEBTEST/{secret}")
    await admin.get_by_role("button", name="Save settings").click()
    flash = await admin.locator("#flash").text_content()
    shown = await admin.text_content("#webhook-current")
    html = await admin.content()
    await admin.screenshot(path=screenshot_path("notifications-saved"), full_page=True)
    assert "done" in (flash or ""), flash
    assert await admin.is_checked("#f-slack_enabled")
    assert WEBHOOK_HOST in (shown or "")
    assert "xYzSecretPart123" not in html


@needs("/worker/jobs", "/worker/jobs/run")
async def test_running_a_job_now_reports_it_queued(admin: Any, prism: Prism) -> None:
    await admin.goto(f"{prism.web}/jobs")
    await admin.locator("#jobs .body").get_by_role("button", name="Run now").first.click()
    flash = admin.locator("#flash")
    await flash.wait_for()
    await admin.screenshot(path=screenshot_path("jobs-run"), full_page=True)
    assert "done" in (await flash.text_content() or "")


async def test_a_read_key_sees_no_action_buttons_and_its_posts_are_refused(reader: Any, prism: Prism) -> None:
    for slug in PAGES:
        await reader.goto(url_of(prism, slug))
        assert await reader.locator("form[action^='/actions/']").count() == 0, slug
    token = await csrf_of(reader)
    answer = await reader.request.post(f"{prism.web}/actions/backup_create", form={"csrf": token})
    expected = 403 if prism.has("/backups") else 404
    assert answer.status == expected


async def test_posts_without_the_csrf_token_are_refused(admin: Any, prism: Prism) -> None:
    for name in ("backup_create", "security_ip_action", "notifications_update_settings"):
        answer = await admin.request.post(f"{prism.web}/actions/{name}", form={"ip_address": "127.0.0.4"})
        assert answer.status == 403, name
    signed_out = await admin.request.post(f"{prism.web}/logout", form={})
    assert signed_out.status == 403


async def test_the_pages_are_keyboard_usable(admin: Any) -> None:
    await admin.keyboard.press("Tab")
    first = await admin.evaluate("document.activeElement.textContent")
    await admin.keyboard.press("Enter")
    focused = await admin.evaluate("document.activeElement.id")
    assert first == "Skip to content"
    assert focused == "main"


@pytest.mark.parametrize(("device", "viewport"), [("desktop", DESKTOP), ("phone", PHONE)])
async def test_every_page_renders_without_overflow_and_is_photographed(
    browser: Any, prism: Prism, device: str, viewport: dict[str, int]
) -> None:
    page = await open_signed_in(browser, prism, ADMIN_KEY, viewport)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    try:
        for slug in PAGES:
            await page.goto(url_of(prism, slug))
            await live_updates(page, 1)
            await page.screenshot(path=screenshot_path(f"{slug}-{device}"), full_page=True)
            overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, (slug, overflow)
    finally:
        await page.context.close()
    assert errors == []


async def test_a_blocked_address_gets_403_on_the_web_port_too(prism: Prism) -> None:
    prism.need("/security/ips/action")
    address = "127.0.0.5"
    admin_api = httpx.AsyncClient(base_url=prism.api, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10)
    from_blocked = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(local_address=address), timeout=10)
    body = {"action": "block", "ip_address": address, "reason": "web port test"}
    async with admin_api, from_blocked:
        assert (await admin_api.post("/security/ips/action", json=body)).status_code == 200
        try:
            status = await _status_within(from_blocked, f"{prism.web}/login", 403)
        finally:
            await admin_api.post("/security/ips/action", json={**body, "action": "unblock"})
        after = await _status_within(from_blocked, f"{prism.web}/login", 200)
    assert (status, after) == (403, 200)


async def _status_within(client: httpx.AsyncClient, url: str, wanted: int) -> int:
    """The first status equal to ``wanted`` within the wait, else the last one seen (block lists refresh)."""
    deadline = asyncio.get_running_loop().time() + WAIT_MS / 1000
    status = (await client.get(url)).status_code
    while status != wanted and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.2)
        status = (await client.get(url)).status_code
    return status
