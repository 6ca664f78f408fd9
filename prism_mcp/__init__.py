"""PRISM: an MCP-first operations server."""

__version__ = "0.1.0"
