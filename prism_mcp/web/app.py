"""The PRISM-WEB app: sign-in, pages, actions and the live stream, all through the REST API.

Every request first passes the same pre-auth guards as the API and MCP ports (the block list), then gets the
dashboard's security headers. Pages need a session; actions need a session and its CSRF token, and the API
decides whether the session's key may take them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from prism_mcp.bootstrap import ensure_web_secret
from prism_mcp.capability import Scope as KeyScope
from prism_mcp.errors import PrismError
from prism_mcp.http_bridge.app import request_info
from prism_mcp.http_bridge.gate import screen
from prism_mcp.runtime import Runtime
from prism_mcp.web.api import Answer, ApiClient
from prism_mcp.web.catalog import ACTIONS, LIVE_SECTIONS, PAGES, Action, Page
from prism_mcp.web.forms import action_arguments
from prism_mcp.web.sessions import CookieSigner, Session, SessionStore
from prism_mcp.web.views import AnswerCache, environment, fetch_sections

__all__ = ["build_web_app"]

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
SESSION_COOKIE = "prism_session"
LOGIN_COOKIE = "prism_login"
FLASH_SECONDS = 60

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]


class _Guarded:
    """Outermost layer: the block list first, the security headers on every answer."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        try:
            await screen(self.runtime, request_info(self.runtime, Request(scope), port="web"))
        except PrismError as exc:
            page = f"<!doctype html><title>PRISM</title><h1>{exc.status}</h1><p>{exc.message}</p>"
            await HTMLResponse(page, status_code=exc.status)(scope, receive, with_headers)
            return
        await self.app(scope, receive, with_headers)


