"""``read_resource``: one read-only tool that reads any ``prism://`` resource, for tool-only MCP clients."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field

from prism_mcp.capability import Call, Scope, capability, invoke, registry
from prism_mcp.errors import NotFoundError

__all__ = ["ResourceContent"]


class ResourceContent(BaseModel):
    uri: str
    data: dict[str, Any] = Field(description="The resource's content, as its own capability returns it.")


@capability("GET /resources/read", scope=Scope.READ, read_only=True)
async def read_resource(
    call: Call,
    uri: Annotated[
        str,
        Field(
            description="A prism:// resource URI, for example prism://monitoring/health.",
            pattern=r"^prism://[a-z0-9/_.-]{1,120}$",
        ),
    ],
) -> ResourceContent:
    """Read any prism:// resource by URI, for clients that can call tools but not read resources.

    The resources are listed by `resources/list`; each is also a REST GET route. Unknown URIs are refused
    with the list of known ones.
    """
    found = registry.by_uri(uri)
    if found is None:
        known = ", ".join(c.resource_uri or "" for c in registry if c.is_resource)
        raise NotFoundError(f"no resource {uri!r}; known resources: {known}")
    target, arguments = found
    result = await invoke(
        call.runtime, target, call.principal, arguments, surface=call.surface, request_id=call.request_id
    )
    return ResourceContent(uri=uri, data=result.model_dump(mode="json"))
