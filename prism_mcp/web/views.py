"""Rendering: the Jinja environment, its filters, and fetching a page's sections from the API in one round."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from prism_mcp.web import draw
from prism_mcp.web.api import Answer, ApiClient
from prism_mcp.web.catalog import ACTIONS, Section
from prism_mcp.web.sessions import Session

__all__ = ["AnswerCache", "SectionView", "environment", "fetch_sections", "section_params"]

TEMPLATES = Path(__file__).parent / "templates"
TABLE_COLUMNS = 8
NONE = "\u2013"  # an en dash: the cell is empty, not zero
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")


@dataclass(frozen=True, slots=True)
class SectionView:
    section: Section
    answer: Answer


ACRONYMS = {"cpu": "CPU", "ip": "IP", "id": "Id", "url": "URL", "ms": "ms", "api": "API"}


def _label(name: object) -> str:
    words = str(name).replace("_", " ").strip().split(" ")
    text = " ".join(ACRONYMS.get(word.lower(), word) for word in words)
    return text[:1].upper() + text[1:]


def _fmt(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".") if abs(value) < 1e15 else f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    text = str(value)
    if _ISO.match(text):
        return text[:19].replace("T", " ") + " UTC"
    return text


def _compact(value: object) -> str:
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {_compact(v)}" for k, v in value.items()) or NONE
    if isinstance(value, list | tuple):
        return ", ".join(_compact(v) for v in value) or NONE
    if value is None:
        return NONE
    return _fmt(value)


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows[:50]:
        for key in row:
            seen.setdefault(key, None)
    return list(seen)[:TABLE_COLUMNS]


def _rows_of(value: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """A mapping of several mappings (per capability, per client) as table rows with a ``name`` column."""
    if len(value) < 2 or not all(isinstance(v, Mapping) for v in value.values()):
        return None
    return [{"name": key, **item} for key, item in value.items()]


def _threshold(health: Answer | None, measure: str, which: str, default: float) -> float:
    if health is None or not health.ok or not isinstance(health.data, Mapping):
        return default
    for check in health.data.get("thresholds") or []:
        if isinstance(check, Mapping) and check.get("measure") == measure:
            return float(check.get(which, default))
    return default


def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True), trim_blocks=True)
    env.filters.update(label=_label, fmt=_fmt, compact=_compact)
    env.globals.update(
        columns=_columns,
        rows_of=_rows_of,
        threshold=_threshold,
        ring_gauge=draw.ring_gauge,
        hourly_chart=draw.hourly_chart,
        level_bars=draw.level_bars,
        severity=draw.severity,
        actions=ACTIONS,
    )
    return env


def section_params(section: Section, query: Mapping[str, str]) -> dict[str, str]:
    """The section's fixed parameters with the page's filter values laid over them (blank filters dropped)."""
    params = dict(section.params)
    for field in section.filters:
        value = query.get(field.name, "").strip()
        if value:
            params[field.name] = value
    return params


async def fetch_sections(
    api: ApiClient, session: Session, sections: Sequence[Section], query: Mapping[str, str]
) -> dict[str, SectionView]:
    """Every section's answer, fetched concurrently with the session's key."""
    answers = await asyncio.gather(
        *(api.call("GET", s.path, session.key, params=section_params(s, query)) for s in sections)
    )
    return {s.id: SectionView(s, a) for s, a in zip(sections, answers, strict=True)}


class AnswerCache:
    """The live sections' answers per key for a short while, so many viewers of one key cost one API round."""

    def __init__(self, api: ApiClient, sections: Sequence[Section], max_age: float) -> None:
        self._api = api
        self._sections = tuple(sections)
        self._max_age = max_age
        self._entries: dict[str, tuple[float, dict[str, SectionView]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, session: Session) -> dict[str, SectionView]:
        lock = self._locks.setdefault(session.fingerprint, asyncio.Lock())
        async with lock:
            entry = self._entries.get(session.fingerprint)
            if entry is not None and time.monotonic() - entry[0] < self._max_age:
                return entry[1]
            views = await fetch_sections(self._api, session, self._sections, {})
            self._entries[session.fingerprint] = (time.monotonic(), views)
            return views
