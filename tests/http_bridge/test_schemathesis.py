"""Property-based tests of the REST API against its own OpenAPI document (schemathesis, on loopback).

Every operation gets a bounded number of generated requests with the admin key; each answer must not be a
server error and must match the schema the document declares for its status code. Schemathesis calls are
synchronous, so they run in a worker thread while the event loop serves the API.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from prism_mcp.capability import registry
from tests.conftest import HEADERS

MAX_EXAMPLES = 6
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]


def _run_all(document: dict[str, Any], base_url: str) -> tuple[list[str], set[str]]:
    schema = schemathesis.openapi.from_dict(document)
    failures: list[str] = []
    called: set[str] = set()
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            response = case.call(base_url=base_url, headers=HEADERS, timeout=10)
            called.add(f"{case.method.upper()} {case.path}")
            case.validate_response(response, checks=CHECKS)

        try:
            check()
        except Exception as exc:  # collect every operation's failure, not only the first
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    return failures, called


async def test_every_operation_conforms_to_the_openapi_document(api: httpx.AsyncClient, api_url: str) -> None:
    document = (await api.get("/openapi.json")).json()
    failures, called = await asyncio.to_thread(_run_all, document, api_url)
    assert failures == []
    assert {f"{cap.method} {cap.path}" for cap in registry} <= called
