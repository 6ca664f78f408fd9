"""PRISM's doors: client addresses, the block list, rate limits, security events and the rules on them.

The capabilities that expose this state live in :mod:`prism_mcp.tools.security`; the request guards that
enforce it are in :mod:`prism_mcp.security.guards` and are registered with the gate when that module is imported.
"""
