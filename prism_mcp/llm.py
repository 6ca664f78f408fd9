"""The diagnosis model: any OpenAI-compatible server through the official ``openai`` client.

PRISM asks the model for one thing, a ranked diagnosis as JSON matching :data:`DIAGNOSIS_SCHEMA` (structured
output), bounded by ``OPENAI_TIMEOUT`` and ``OPENAI_MAX_TOKENS``. The reachability probe lists the models
(``GET /v1/models``), which spends no tokens.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import openai
from openai import AsyncOpenAI
from pydantic import BaseModel, Field, ValidationError

from prism_mcp.config import Settings

__all__ = ["DIAGNOSIS_SCHEMA", "LlmFailure", "ModelDiagnosis", "ask_for_diagnosis", "openai_client", "openai_reason"]

logger = logging.getLogger(__name__)


class LlmFailure(Exception):
    """The model gave no usable answer; ``status`` is the ``llm_status`` to report, ``reason`` says why."""

    def __init__(self, status: str, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(reason)


class ModelCall(BaseModel):
    capability: str
    arguments_json: str = Field(description="The arguments as a JSON object, encoded as a string.")
    why: str


class ModelCause(BaseModel):
    rank: int
    cause: str
    runbook_id: str | None
    confidence: float
    reasoning: str
    recommended_calls: list[ModelCall]


class ModelDiagnosis(BaseModel):
    causes: list[ModelCause]


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """Structured output's strict mode: every object closed and every property required."""
    if schema.get("type") == "object":
        schema["additionalProperties"] = False
        schema["required"] = list(schema.get("properties", {}))
    for value in schema.values():
        if isinstance(value, dict):
            _strict(value)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    _strict(item)
    return schema


DIAGNOSIS_SCHEMA: dict[str, Any] = _strict(ModelDiagnosis.model_json_schema())


def openai_client(settings: Settings, *, timeout: float) -> AsyncOpenAI:
    if settings.openai_api_key is None:
        raise LlmFailure("not_configured", "OPENAI_API_KEY is not set")
    return AsyncOpenAI(
        api_key=settings.openai_api_key.get_secret_value(),
        base_url=settings.openai_base_url,
        timeout=timeout,
        max_retries=0,
    )


def openai_reason(exc: BaseException) -> tuple[str, str]:
    """(``llm_status``, reason) for a failed call; never the key."""
    if isinstance(exc, openai.APITimeoutError):
        return "timeout", "the model did not answer in time; raise OPENAI_TIMEOUT or check the server"
    if isinstance(exc, openai.AuthenticationError):
        return "error", "the server refused the key (401); check OPENAI_API_KEY"
    if isinstance(exc, openai.APIStatusError):
        return "error", f"the server answered {exc.status_code}; check OPENAI_BASE_URL and OPENAI_MODEL"
    if isinstance(exc, openai.APIConnectionError):
        return "error", "cannot reach the server; check OPENAI_BASE_URL and the network"
    return "error", type(exc).__name__


async def ask_for_diagnosis(settings: Settings, system: str, user: str) -> ModelDiagnosis:
    """One structured-output completion; raises :class:`LlmFailure` for anything but a valid diagnosis."""
    client = openai_client(settings, timeout=settings.openai_timeout)
    try:
        completion = await client.chat.completions.create(
            model=settings.openai_model,
            messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "prism_diagnosis", "strict": True, "schema": DIAGNOSIS_SCHEMA},
            },
            # No temperature: reasoning models accept only their default and refuse the call otherwise.
            max_completion_tokens=settings.openai_max_tokens,
        )
    except openai.OpenAIError as exc:
        status, reason = openai_reason(exc)
        raise LlmFailure(status, reason) from exc
    finally:
        await client.close()
    return _parse(completion.choices[0].message.content if completion.choices else None)


def _parse(content: str | None) -> ModelDiagnosis:
    if not content:
        raise LlmFailure("invalid", "the model returned no content")
    try:
        return ModelDiagnosis.model_validate(json.loads(content))
    except (ValueError, ValidationError) as exc:
        raise LlmFailure(
            "invalid", f"the model's answer does not match the diagnosis schema ({exc.__class__.__name__})"
        ) from exc
