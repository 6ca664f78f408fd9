"""Diagnosis rules over evidence shaped as the areas answer it, and the model's answer checked call by call."""

from __future__ import annotations

from typing import Any

import httpx

from prism_mcp.config import Settings
from prism_mcp.diagnosis import Evidence, findings_from, validate_model_answer
from prism_mcp.http_bridge import build_api_app
from prism_mcp.llm import ModelDiagnosis
from prism_mcp.runtime import Runtime
from prism_mcp.serving import Listener, start_server
from prism_mcp.store import Store
from tests.conftest import HEADERS, free_port


def findings(data: dict[str, dict[str, Any]], symptom: str | None, settings: Settings) -> dict[str, Any]:
    return {f.runbook_id: f for f in findings_from(Evidence(data=data), symptom, settings)}


def test_an_unhealthy_redis_component_points_at_the_redis_runbook(settings: Settings) -> None:
    health = {"components": [{"name": "redis", "status": "unhealthy", "reason": "Redis connection failed"}]}
    found = findings({"health_detailed": health}, None, settings)
    assert found["redis-connection-failed"].severity == "critical"
    assert "health_detailed: redis unhealthy: Redis connection failed" in found["redis-connection-failed"].evidence
    assert "evidence mentions `Redis connection failed`" in found["redis-connection-failed"].evidence


def test_thresholds_and_the_performance_report_map_to_their_runbooks(settings: Settings) -> None:
    health = {
        "overall_status": "degraded",
        "thresholds": [
            {"measure": "cpu", "value": 20.0, "warning": 80.0, "critical": 95.0, "status": "healthy"},
            {"measure": "memory", "value": 91.0, "warning": 85.0, "critical": 95.0, "status": "degraded"},
        ],
    }
    report = {
        "findings": [
            {"measure": "p95_latency", "severity": "critical", "runbook": "slow-responses", "evidence": "p95 6.2 s"},
            {"measure": "error_rate", "severity": "ok", "runbook": "error-rate", "evidence": "0.1 %"},
        ]
    }
    found = findings({"monitoring_health": health, "performance_report": report}, None, settings)
    assert set(found) == {"high-memory", "slow-responses"}
    assert found["high-memory"].severity == "warning"
    assert found["slow-responses"].evidence == ["performance_report: p95_latency: p95 6.2 s"]
    assert next(iter(found)) == "slow-responses"


def test_log_error_rate_and_security_alerts_raise_findings(settings: Settings) -> None:
    logs = {"error_rate_percent": 12.5, "top_errors": [{"event": "limit", "message": "Rate limit exceeded"}]}
    security = {"active_alerts": [{"fingerprint": "security:brute_force:10.0.0.7"}]}
    found = findings({"logs_stats": logs, "security_summary": security}, None, settings)
    assert found["error-rate"].severity == "critical"
    assert "rate-limit-exceeded" in found
    assert found["security-alerts"].evidence == ["security_summary: 1 security alert(s) firing"]


def test_quiet_evidence_and_no_symptom_give_no_findings(settings: Settings) -> None:
    logs = {"error_rate_percent": 0.5, "top_errors": []}
    assert findings({"logs_stats": logs, "monitoring_health": {"overall_status": "healthy"}}, None, settings) == {}


def test_a_model_cause_naming_an_unknown_runbook_keeps_the_cause_without_it() -> None:
    answer = ModelDiagnosis.model_validate(
        {
            "causes": [
                {
                    "rank": 2,
                    "cause": "b",
                    "runbook_id": "made-up",
                    "confidence": 3.0,
                    "reasoning": "r",
                    "recommended_calls": [{"capability": "health_detailed", "arguments_json": "[]", "why": "w"}],
                },
                {
                    "rank": 1,
                    "cause": "a",
                    "runbook_id": "high-cpu",
                    "confidence": 0.5,
                    "reasoning": "r",
                    "recommended_calls": [],
                },
            ]
        }
    )
    causes, rejected = validate_model_answer(answer)
    assert [(c.rank, c.cause, c.runbook_id) for c in causes] == [(1, "a", "high-cpu"), (2, "b", None)]
    assert causes[1].confidence == 1.0
    assert [(r.capability, r.reason) for r in rejected] == [("health_detailed", "arguments_json is not a JSON object")]


async def test_with_redis_down_the_diagnosis_still_answers_and_names_redis(settings: Settings) -> None:
    dead = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0", "redis_timeout": 0.5})
    assert dead.redis_url is not None
    runtime = Runtime(dead, Store(dead.redis_url, prefix=dead.key_prefix, timeout=0.5), services=frozenset({"api"}))
    await runtime.start()
    port = free_port()
    server, task = await start_server(Listener("api", build_api_app(runtime), "127.0.0.1", port))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=HEADERS, timeout=20) as api:
            response = await api.post("/ops/diagnose", json={"use_llm": False})
    finally:
        server.should_exit = True
        await task
        await runtime.stop()
    body = response.json()["data"]
    assert response.status_code == 200
    assert body["status"] == "unhealthy"
    assert body["findings"][0]["runbook_id"] == "redis-connection-failed"
    assert "alerts: Redis connection failed" in body["skipped"]
