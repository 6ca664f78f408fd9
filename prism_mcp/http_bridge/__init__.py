"""The REST face of the registry: routes, envelopes, authentication and the OpenAPI document."""

from prism_mcp.http_bridge.app import build_api_app
from prism_mcp.http_bridge.envelope import error_response, success_body

__all__ = ["build_api_app", "error_response", "success_body"]
