"""Runbooks: the operations guide's procedures as data an agent can follow (``GET /runbooks``, ``prism://runbooks``).

Each procedure of the guide is one JSON file under ``resources/runbooks/``: its symptom, the guide's exact error
message where there is one, likely causes, the evidence to check, and steps. A step is either a PRISM capability
to call with its arguments, or an operator command copied verbatim from the guide (``docker compose …``), which
PRISM never runs. The files are loaded and validated once, at import: a malformed runbook stops start-up.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from prism_mcp.capability import Call, Registry, Scope, capability, validate_arguments
from prism_mcp.errors import InvalidInputError, NotFoundError

__all__ = [
    "Runbook",
    "RunbookIndex",
    "RunbookStep",
    "load_runbooks",
    "match_symptom",
    "runbook_by_id",
    "verify_runbooks",
]

RUNBOOK_DIR = Path(__file__).with_name("runbooks")
RUNBOOK_ID = r"^[a-z][a-z0-9-]{1,47}$"


class RunbookStep(BaseModel):
    """One step: exactly one of ``capability`` (PRISM runs it when asked) or ``command`` (the operator runs it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str = Field(description="What the step does.")
    capability: str | None = Field(default=None, description="The PRISM capability to call.")
    arguments: dict[str, Any] = Field(default_factory=dict, description="Its arguments.")
    command: str | None = Field(default=None, description="A shell command for the operator, verbatim from the guide.")

    @model_validator(mode="after")
    def _one_kind(self) -> RunbookStep:
        if (self.capability is None) == (self.command is None):
            raise ValueError(f"step {self.title!r} needs exactly one of 'capability' or 'command'")
        if self.command is not None and self.arguments:
            raise ValueError(f"step {self.title!r} is a command: arguments belong to capability steps")
        return self


class EvidenceCheck(BaseModel):
    """A capability whose answer tells whether this runbook applies, and what to look for in it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    capability: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    look_for: str


class Runbook(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=RUNBOOK_ID)
    title: str
    category: Literal["availability", "security", "integration", "performance", "maintenance", "recovery"]
    symptom: str
    messages: list[str] = Field(description="The guide's exact error messages that identify this problem.")
    keywords: list[str] = Field(description="Lower-case words a reported symptom is matched against.")
    causes: list[str]
    evidence: list[EvidenceCheck]
    steps: list[RunbookStep] = Field(min_length=1)

    def capability_refs(self) -> list[tuple[str, dict[str, Any]]]:
        """Every (capability, arguments) the runbook names, evidence first, then steps."""
        refs = [(e.capability, e.arguments) for e in self.evidence]
        return refs + [(s.capability, s.arguments) for s in self.steps if s.capability is not None]


class RunbookSummary(BaseModel):
    id: str
    title: str
    category: str
    symptom: str


class RunbookIndex(BaseModel):
    runbooks: list[RunbookSummary] = Field(description="Every runbook; read one with runbooks_get.")


@cache
def load_runbooks() -> dict[str, Runbook]:
    """Every runbook by id, read and validated from the data files (once per process)."""
    books: dict[str, Runbook] = {}
    for path in sorted(RUNBOOK_DIR.glob("*.json")):
        book = Runbook.model_validate(json.loads(path.read_text(encoding="utf-8")))
        if book.id != path.stem:
            raise ValueError(f"{path.name} declares id {book.id!r}; the id must match the file name")
        books[book.id] = book
    return books


def runbook_by_id(runbook_id: str) -> Runbook | None:
    return load_runbooks().get(runbook_id)


def match_symptom(symptom: str) -> list[tuple[Runbook, list[str]]]:
    """The runbooks whose messages or keywords appear in ``symptom`` (case-insensitive), with the words matched."""
    said = symptom.lower()
    matches = []
    for book in load_runbooks().values():
        words = [m.lower() for m in book.messages] + book.keywords
        matched = [w for w in words if w in said]
        if matched:
            matches.append((book, matched))
    return sorted(matches, key=lambda item: -len(item[1]))


load_runbooks()


@capability("GET /runbooks", scope=Scope.READ, read_only=True, resource="prism://runbooks")
async def runbooks_list(call: Call) -> RunbookIndex:
    """The guide's procedures as runbooks: id, title, symptom. Read one at prism://runbooks/{runbook_id}."""
    books = load_runbooks().values()
    return RunbookIndex(
        runbooks=[RunbookSummary(id=b.id, title=b.title, category=b.category, symptom=b.symptom) for b in books]
    )


@capability("GET /runbooks/{runbook_id}", scope=Scope.READ, read_only=True, resource="prism://runbooks/{runbook_id}")
async def runbooks_get(
    call: Call,
    runbook_id: Annotated[str, Field(pattern=RUNBOOK_ID, description="A runbook id, e.g. high-cpu.")],
) -> Runbook:
    """One runbook: causes, evidence to check, and steps (a capability to call, or an operator shell command)."""
    book = runbook_by_id(runbook_id)
    if book is None:
        known = ", ".join(load_runbooks())
        raise NotFoundError(f"no runbook {runbook_id!r}; known runbooks: {known}")
    return book


def verify_runbooks(caps: Registry) -> None:
    """Check every capability a runbook names against the registry, arguments included.

    Called once every area is loaded: a runbook that names a capability PRISM does not declare, or gives it
    arguments it would refuse, stops start-up instead of misleading an agent later.
    """
    for book in load_runbooks().values():
        for name, arguments in book.capability_refs():
            cap = caps.get(name)
            if cap is None:
                raise ValueError(f"runbook {book.id!r} names {name!r}, which no PRISM capability is")
            try:
                validate_arguments(cap, arguments)
            except InvalidInputError as exc:
                raise ValueError(f"runbook {book.id!r} calls {name} with bad arguments: {exc.message}") from exc
