"""Diagnosis: live evidence matched against the runbooks by rule, optionally ranked by a model.

Evidence comes from capabilities looked up by name in the registry (health, metrics, the performance report and
statistics, log statistics, the security summary) and from the alert store. A capability that is not in this
PRISM is skipped and named in ``skipped``. Rules turn the evidence into findings, each pointing at a runbook and
carrying its recommended capability calls. The model, when configured, sees the evidence and the findings and
answers with ranked causes; its recommendations are kept only if the capability exists and the arguments
validate. Nothing here runs a recommendation: a diagnosis only reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field

from prism_mcp.alerts import Alert, list_alerts
from prism_mcp.capability import Call, Capability, invoke, registry, validate_arguments
from prism_mcp.config import Settings
from prism_mcp.errors import InvalidInputError, PrismError, RedisUnavailableError
from prism_mcp.llm import LlmFailure, ModelDiagnosis, ask_for_diagnosis
from prism_mcp.resources.runbook import Runbook, load_runbooks, match_symptom
from prism_mcp.store.connection import CONNECTION_ERRORS, Store

__all__ = ["Diagnosis", "diagnose"]

logger = logging.getLogger(__name__)

Severity = Literal["info", "warning", "critical"]
Status = Literal["healthy", "degraded", "unhealthy"]
_STATUSES: tuple[Status, ...] = ("healthy", "degraded", "unhealthy")
LlmStatus = Literal["not_configured", "disabled", "ok", "cached", "timeout", "error", "invalid"]
_SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
EVIDENCE_TIMEOUT = 5.0
EVIDENCE_CHARS = 12_000
PROMPT_VERSION = "1"

# What a diagnosis reads, by capability name, with the arguments it passes (filtered to what each accepts).
SOURCES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("health_detailed", {}),
    ("monitoring_health", {}),
    ("performance_report", {}),
    ("performance_stats", {}),
    ("logs_stats", {"hours": 1}),
    ("security_summary", {}),
)


class RecommendedCall(BaseModel):
    capability: str
    arguments: dict[str, Any] = {}
    reason: str
    available: bool = Field(description="Whether this PRISM has the capability; false: its area is not installed.")


class Finding(BaseModel):
    runbook_id: str = Field(description="Read the runbook at prism://runbooks/{runbook_id}.")
    title: str
    severity: Severity
    evidence: list[str] = Field(description="The observations behind the finding, each naming its source.")
    recommended: list[RecommendedCall]
    operator_commands: list[str] = Field(description="Shell commands from the guide for a person to run.")


class RankedCause(BaseModel):
    rank: int
    cause: str
    runbook_id: str | None
    confidence: float
    reasoning: str
    recommended: list[RecommendedCall]


class RejectedCall(BaseModel):
    capability: str
    reason: str


class Diagnosis(BaseModel):
    status: Status = Field(description="The worse of the overall health and the findings.")
    summary: str
    findings: list[Finding] = Field(description="Rule-based findings, the most severe first.")
    sources: list[str] = Field(description="Capabilities whose answers were read as evidence.")
    skipped: list[str] = Field(description="Evidence that could not be gathered, and why.")
    llm_status: LlmStatus = Field(description="ok/cached: llm_causes holds the model's ranking; otherwise why not.")
    llm_reason: str | None = None
    llm_model: str | None = None
    llm_causes: list[RankedCause] = []
    rejected: list[RejectedCall] = Field(default=[], description="Model recommendations dropped, and why.")


@dataclass
class Evidence:
    data: dict[str, dict[str, Any]] = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


@dataclass
class _Hit:
    runbook_id: str
    severity: Severity
    line: str


async def gather_evidence(call: Call) -> Evidence:
    """Read every source present in the registry concurrently, each bounded in time."""
    evidence = Evidence()
    present: list[tuple[str, Capability, dict[str, Any]]] = []
    for name, arguments in SOURCES:
        cap = registry.get(name)
        if cap is None:
            evidence.skipped.append(f"{name}: not in this PRISM (its area is not installed)")
            continue
        present.append((name, cap, {k: v for k, v in arguments.items() if k in cap.param_names}))

    async def read(name: str, cap: Capability, arguments: dict[str, Any]) -> None:
        try:
            result = await asyncio.wait_for(
                invoke(call.runtime, cap, call.principal, arguments, surface=call.surface, request_id=call.request_id),
                EVIDENCE_TIMEOUT,
            )
        except TimeoutError:
            evidence.skipped.append(f"{name}: no answer within {EVIDENCE_TIMEOUT:g} s")
            return
        except PrismError as exc:
            evidence.skipped.append(f"{name}: {exc.message}")
            return
        evidence.data[name] = result.model_dump(mode="json")

    await asyncio.gather(*(read(*item) for item in present))
    try:
        evidence.alerts = await list_alerts(call.runtime.store, status="firing", limit=50)
    except CONNECTION_ERRORS:
        evidence.skipped.append(f"alerts: {RedisUnavailableError.default_message}")
    return evidence


def _component_hits(evidence: Evidence) -> Iterable[_Hit]:
    by_component = {"redis": "redis-connection-failed", "notion": "notion-api-error"}
    for component in evidence.data.get("health_detailed", {}).get("components", []):
        book = by_component.get(component.get("name", ""))
        if book and component.get("status") != "healthy":
            severity: Severity = "critical" if component["status"] == "unhealthy" else "warning"
            line = f"health_detailed: {component['name']} {component['status']}: {component.get('reason')}"
            yield _Hit(book, severity, line)


def _threshold_hits(evidence: Evidence) -> Iterable[_Hit]:
    by_measure = {"cpu": "high-cpu", "memory": "high-memory", "disk": "daily-maintenance"}
    for check in evidence.data.get("monitoring_health", {}).get("thresholds", []):
        if check.get("status") in ("degraded", "unhealthy") and check.get("measure") in by_measure:
            severity: Severity = "critical" if check["status"] == "unhealthy" else "warning"
            line = f"monitoring_health: {check['measure']} at {check['value']} % (warning {check['warning']} %)"
            yield _Hit(by_measure[check["measure"]], severity, line)


def _report_hits(evidence: Evidence, books: dict[str, Runbook]) -> Iterable[_Hit]:
    for finding in evidence.data.get("performance_report", {}).get("findings", []):
        if finding.get("severity") in ("warning", "critical") and finding.get("runbook") in books:
            line = f"performance_report: {finding.get('measure')}: {finding.get('evidence')}"
            yield _Hit(finding["runbook"], finding["severity"], line)


def _log_hits(evidence: Evidence, settings: Settings) -> Iterable[_Hit]:
    stats = evidence.data.get("logs_stats")
    if not stats:
        return
    rate = float(stats.get("error_rate_percent") or 0.0)
    limits = settings.thresholds
    if rate >= limits.error_rate_warning:
        severity: Severity = "critical" if rate >= limits.error_rate_critical else "warning"
        yield _Hit(
            "error-rate", severity, f"logs_stats: error rate {rate:g} % (warning {limits.error_rate_warning:g} %)"
        )


def _alert_hits(evidence: Evidence, books: dict[str, Runbook]) -> Iterable[_Hit]:
    for alert in evidence.alerts:
        book = alert.runbook if alert.runbook in books else "security-alerts" if alert.category == "security" else None
        if book:
            yield _Hit(book, alert.severity, f"alert {alert.fingerprint} ({alert.severity}): {alert.title}")
    active = evidence.data.get("security_summary", {}).get("active_alerts") or []
    if active:
        yield _Hit("security-alerts", "warning", f"security_summary: {len(active)} security alert(s) firing")


def _message_hits(evidence: Evidence, books: dict[str, Runbook]) -> Iterable[_Hit]:
    # The guide's exact error messages ("Redis connection failed", "Rate limit exceeded", …) wherever they appear
    # in the evidence: health reasons, alert messages, the most frequent logged errors.
    text = json.dumps([evidence.data, [a.model_dump(mode="json") for a in evidence.alerts]], default=str)
    for book in books.values():
        for message in book.messages:
            if message in text:
                yield _Hit(book.id, "warning", f"evidence mentions `{message}`")


def _symptom_hits(symptom: str | None) -> Iterable[_Hit]:
    if not symptom:
        return
    for book, matched in match_symptom(symptom):
        yield _Hit(book.id, "info", f"reported symptom mentions {', '.join(repr(w) for w in matched[:3])}")


def recommended_calls(book: Runbook) -> list[RecommendedCall]:
    return [
        RecommendedCall(
            capability=step.capability,
            arguments=step.arguments,
            reason=step.title,
            available=registry.get(step.capability) is not None,
        )
        for step in book.steps
        if step.capability is not None
    ]


def findings_from(evidence: Evidence, symptom: str | None, settings: Settings) -> list[Finding]:
    """Every rule's hits, merged per runbook (the worst severity wins), the most severe first."""
    books = load_runbooks()
    hits = [
        *_component_hits(evidence),
        *_threshold_hits(evidence),
        *_report_hits(evidence, books),
        *_log_hits(evidence, settings),
        *_alert_hits(evidence, books),
        *_message_hits(evidence, books),
        *_symptom_hits(symptom),
    ]
    merged: dict[str, Finding] = {}
    for hit in hits:
        book = books[hit.runbook_id]
        finding = merged.get(hit.runbook_id)
        if finding is None:
            finding = merged[hit.runbook_id] = Finding(
                runbook_id=book.id,
                title=book.title,
                severity=hit.severity,
                evidence=[],
                recommended=recommended_calls(book),
                operator_commands=[s.command for s in book.steps if s.command is not None],
            )
        if _SEVERITY_RANK[hit.severity] > _SEVERITY_RANK[finding.severity]:
            finding.severity = hit.severity
        if hit.line not in finding.evidence:
            finding.evidence.append(hit.line)
    return sorted(merged.values(), key=lambda f: -_SEVERITY_RANK[f.severity])


