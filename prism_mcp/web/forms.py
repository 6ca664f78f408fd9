"""Turning a submitted form into an action's API arguments, typed as the action declares its fields."""

from __future__ import annotations

import re
from typing import Any

from starlette.datastructures import FormData

from prism_mcp.web.catalog import Action, FormField

__all__ = ["action_arguments"]

# Form plumbing that is never an argument.
RESERVED = frozenset({"csrf", "confirmed", "bools"})
# Row actions send ids that the API takes as a list.
LIST_PARAMS = frozenset({"ids"})
_SPLIT = re.compile(r"[\s,;]+")


def _convert(field: FormField | None, name: str, value: str) -> Any:
    kind = field.kind if field is not None else ("list" if name in LIST_PARAMS else "str")
    if kind == "list":
        return [item for item in _SPLIT.split(value) if item]
    if kind == "int" and re.fullmatch(r"-?\d+", value):
        return int(value)
    return value


def action_arguments(action: Action, form: FormData) -> dict[str, Any]:
    """The arguments to send: blank text fields are left out (the API's default, or *unchanged* for settings);
    check boxes listed in ``bools`` are ``true`` when ticked and ``false`` otherwise."""
    fields = {f.name: f for f in action.fields}
    arguments: dict[str, Any] = {}
    for name, raw in form.multi_items():
        if name in RESERVED or not isinstance(raw, str):
            continue
        field = fields.get(name)
        if field is not None and field.kind == "bool":
            continue
        value = raw.strip()
        if value:
            arguments[name] = _convert(field, name, value)
    for name in str(form.get("bools", "")).split():
        if name in fields and fields[name].kind == "bool":
            arguments[name] = form.get(name) in {"on", "true", "yes"}
    return arguments
