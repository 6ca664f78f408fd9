"""PRISM-WEB: the operations dashboard on port 8061, a client of the REST API like any other."""

from prism_mcp.web.app import build_web_app

__all__ = ["build_web_app"]