def _status(evidence: Evidence, findings: list[Finding]) -> Status:
    """The worse of the overall health and the findings (info: healthy, warning: degraded, critical: unhealthy)."""
    overall = evidence.data.get("monitoring_health", {}).get("overall_status")
    rank = _STATUSES.index(overall) if overall in _STATUSES else 0
    worst = max((_SEVERITY_RANK[f.severity] for f in findings), default=0)
    return _STATUSES[max(rank, worst)]


def _summary(findings: list[Finding], skipped: list[str]) -> str:
    if not findings:
        text = "No rule matched the evidence: nothing known is wrong."
    else:
        top = ", ".join(f"{f.runbook_id} ({f.severity})" for f in findings[:3])
        text = f"{len(findings)} finding(s), most severe first: {top}. Follow each finding's runbook."
    if skipped:
        text += f" {len(skipped)} evidence source(s) skipped."
    return text


# --- the model ---------------------------------------------------------------------------------------------


SYSTEM_PROMPT = """\
You diagnose a running PRISM operations server from live evidence. Rank the likely causes, most likely first, \
and for each recommend PRISM capability calls that would confirm or fix it. Use only capabilities from the \
catalogue, with arguments they accept, encoded as a JSON object in arguments_json ("{}" for none). Prefer read-only \
calls for confirmation. Refer to runbooks by id where one applies, else null. Confidence is 0 to 1. Be brief."""