class WebApp:
    """The dashboard's state and endpoints; one per process."""

    def __init__(self, runtime: Runtime) -> None:
        settings = ensure_web_secret(runtime.settings)
        assert settings.web_secret is not None
        self.runtime = runtime
        self.api = ApiClient(settings.api_url)
        self.signer = CookieSigner(settings.web_secret.get_secret_value())
        self.sessions = SessionStore(runtime.store, settings.web_session_ttl)
        self.refresh = settings.web_refresh_seconds
        self.live = AnswerCache(self.api, LIVE_SECTIONS, max_age=self.refresh * 0.8)
        self.env: Environment = environment()
        self.secure_cookies = settings.api_url.startswith("https:")

    # -- helpers ---------------------------------------------------------------------------------------------

    def render(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(self.env.get_template(name).render(**context), status_code=status)

    def _cookie(self, response: Response, name: str, value: str, max_age: int | None) -> None:
        response.set_cookie(
            name, value, max_age=max_age, httponly=True, samesite="strict", secure=self.secure_cookies, path="/"
        )

    async def session_of(self, request: Request) -> Session | None:
        session_id = self.signer.unsign(request.cookies.get(SESSION_COOKIE))
        return await self.sessions.get(session_id) if session_id else None

    def _flash_key(self, session: Session) -> str:
        return self.runtime.store.key("web", "flash", session.id)

    async def flash(self, session: Session, kind: str, text: str, data: Any = None) -> None:
        record = json.dumps({"kind": kind, "text": text, "data": data}, default=str)
        await self.runtime.store.redis.set(self._flash_key(session), record, ex=FLASH_SECONDS)

    async def take_flash(self, session: Session) -> dict[str, Any] | None:
        raw = await self.runtime.store.redis.getdel(self._flash_key(session))
        return json.loads(raw) if raw else None

    # -- sign-in ---------------------------------------------------------------------------------------------

    def _login_page(self, request: Request, error: str = "", status: int = 200) -> Response:
        token = secrets.token_urlsafe(24)
        response = self.render("login.html", status, error=error, csrf=token, next=_safe_next(request))
        self._cookie(response, LOGIN_COOKIE, self.signer.sign(token), max_age=3600)
        return response

    async def login_form(self, request: Request) -> Response:
        if await self.session_of(request) is not None:
            return RedirectResponse("/", status_code=303)
        return self._login_page(request)

    async def login(self, request: Request) -> Response:
        form = await request.form()
        expected = self.signer.unsign(request.cookies.get(LOGIN_COOKIE))
        if not expected or not _same(str(form.get("csrf", "")), expected) or not _same_origin(request):
            return self._login_page(request, "The sign-in form expired; please try again.", 403)
        key = str(form.get("api_key", "")).strip()
        answer = await self.api.call("GET", "/auth/whoami", key) if key else Answer(401, message="Invalid API key")
        if not answer.ok:
            return self._login_page(request, answer.message or "Invalid API key", answer.status)
        data = answer.data
        session = await self.sessions.create(key, data["principal"], KeyScope(data["scope"]), data["fingerprint"])
        logger.info("web_signed_in", extra={"principal": session.principal, "scope": session.scope.value})
        response = RedirectResponse(_safe_next(request, str(form.get("next", ""))), status_code=303)
        self._cookie(response, SESSION_COOKIE, self.signer.sign(session.id), max_age=None)
        response.delete_cookie(LOGIN_COOKIE, path="/")
        return response

    async def logout(self, request: Request) -> Response:
        session = await self.session_of(request)
        form = await request.form()
        if session is None or not _same(str(form.get("csrf", "")), session.csrf):
            return self.render("error.html", 403, title="Refused", message="Missing or wrong CSRF token.")
        await self.sessions.delete(session.id)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # -- pages -----------------------------------------------------------------------------------------------

    async def page(self, request: Request) -> Response:
        slug = request.path_params.get("page", "overview")
        page = PAGES.get(slug)
        if page is None:
            return self.render("error.html", 404, title="Not found", message=f"No page {slug!r}.", pages=PAGES)
        session = await self.session_of(request)
        if session is None:
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        return await self._render_page(request, session, page)

    async def _render_page(
        self, request: Request, session: Session, page: Page, status: int = 200, flash: Any = None
    ) -> Response:
        query = dict(request.query_params)
        views = await fetch_sections(self.api, session, page.sections, query)
        flash = flash or await self.take_flash(session)
        return self.render(
            "page.html", status, page=page, pages=PAGES, views=views, session=session, query=query, flash=flash
        )

    # -- actions ---------------------------------------------------------------------------------------------

    async def action(self, request: Request) -> Response:
        action = ACTIONS.get(request.path_params["name"])
        session = await self.session_of(request)
        form = await request.form()
        if session is None or not _same(str(form.get("csrf", "")), session.csrf) or not _same_origin(request):
            return self.render("error.html", 403, title="Refused", message="Missing or wrong CSRF token.")
        if action is None:
            return self.render("error.html", 404, title="Not found", message="No such action.", pages=PAGES)
        arguments = action_arguments(action, form)
        if action.confirm and form.get("confirmed") != "yes":
            return await self._confirm(session, action, arguments, form)
        answer = await self.api.call(action.method, action.path, session.key, body=arguments)
        return await self._after(request, session, action, answer)

    async def _confirm(self, session: Session, action: Action, arguments: dict[str, Any], form: FormData) -> Response:
        preview = None
        if action.dry_run:
            preview = await self.api.call(action.method, action.path, session.key, body={**arguments, "dry_run": True})
        fields = [(k, v) for k, v in form.multi_items() if k not in {"csrf", "confirmed"} and isinstance(v, str)]
        context: dict[str, Any] = {"action": action, "fields": fields, "preview": preview, "session": session}
        return self.render("confirm.html", **context, pages=PAGES, page=None, views=None)

    async def _after(self, request: Request, session: Session, action: Action, answer: Answer) -> Response:
        extra = {"action": action.name, "status": answer.status, "principal": session.principal}
        logger.info("web_action", extra=extra)
        if answer.ok:
            await self.flash(session, "ok", f"{action.label}: done.", answer.data)
            return RedirectResponse(_page_url(action.page), status_code=303)
        flash = {"kind": "error", "text": f"{action.label}: {answer.message or answer.code}", "data": None}
        page = PAGES[action.page]
        return await self._render_page(request, session, page, status=answer.status, flash=flash)

    # -- live ------------------------------------------------------------------------------------------------

    async def events(self, request: Request) -> Response:
        session = await self.session_of(request)
        if session is None:
            return JSONResponse({"error": "signed out"}, status_code=401)
        return EventSourceResponse(self._stream(request, session), ping=15, send_timeout=10)

    async def _stream(self, request: Request, session: Session) -> AsyncIterator[dict[str, str]]:
        fragment = self.env.get_template("_live.html")
        while True:
            if await self.sessions.get(session.id) is None:
                yield {"event": "signed-out", "data": "{}"}
                return
            views = await self.live.get(session)
            payload = {sid: fragment.render(view=view, views=views, session=session) for sid, view in views.items()}
            payload["status-pill"] = fragment.render(pill=True, views=views, session=session)
            yield {"event": "sections", "data": json.dumps(payload)}
            # sse-starlette cancels this generator when the client goes away.
            await asyncio.sleep(self.refresh)

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"success": True, "data": {"status": "ok", "service": "web"}})


def _same(given: str, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())


def _same_origin(request: Request) -> bool:
    """A browser's ``Origin`` on a POST must be this host (absent, as with some clients, is allowed)."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


def _page_url(slug: str) -> str:
    return "/" if slug == "overview" else f"/{slug}"


def _safe_next(request: Request, given: str = "") -> str:
    """Only a local path of a known page: never an absolute URL (no open redirect)."""
    target = given or request.query_params.get("next", "/")
    slug = target.lstrip("/").split("?", 1)[0] or "overview"
    return _page_url(slug) if slug in PAGES and target.startswith("/") and not target.startswith("//") else "/"


def build_web_app(runtime: Runtime) -> ASGIApp:
    """The PRISM-WEB app for ``runtime``; it reaches PRISM through ``PRISM_API_URL`` with each session's key."""
    web = WebApp(runtime)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await web.api.close()

    routes = [
        Route("/healthz", web.healthz, methods=["GET"]),
        Route("/login", web.login_form, methods=["GET"]),
        Route("/login", web.login, methods=["POST"]),
        Route("/logout", web.logout, methods=["POST"]),
        Route("/events", web.events, methods=["GET"]),
        Route("/actions/{name}", web.action, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
        Route("/", web.page, methods=["GET"]),
        Route("/{page}", web.page, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    return _Guarded(app, runtime)
