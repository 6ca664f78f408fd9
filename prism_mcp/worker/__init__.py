"""PRISM-WORKER: scheduled jobs on saq (:mod:`.service`), heartbeats (:mod:`.heartbeat`), backups (:mod:`.backup`).

The capabilities that show and steer it are in :mod:`prism_mcp.tools.worker`.
"""
