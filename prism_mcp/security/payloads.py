"""Recognising hostile requests: path traversal, injection patterns and scanner user agents.

Detection only records (a ``suspicious_request`` event and the ``suspicious_payload`` rule); it never refuses,
because a pattern match is evidence, not proof, and every PRISM input is validated against its declaration anyway.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

__all__ = ["findings", "printable"]

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("path_traversal", re.compile(r"(\.\./|\.\.\\|/etc/passwd|/proc/self|c:\\windows)", re.IGNORECASE)),
    (
        "sql_injection",
        re.compile(
            r"(\bunion\b.{0,20}\bselect\b|'\s*or\s+'?\d+'?\s*=\s*'?\d+|;\s*drop\s+table|\bsleep\s*\(\s*\d|--\s*$)",
            re.IGNORECASE,
        ),
    ),
    ("command_injection", re.compile(r"(\$\(|`[^`]*`|;\s*(cat|curl|wget|nc|bash|sh|id|whoami)\b|\|\s*(nc|sh|bash)\b)")),
    ("script_injection", re.compile(r"(<script\b|javascript:|onerror\s*=)", re.IGNORECASE)),
)
_SCANNERS = re.compile(
    r"(sqlmap|nikto|nmap|masscan|zgrab|nuclei|dirbuster|gobuster|feroxbuster|wpscan|acunetix|nessus|openvas|w3af|"
    r"havij|hydra|zmeu|jorgee)",
    re.IGNORECASE,
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_SCAN = 4096


def printable(text: str, limit: int = 200) -> str:
    """``text`` with control characters shown as ``\\xNN``, cut at ``limit``: safe in any log line or message."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text[:limit])


def findings(path: str, query: str, user_agent: str) -> list[str]:
    """The kinds of hostile pattern found in the request line and user agent (empty for a normal request)."""
    target = unquote_plus(unquote_plus(f"{path}?{query}"[:MAX_SCAN]))
    found = [kind for kind, pattern in _PATTERNS if pattern.search(target)]
    if _SCANNERS.search(user_agent[:512]):
        found.append("scanner_user_agent")
    return found
