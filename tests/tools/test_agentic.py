"""POST /ops/diagnose with and without a model, and the model's health, against a local OpenAI-compatible server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import SecretStr

from prism_mcp import alerts
from prism_mcp.config import Settings
from prism_mcp.diagnosis import SOURCES
from prism_mcp.runtime import Runtime
from prism_mcp.store import Store
from tests.agentic_fakes import MODEL, OPENAI_KEY, FakeOpenAI, prism, serve
from tests.conftest import ADMIN_KEY, READ_KEY
from tests.mcp_client import mcp_client


@pytest.fixture
async def model() -> AsyncIterator[FakeOpenAI]:
    fake = FakeOpenAI()
    async with serve(fake.app()) as url:
        fake.url = url
        yield fake
        fake.release.set()


def with_model(fake: FakeOpenAI, key: str = OPENAI_KEY, **more: object) -> dict[str, object]:
    return {
        "openai_api_key": SecretStr(key),
        "openai_base_url": f"{fake.url}/v1",
        "openai_model": MODEL,
        "openai_max_tokens": 300,
    } | more


def cause(*calls: tuple[str, dict[str, Any] | str]) -> dict[str, Any]:
    recommended = [
        {"capability": name, "arguments_json": args if isinstance(args, str) else json.dumps(args), "why": "check"}
        for name, args in calls
    ]
    return {
        "rank": 1,
        "cause": "CPU saturated by a runaway job",
        "runbook_id": "high-cpu",
        "confidence": 0.8,
        "reasoning": "The CPU alert fires and nothing else is wrong.",
        "recommended_calls": recommended,
    }


async def fire_cpu(store: Store) -> None:
    await alerts.fire(
        store,
        fingerprint="threshold:cpu",
        category="system",
        severity="critical",
        title="High CPU usage",
        message="CPU at 97 % (critical 95 %)",
        source="thresholds",
        runbook="high-cpu",
    )


async def test_without_a_key_the_rule_based_answer_says_why_there_is_no_model(settings: Settings) -> None:
    async with prism(settings) as (runtime, api):
        await fire_cpu(runtime.store)
        body = (await api.post("/ops/diagnose", json={"symptom": "the API is slow"})).json()["data"]

    findings = {f["runbook_id"]: f for f in body["findings"]}
    assert body["llm_status"] == "not_configured"
    assert "OPENAI_API_KEY is not set" in body["llm_reason"]
    assert body["status"] == "unhealthy"
    assert body["findings"][0]["runbook_id"] == "high-cpu"
    assert findings["high-cpu"]["severity"] == "critical"
    assert "alert threshold:cpu (critical): High CPU usage" in findings["high-cpu"]["evidence"]
    assert "docker stats" in findings["high-cpu"]["operator_commands"]
    assert [c["capability"] for c in findings["high-cpu"]["recommended"]] == [
        "performance_metrics",
        "performance_optimize",
    ]
    assert findings["slow-responses"]["severity"] == "info"
    for name, _ in SOURCES:
        assert name in body["sources"] or any(s.startswith(f"{name}:") for s in body["skipped"]), name


async def test_the_model_ranks_causes_and_its_calls_are_validated(settings: Settings, model: FakeOpenAI) -> None:
    model.answer = {
        "causes": [
            cause(
                ("health_detailed", {}),
                ("restart_everything", {}),
                ("runbooks_get", {"runbook_id": "NOT AN ID"}),
                ("runbooks_get", "not json"),
            )
        ]
    }
    async with prism(settings, **with_model(model)) as (runtime, api):
        await fire_cpu(runtime.store)
        body = (await api.post("/ops/diagnose")).json()["data"]
        again = (await api.post("/ops/diagnose")).json()["data"]

    rejected = {(r["capability"], r["reason"].split(":")[0]) for r in body["rejected"]}
    request = model.completions[0]
    assert body["llm_status"] == "ok"
    assert body["llm_model"] == MODEL
    assert body["llm_causes"][0]["runbook_id"] == "high-cpu"
    assert [c["capability"] for c in body["llm_causes"][0]["recommended"]] == ["health_detailed"]
    assert rejected == {
        ("restart_everything", "unknown capability"),
        ("runbooks_get", "invalid arguments"),
        ("runbooks_get", "arguments_json is not JSON"),
    }
    assert request["response_format"]["type"] == "json_schema"
    assert request["response_format"]["json_schema"]["strict"] is True
    assert request["max_completion_tokens"] == 300
    assert "threshold:cpu" in request["messages"][1]["content"]
    assert again["llm_status"] == "cached"
    assert again["llm_causes"] == body["llm_causes"]
    assert len(model.completions) == 1


async def test_a_model_that_stalls_past_the_timeout_leaves_the_rule_based_answer(
    settings: Settings, model: FakeOpenAI
) -> None:
    model.stall = True
    async with prism(settings, **with_model(model, openai_timeout=0.5)) as (runtime, api):
        await fire_cpu(runtime.store)
        body = (await api.post("/ops/diagnose")).json()["data"]
        model.release.set()

    assert body["llm_status"] == "timeout"
    assert body["llm_reason"].endswith("rule-based answer only")
    assert "OPENAI_TIMEOUT" in body["llm_reason"]
    assert body["llm_causes"] == []
    assert body["findings"][0]["runbook_id"] == "high-cpu"


async def test_a_refused_model_key_is_reported_and_never_shown(settings: Settings, model: FakeOpenAI) -> None:
    async with prism(settings, **with_model(model, key="sk-wrong-key")) as (_, api):
        diagnosis = (await api.post("/ops/diagnose")).json()["data"]
        health = (await api.get("/healthz/detailed")).json()["data"]
    component = next(c for c in health["components"] if c["name"] == "openai")
    assert diagnosis["llm_status"] == "error"
    assert "check OPENAI_API_KEY" in diagnosis["llm_reason"]
    assert component["status"] == "degraded"
    assert "check OPENAI_API_KEY" in component["reason"]
    assert "sk-wrong-key" not in json.dumps([diagnosis, health])


async def test_the_model_endpoint_is_healthy_when_it_lists_the_configured_model(
    settings: Settings, model: FakeOpenAI
) -> None:
    async with prism(settings, **with_model(model)) as (_, api):
        health = (await api.get("/healthz/detailed")).json()["data"]
    async with prism(settings, **with_model(model, openai_model="absent-model")) as (_, api):
        missing = (await api.get("/healthz/detailed")).json()["data"]
    async with prism(settings) as (_, api):
        unset = (await api.get("/healthz/detailed")).json()["data"]
    component = next(c for c in health["components"] if c["name"] == "openai")
    absent = next(c for c in missing["components"] if c["name"] == "openai")
    assert component["status"] == "healthy"
    assert component["details"] == {"model": MODEL, "models_offered": 1}
    assert absent["status"] == "degraded"
    assert "absent-model" in absent["reason"]
    assert "openai" not in {c["name"] for c in unset["components"]}
    assert model.completions == []


async def test_use_llm_false_skips_the_model_and_a_read_key_may_not_diagnose(
    settings: Settings, model: FakeOpenAI
) -> None:
    async with prism(settings, **with_model(model)) as (_, api):
        body = (await api.post("/ops/diagnose", params={"use_llm": "false"})).json()["data"]
        refused = await api.post("/ops/diagnose", headers={"Authorization": f"Bearer {READ_KEY}"})
    assert body["llm_status"] == "disabled"
    assert model.completions == []
    assert refused.status_code == 403
    assert "needs the operate scope" in refused.json()["error"]["message"]


async def test_an_mcp_client_gets_the_diagnosis_as_structured_content(runtime: Runtime, mcp_url: str) -> None:
    await fire_cpu(runtime.store)
    async with mcp_client(mcp_url, ADMIN_KEY) as client:
        result = await client.call_tool("ops_diagnose", {"symptom": "Rate limit exceeded on every call"})
        refused = await client.call_tool("ops_diagnose", {"symptom": "x" * 501})
    assert result.structured_content is not None
    assert {f["runbook_id"] for f in result.structured_content["findings"]} >= {"high-cpu", "rate-limit-exceeded"}
    assert refused.is_error is True
    assert "symptom" in refused.content[0].text  # type: ignore[union-attr]
