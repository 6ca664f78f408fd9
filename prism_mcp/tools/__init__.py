"""Tool and resource capabilities, one module per area. Importing an area module declares its capabilities."""

from __future__ import annotations

import importlib

__all__ = ["AREAS", "load_all"]

# The area modules, in the order their capabilities are listed on every surface.
AREAS: tuple[str, ...] = (
    "prism_mcp.tools.health",
    "prism_mcp.tools.monitoring",
    "prism_mcp.tools.logs",
    "prism_mcp.tools.security",
    "prism_mcp.tools.notifications",
    "prism_mcp.tools.dashboard",
    "prism_mcp.tools.performance",
    "prism_mcp.tools.alerting",
    "prism_mcp.tools.worker",
    "prism_mcp.tools.audit",
    "prism_mcp.tools.whoami",
    "prism_mcp.resources.reader",
    "prism_mcp.resources.runbook",
    "prism_mcp.tools.agentic",
)


def load_all() -> None:
    """Import every area so that the registry holds every capability (idempotent)."""
    for module in AREAS:
        importlib.import_module(module)
    from prism_mcp.capability import registry
    from prism_mcp.resources.runbook import verify_runbooks

    verify_runbooks(registry)
