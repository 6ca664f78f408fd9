"""The registry, the REST routes, the OpenAPI document and the MCP lists describe the same capabilities."""

from __future__ import annotations

import httpx
from starlette.routing import Route

from prism_mcp.capability import path_regex, registry
from prism_mcp.http_bridge.openapi import openapi_document
from prism_mcp.runtime import Runtime
from prism_mcp.server import build_mcp_server
from tests.conftest import ADMIN_KEY
from tests.mcp_client import mcp_client

PUBLIC = {("GET", "/healthz"), ("GET", "/metrics/")}


def _served_routes(runtime: Runtime) -> set[tuple[str, str]]:
    from prism_mcp.http_bridge import build_api_app

    router = build_api_app(runtime)
    while not hasattr(router, "table"):  # unwrap the ASGI layers (envelope, HTTP metrics) around the router
        router = router.app  # type: ignore[attr-defined]
    found = {(method, path) for path, methods in router.table.items() for method in methods}
    for pattern, methods in router.templated:
        # A templated route keeps only its regex; name it by the declared path that compiles to the same one.
        path = next(cap.path for cap in registry if path_regex(cap.path).pattern == pattern.pattern)
        found |= {(method, path) for method in methods}
    for route in router.fallback.routes:
        if isinstance(route, Route) and route.methods:
            found |= {(m, route.path) for m in route.methods if m != "HEAD"}
    return found


async def test_rest_routes_are_exactly_the_registry_plus_public_and_docs(runtime: Runtime) -> None:
    declared = {(cap.method, cap.path) for cap in registry}
    extra = PUBLIC | {("GET", "/openapi.json"), ("GET", "/docs")}
    assert _served_routes(runtime) == declared | extra


def test_openapi_paths_match_the_registry_operation_by_operation() -> None:
    document = openapi_document("test")
    operations = {
        (method.upper(), path): op["operationId"]
        for path, item in document["paths"].items()
        for method, op in item.items()
    }
    expected = {(cap.method, cap.path): cap.name for cap in registry}
    assert {k: v for k, v in operations.items() if k not in PUBLIC} == expected
    assert document["openapi"] == "3.1.0"


def test_openapi_parameters_carry_the_declared_bounds() -> None:
    document = openapi_document("test")
    for cap in registry:
        op = document["paths"][cap.path][cap.method.lower()]
        declared = cap.input_model.model_json_schema()["properties"]
        listed = {p["name"]: p["schema"] for p in op["parameters"]}
        assert set(listed) == set(declared), cap.name
        for name, schema in declared.items():
            for bound in ("minimum", "maximum", "pattern", "maxLength", "minLength"):
                assert listed[name].get(bound) == schema.get(bound), (cap.name, name, bound)


async def test_mcp_tools_and_resources_are_exactly_the_registry(runtime: Runtime, mcp_url: str) -> None:
    async with mcp_client(mcp_url, ADMIN_KEY) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        resources = {str(res.uri): res for res in (await client.list_resources()).resources}
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
    assert set(tools) == {cap.name for cap in registry if not cap.is_resource}
    assert set(resources) | templates == {cap.resource_uri for cap in registry if cap.is_resource}
    for cap in registry:
        if cap.is_resource:
            continue
        tool = tools[cap.name]
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is cap.read_only
        if not cap.read_only:
            assert tool.annotations.destructive_hint is cap.destructive
        assert tool.output_schema is not None, cap.name
        assert set(tool.input_schema.get("properties", {})) == set(cap.param_names)


async def test_mcp_descriptions_are_the_declared_contracts(runtime: Runtime) -> None:
    server = build_mcp_server(runtime)
    for tool in await server.list_tools():
        cap = registry.get(tool.name)
        assert cap is not None
        assert tool.description == cap.summary
    assert server.instructions
    assert "prism://monitoring/health" in server.instructions


async def test_openapi_document_needs_a_key_and_is_served(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url) as client:
        anonymous = await client.get("/openapi.json")
        keyed = await client.get("/openapi.json", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        docs = await client.get("/docs")
    assert anonymous.status_code == 401
    assert keyed.json()["paths"]["/monitoring/metrics"]["get"]["operationId"] == "monitoring_metrics"
    assert docs.status_code == 200
    assert "<script src=" not in docs.text  # everything inline: the page loads nothing from elsewhere
    assert "https://" not in docs.text
