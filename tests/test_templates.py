"""Capabilities with path placeholders: REST routes with path parameters, MCP template resources."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import pytest
from pydantic import BaseModel, Field

from prism_mcp.capability import Call, Registry, Scope, capability
from prism_mcp.http_bridge import build_api_app
from prism_mcp.runtime import Runtime
from prism_mcp.server import mcp_http_app
from prism_mcp.serving import Listener, start_server
from tests.conftest import ADMIN_KEY, HEADERS, free_port
from tests.mcp_client import mcp_client

notes = Registry()


class Note(BaseModel):
    note_id: str
    text: str


@capability("GET /notes/{note_id}", scope=Scope.READ, read_only=True, resource="prism://notes/{note_id}", target=notes)
async def note_get(
    call: Call, note_id: Annotated[str, Field(pattern=r"^[a-z]{1,8}$", description="Lower-case note id.")]
) -> Note:
    """One note by id."""
    return Note(note_id=note_id, text=f"note {note_id}")


@pytest.fixture
async def served(runtime: Runtime) -> AsyncIterator[tuple[str, str]]:
    api_port, mcp_port = free_port(), free_port()
    api = await start_server(Listener("api", build_api_app(runtime, caps=notes), "127.0.0.1", api_port))
    mcp = await start_server(Listener("mcp", mcp_http_app(runtime, caps=notes), "127.0.0.1", mcp_port))
    yield f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{mcp_port}/mcp"
    for server, task in (api, mcp):
        server.should_exit = True
        await task


async def test_a_path_parameter_reaches_the_handler_and_is_validated(served: tuple[str, str]) -> None:
    async with httpx.AsyncClient(base_url=served[0], headers=HEADERS) as client:
        good = await client.get("/notes/abc")
        bad = await client.get("/notes/ABC")
        repeated = await client.get("/notes/abc", params={"note_id": "xyz"})
        deeper = await client.get("/notes/abc/more")
    assert good.json()["data"] == {"note_id": "abc", "text": "note abc"}
    assert bad.status_code == 422
    assert bad.json()["error"]["details"]["field"] == "note_id"
    assert repeated.status_code == 422
    assert deeper.status_code == 404


async def test_a_template_resource_is_listed_and_read_over_mcp(served: tuple[str, str]) -> None:
    async with mcp_client(served[1], ADMIN_KEY) as client:
        templates = (await client.list_resource_templates()).resource_templates
        result = await client.read_resource("prism://notes/abc")
    assert [t.uri_template for t in templates] == ["prism://notes/{note_id}"]
    assert json.loads(result.contents[0].text) == {"note_id": "abc", "text": "note abc"}  # type: ignore[union-attr]


def test_a_resource_whose_uri_and_inputs_disagree_is_refused() -> None:
    scratch = Registry()

    async def other(call: Call, name: Annotated[str, Field(max_length=5)]) -> Note:
        """Doc."""
        return Note(note_id=name, text="")

    with pytest.raises(ValueError, match="placeholders of both its path and its URI"):
        capability("GET /o/{name}", scope=Scope.READ, read_only=True, resource="prism://o", target=scratch)(other)
    with pytest.raises(ValueError, match="are not inputs"):
        capability("GET /o/{nope}", scope=Scope.READ, read_only=True, target=scratch)(other)