def _catalogue() -> list[str]:
    return [f"{cap.name}({', '.join(cap.param_names)}): {cap.summary}" for cap in registry]


def _user_prompt(evidence: Evidence, findings: list[Finding], symptom: str | None) -> str:
    data = json.dumps(
        {"sources": evidence.data, "firing_alerts": [a.model_dump(mode="json") for a in evidence.alerts]},
        default=str,
        separators=(",", ":"),
    )
    body = {
        "symptom": symptom,
        "rule_findings": [
            {"runbook_id": f.runbook_id, "severity": f.severity, "evidence": f.evidence} for f in findings
        ],
        "skipped_evidence": evidence.skipped,
        "runbooks": {b.id: b.symptom for b in load_runbooks().values()},
        "capabilities": _catalogue(),
        "evidence": data[:EVIDENCE_CHARS],
    }
    return json.dumps(body, separators=(",", ":"))


def cache_signature(settings: Settings, evidence: Evidence, findings: list[Finding], symptom: str | None) -> str:
    """A hash of the evidence's meaning, not its noise: statuses, firing alerts, findings, the symptom.

    Raw figures change at every reading (CPU 41.2 %, then 41.7 %); hashing them would make every call a miss.
    """
    components = evidence.data.get("health_detailed", {}).get("components", [])
    facts = {
        "v": PROMPT_VERSION,
        "model": settings.openai_model,
        "symptom": (symptom or "").strip().lower(),
        "components": sorted(f"{c.get('name')}:{c.get('status')}" for c in components),
        "alerts": sorted(f"{a.fingerprint}:{a.severity}" for a in evidence.alerts),
        "findings": sorted(f"{f.runbook_id}:{f.severity}" for f in findings),
        "skipped": sorted(s.split(":")[0] for s in evidence.skipped),
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:32]


