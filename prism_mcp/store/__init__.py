"""Redis access: one connection per process, PRISM's key prefix, and the embedded Valkey."""

from prism_mcp.store.connection import Store, redis_errors
from prism_mcp.store.embedded import EmbeddedValkey, discover_embedded

__all__ = ["EmbeddedValkey", "Store", "discover_embedded", "redis_errors"]
