"""What an agent reads when it connects stays small and exact: the whole listing within a token budget."""

from __future__ import annotations

import json

from tests.conftest import ADMIN_KEY
from tests.mcp_client import mcp_client

TOKEN_BUDGET = 6_000


def estimated_tokens(text: str) -> int:
    # No tokenizer is installed here; four characters a token is the usual estimate for English and JSON.
    return len(text) // 4


async def test_the_listing_of_tools_resources_templates_and_prompts_fits_the_budget(mcp_url: str) -> None:
    async with mcp_client(mcp_url, ADMIN_KEY) as client:
        tools = (await client.list_tools()).tools
        resources = (await client.list_resources()).resources
        templates = (await client.list_resource_templates()).resource_templates
        prompts = (await client.list_prompts()).prompts
    listing = json.dumps(
        {
            "tools": [t.model_dump(mode="json", exclude_none=True, by_alias=True) for t in tools],
            "resources": [r.model_dump(mode="json", exclude_none=True, by_alias=True) for r in resources],
            "resourceTemplates": [t.model_dump(mode="json", exclude_none=True, by_alias=True) for t in templates],
            "prompts": [p.model_dump(mode="json", exclude_none=True, by_alias=True) for p in prompts],
        },
        separators=(",", ":"),
    )
    print(f"agent surface: {len(listing)} characters, about {estimated_tokens(listing)} tokens")
    assert estimated_tokens(listing) < TOKEN_BUDGET
    assert {p.name for p in prompts} >= {"troubleshoot", "incident_review"}
    for tool in tools:
        assert tool.annotations is not None, tool.name
        assert tool.annotations.read_only_hint is not None, tool.name
        assert tool.output_schema is not None, tool.name
        assert tool.description, tool.name
