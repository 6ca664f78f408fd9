"""Keeping the schemas agents read short: output models without the titles pydantic repeats on every property."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict

__all__ = ["LEAN"]


def _drop_property_titles(schema: dict[str, Any]) -> None:
    # A property's title only restates its name ("llm_status" → "Llm Status"), and an agent pays for it on
    # every tools/list.
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)


LEAN = ConfigDict(json_schema_extra=_drop_property_titles)
