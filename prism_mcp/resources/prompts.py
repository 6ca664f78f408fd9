"""MCP prompts: the runbooks turned into ready-made instructions for an agent.

Prompts are not capabilities (they have no REST face): :func:`register_prompts` adds them to the MCP server.
Each tells the agent which capabilities to call and which steps are shell commands for a person, which the agent
must show rather than claim to have run.
"""

from __future__ import annotations

import json
from typing import Annotated

from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS
from pydantic import Field

from prism_mcp.alerts import Alert, alert_id, get_alert
from prism_mcp.resources.runbook import Runbook, match_symptom, runbook_by_id
from prism_mcp.runtime import Runtime

__all__ = ["register_prompts", "render_runbook"]

_COMMANDS_RULE = (
    "Steps marked `shell` are commands for the operator: show them verbatim, do not claim to have run them. "
    "Confirm destructive calls with the operator first."
)


def render_runbook(book: Runbook) -> str:
    """The runbook as numbered steps: `call name {args}` for a capability, `shell: …` for a command."""
    lines = [f"Runbook {book.id}: {book.title}. Symptom: {book.symptom}"]
    if book.causes:
        lines.append("Likely causes: " + " ".join(book.causes))
    for number, step in enumerate(book.steps, 1):
        if step.capability is not None:
            lines.append(f"{number}. {step.title} call {step.capability} {json.dumps(step.arguments)}")
        else:
            lines.append(f"{number}. {step.title} shell: {step.command}")
    return "\n".join(lines)


def _routine(runbook_id: str, closing: str) -> str:
    book = runbook_by_id(runbook_id)
    if book is None:
        raise ValueError(f"runbook {runbook_id!r} is missing from this PRISM build")
    return f"Run PRISM's {book.title.lower()}.\n\n{render_runbook(book)}\n\n{_COMMANDS_RULE}\n{closing}"


def troubleshoot(
    symptom: Annotated[str, Field(max_length=500, description="What is wrong, e.g. the error text seen.")],
) -> str:
    """Troubleshoot a PRISM problem from its symptom: diagnose, then follow the matching runbook."""
    matches = match_symptom(symptom)[:2]
    guide = "\n\n".join(render_runbook(book) for book, _ in matches) or (
        "No runbook matches the words of the symptom; list them at prism://runbooks."
    )
    return (
        f"A PRISM operator reports: {symptom!r}.\n\n"
        f"1. Call ops_diagnose with symptom={json.dumps(symptom)} and read its findings and skipped evidence.\n"
        "2. Follow the runbook of the most severe finding (prism://runbooks/{runbook_id}).\n"
        "3. After acting, call monitoring_health to confirm overall_status.\n\n"
        f"Runbooks matching the symptom:\n{guide}\n\n{_COMMANDS_RULE}"
    )


def daily_maintenance() -> str:
    """PRISM's daily maintenance: log rotation and the system health check."""
    return _routine("daily-maintenance", "Report what each call returned and anything not healthy.")


def weekly_maintenance() -> str:
    """PRISM's weekly maintenance: performance optimisation and the security audit."""
    return _routine("weekly-maintenance", "Compare the performance report with last week's and list open risks.")


def register_prompts(server: MCPServer, runtime: Runtime) -> None:
    """Add PRISM's prompts to ``server``; incident_review reads alerts from ``runtime``'s store."""

    async def incident_review(
        alert: Annotated[str, Field(max_length=200, description="An alert id (al-…) or its fingerprint.")],
    ) -> str:
        """Review one alert as an incident: timeline, cause, impact, follow-ups, from PRISM's records."""
        found = await _find_alert(runtime, alert)
        book = runbook_by_id(found.runbook) if found.runbook else None
        guide = render_runbook(book) if book else "No runbook is linked; pick one from prism://runbooks."
        return (
            f"Review this PRISM incident:\n{found.model_dump_json(indent=1)}\n\n"
            "1. Build the timeline from first_seen to resolved_at: call logs_search for ERROR records in that "
            "window, audit_events for changes made, security_events if the category is security.\n"
            "2. Call ops_diagnose to see whether the cause persists.\n"
            "3. Write the review: summary, impact, timeline, root cause, what resolved it, follow-ups.\n\n"
            f"{guide}\n\n{_COMMANDS_RULE}"
        )

    server.prompt(title="Troubleshoot a symptom")(troubleshoot)
    server.prompt(title="Daily maintenance")(daily_maintenance)
    server.prompt(title="Weekly maintenance")(weekly_maintenance)
    server.prompt(title="Review an incident")(incident_review)


async def _find_alert(runtime: Runtime, ref: str) -> Alert:
    ref = ref.strip()
    for aid in (ref, alert_id(ref)):
        found = await get_alert(runtime.store, aid)
        if found is not None:
            return found
    # An MCPError reaches the client with its message; any other exception becomes "Error rendering prompt".
    message = f"no alert with id or fingerprint {ref!r}; list alerts with alerts_list (GET /monitoring/alerts)"
    raise MCPError(INVALID_PARAMS, message)
