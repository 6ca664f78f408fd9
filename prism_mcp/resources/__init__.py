"""Resource capabilities and the reader tool that serves them to tool-only MCP clients."""
