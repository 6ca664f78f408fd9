"""Local stand-ins for Notion and an OpenAI-compatible server, speaking their HTTP APIs on loopback.

They answer the endpoints the official clients call (notion-client 3.1.0 with API version 2025-09-03, openai's
chat completions and model list) with the real bodies and status codes, and can be told to misbehave: a 429
with ``Retry-After``, a wrong key, an unknown capability in the model's answer, a model that stalls.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from prism_mcp.config import Settings
from prism_mcp.http_bridge import build_api_app
from prism_mcp.runtime import Runtime
from prism_mcp.serving import Listener, start_server
from prism_mcp.store import Store
from tests.conftest import HEADERS, free_port

NOTION_KEY = "secret_notion_test_key"
OPENAI_KEY = "sk-test-openai-key"
DATABASE_ID = "0123456789abcdef0123456789abcdef"
MODEL = "test-model"
STALL_LIMIT = 10.0


def _notion_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"object": "error", "status": status, "code": code, "message": message}
    return JSONResponse(body, status_code=status, headers=headers)


@dataclass
class FakeNotion:
    url: str = ""
    pages: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    rate_limit_next: int = 0
    data_source: str = "ds-" + uuid.uuid4().hex[:8]

    def app(self) -> Starlette:
        async def guarded(request: Request) -> JSONResponse:
            self.requests.append(f"{request.method} {request.url.path}")
            if request.headers.get("authorization") != f"Bearer {NOTION_KEY}":
                return _notion_error(401, "unauthorized", "API token is invalid.")
            if self.rate_limit_next > 0:
                self.rate_limit_next -= 1
                return _notion_error(429, "rate_limited", "You have been rate limited.", {"Retry-After": "1"})
            return await self.route(request)

        return Starlette(routes=[Route("/v1/{path:path}", guarded, methods=["GET", "POST", "PATCH"])])

    async def route(self, request: Request) -> JSONResponse:
        path, method = request.path_params["path"], request.method
        if (method, path) == ("GET", "users/me"):
            return JSONResponse({"object": "user", "id": "bot-1", "type": "bot", "name": "PRISM journal"})
        if method == "GET" and path == f"databases/{DATABASE_ID}":
            return JSONResponse({"object": "database", "id": DATABASE_ID, "data_sources": [{"id": self.data_source}]})
        if method == "POST" and path == f"data_sources/{self.data_source}/query":
            return self.query(await request.json())
        if (method, path) == ("POST", "pages"):
            return self.create(await request.json())
        if method == "PATCH" and path.startswith("pages/") and path[6:] in self.pages:
            page = self.pages[path[6:]]
            page["properties"].update((await request.json())["properties"])
            return JSONResponse(page)
        return _notion_error(404, "object_not_found", f"Could not find {path}.")

    def query(self, body: dict[str, Any]) -> JSONResponse:
        wanted = body["filter"]["rich_text"]["equals"]
        found = [p for p in self.pages.values() if self.fingerprint(p) == wanted]
        return JSONResponse({"object": "list", "results": found, "next_cursor": None, "has_more": False})

    def create(self, body: dict[str, Any]) -> JSONResponse:
        page_id = str(uuid.uuid4())
        page = {"object": "page", "id": page_id, "parent": body["parent"], "properties": body["properties"]}
        self.pages[page_id] = page | {"children": body.get("children", [])}
        return JSONResponse(page)

    @staticmethod
    def fingerprint(page: dict[str, Any]) -> str:
        return str(page["properties"]["Fingerprint"]["rich_text"][0]["text"]["content"])

    def by_fingerprint(self, fingerprint: str) -> list[dict[str, Any]]:
        return [p for p in self.pages.values() if self.fingerprint(p) == fingerprint]


@dataclass
class FakeOpenAI:
    url: str = ""
    answer: dict[str, Any] = field(default_factory=dict)
    stall: bool = False
    completions: list[dict[str, Any]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/v1/chat/completions", self.complete, methods=["POST"]),
            ]
        )

    @staticmethod
    def refused(request: Request) -> JSONResponse | None:
        if request.headers.get("authorization") == f"Bearer {OPENAI_KEY}":
            return None
        error = {"message": "Incorrect API key provided.", "type": "invalid_request_error", "code": "invalid_api_key"}
        return JSONResponse({"error": error}, status_code=401)

    async def models(self, request: Request) -> JSONResponse:
        if (refusal := self.refused(request)) is not None:
            return refusal
        data = [{"id": MODEL, "object": "model", "created": 0, "owned_by": "test"}]
        return JSONResponse({"object": "list", "data": data})

    async def complete(self, request: Request) -> JSONResponse:
        if (refusal := self.refused(request)) is not None:
            return refusal
        self.completions.append(await request.json())
        if self.stall:
            # Held until the test ends (or a bound passes), well past the client's timeout.
            await asyncio.wait_for(self.release.wait(), STALL_LIMIT)
        message = {"role": "assistant", "content": json.dumps(self.answer)}
        return JSONResponse(
            {
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "created": 0,
                "model": MODEL,
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
            }
        )


@asynccontextmanager
async def serve(app: Starlette) -> AsyncIterator[str]:
    port = free_port()
    server, task = await start_server(Listener("fake", app, "127.0.0.1", port))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def prism(
    settings: Settings, services: frozenset[str] = frozenset({"api"}), **update: Any
) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    """A runtime with ``settings`` changed by ``update``, and a REST client to its API on loopback."""
    changed = settings.model_copy(update=update)
    assert changed.redis_url is not None
    store = Store(changed.redis_url, prefix=changed.key_prefix, timeout=changed.redis_timeout)
    runtime = Runtime(changed, store, services=services)
    await runtime.start()
    port = free_port()
    server, task = await start_server(Listener("api", build_api_app(runtime), "127.0.0.1", port))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=HEADERS, timeout=20) as client:
            yield runtime, client
    finally:
        server.should_exit = True
        await task
        keys = [key async for key in store.redis.scan_iter(match=store.prefix + "*", count=500)]
        if keys:
            await store.redis.unlink(*keys)
        await runtime.stop()
