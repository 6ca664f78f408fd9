"""Notifications: settings, webhook URL rules, message formatting, channels and PRISM-NOTIFIER itself.

The capabilities live in :mod:`prism_mcp.tools.notifications`; this package is what they and the notifier
share. The notifier (:mod:`prism_mcp.notify.notifier`) runs in processes serving ``notifier``.
"""
