"""``python -m prism_mcp`` is ``prism``."""

from prism_mcp.cli import main

main()