def validate_model_answer(answer: ModelDiagnosis) -> tuple[list[RankedCause], list[RejectedCall]]:
    """Keep each recommended call only if its capability exists and its arguments validate."""
    books = load_runbooks()
    causes: list[RankedCause] = []
    rejected: list[RejectedCall] = []
    for cause in sorted(answer.causes, key=lambda c: c.rank):
        kept = []
        for rec in cause.recommended_calls:
            problem, arguments = _check_call(rec.capability, rec.arguments_json)
            if problem is not None:
                rejected.append(RejectedCall(capability=rec.capability[:64], reason=problem))
                continue
            kept.append(RecommendedCall(capability=rec.capability, arguments=arguments, reason=rec.why, available=True))
        causes.append(
            RankedCause(
                rank=len(causes) + 1,
                cause=cause.cause,
                runbook_id=cause.runbook_id if cause.runbook_id in books else None,
                confidence=min(1.0, max(0.0, cause.confidence)),
                reasoning=cause.reasoning,
                recommended=kept,
            )
        )
    return causes, rejected


def _check_call(name: str, arguments_json: str) -> tuple[str | None, dict[str, Any]]:
    cap = registry.get(name)
    if cap is None:
        return "unknown capability: no PRISM capability has this name", {}
    try:
        arguments = json.loads(arguments_json or "{}")
    except ValueError:
        return "arguments_json is not JSON", {}
    if not isinstance(arguments, dict):
        return "arguments_json is not a JSON object", {}
    try:
        validate_arguments(cap, arguments)
    except InvalidInputError as exc:
        return f"invalid arguments: {exc.message}", {}
    return None, arguments


class _LlmPart(BaseModel):
    causes: list[RankedCause]
    rejected: list[RejectedCall]


async def _ask_model(
    call: Call, evidence: Evidence, findings: list[Finding], symptom: str | None
) -> tuple[LlmStatus, str | None, _LlmPart | None]:
    settings, store = call.runtime.settings, call.runtime.store
    key = store.key("diagnose", "llm", cache_signature(settings, evidence, findings, symptom))
    cached = await _cache_get(store, key)
    if cached:
        return "cached", None, _LlmPart.model_validate_json(cached)
    try:
        answer = await asyncio.wait_for(
            ask_for_diagnosis(settings, SYSTEM_PROMPT, _user_prompt(evidence, findings, symptom)),
            settings.openai_timeout + 1.0,
        )
    except TimeoutError:
        return "timeout", "the model did not answer in time; raise OPENAI_TIMEOUT or check the server", None
    except LlmFailure as exc:
        logger.warning("diagnosis_model_failed", extra={"llm_status": exc.status, "reason": exc.reason})
        return exc.status, exc.reason, None  # type: ignore[return-value]
    causes, rejected = validate_model_answer(answer)
    part = _LlmPart(causes=causes, rejected=rejected)
    if settings.openai_cache_ttl:
        with contextlib.suppress(*CONNECTION_ERRORS):
            await store.redis.set(key, part.model_dump_json(), ex=settings.openai_cache_ttl)
    return "ok", None, part


async def _cache_get(store: Store, key: str) -> str | None:
    # Without Redis the diagnosis still answers (it is how an operator learns Redis is down): no cache, then.
    try:
        found: str | None = await store.redis.get(key)
    except CONNECTION_ERRORS:
        return None
    return found


async def diagnose(call: Call, symptom: str | None, use_llm: bool) -> Diagnosis:
    """Gather, match, and (when configured and asked) rank with the model; see the module docstring."""
    settings = call.runtime.settings
    evidence = await gather_evidence(call)
    findings = findings_from(evidence, symptom, settings)
    diagnosis = Diagnosis(
        status=_status(evidence, findings),
        summary=_summary(findings, evidence.skipped),
        findings=findings,
        sources=[*sorted(evidence.data), "alerts"],
        skipped=sorted(evidence.skipped),
        llm_status="disabled",
    )
    if not use_llm:
        diagnosis.llm_reason = "use_llm is false: rule-based answer only"
        return diagnosis
    if settings.openai_api_key is None:
        diagnosis.llm_status, diagnosis.llm_reason = (
            "not_configured",
            "OPENAI_API_KEY is not set: rule-based answer only",
        )
        return diagnosis
    status, reason, part = await _ask_model(call, evidence, findings, symptom)
    diagnosis.llm_status, diagnosis.llm_reason, diagnosis.llm_model = status, reason, settings.openai_model
    if part is not None:
        diagnosis.llm_causes, diagnosis.rejected = part.causes, part.rejected
    elif reason:
        diagnosis.llm_reason = f"{reason}: rule-based answer only"
    return diagnosis
