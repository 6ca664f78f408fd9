"""The dashboard's one way into PRISM: the REST API at ``PRISM_API_URL``, with the signed-in user's key."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["Answer", "ApiClient"]

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True, slots=True)
class Answer:
    """One API answer, unwrapped from the envelope: ``data`` on success, ``code`` and ``message`` otherwise."""

    status: int
    data: Any = None
    code: str = ""
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status < 400

    @property
    def absent(self) -> bool:
        """The route does not exist in this PRISM (its area is not part of the build)."""
        return self.status == 404 and self.message.startswith("no route")


class ApiClient:
    """A kept-alive HTTP client for the API; every call names the key it acts with."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            limits = httpx.Limits(max_connections=32, max_keepalive_connections=16)
            self._client = httpx.AsyncClient(base_url=self.base_url, timeout=TIMEOUT_SECONDS, limits=limits)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def call(
        self, method: str, path: str, key: str, *, params: dict[str, Any] | None = None, body: Any = None
    ) -> Answer:
        """Send one request and unwrap the envelope; an unreachable API answers 502 with what to check."""
        headers = {"Authorization": f"Bearer {key}"}
        try:
            response = await self._http().request(method, path, params=params, json=body, headers=headers)
        except httpx.HTTPError as exc:
            logger.warning("api_unreachable", extra={"path": path, "error": type(exc).__name__})
            message = f"PRISM-API at {self.base_url} did not answer ({type(exc).__name__}); check PRISM_API_URL"
            return Answer(502, code="api_unreachable", message=message)
        return _unwrap(response)


def _unwrap(response: httpx.Response) -> Answer:
    try:
        payload = response.json()
    except ValueError:
        return Answer(response.status_code, code="bad_answer", message=f"PRISM-API answered {response.status_code}")
    if not isinstance(payload, dict):
        return Answer(response.status_code, data=payload)
    if payload.get("success") is False or response.status_code >= 400:
        error = payload.get("error") or {}
        return Answer(response.status_code, code=str(error.get("code", "")), message=str(error.get("message", "")))
    return Answer(response.status_code, data=payload.get("data"))
