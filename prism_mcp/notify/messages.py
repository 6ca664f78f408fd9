"""Turning outbox events into what people read: a Slack message, an email subject with text and HTML parts."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

__all__ = ["Notice", "alert_notice", "notice_for", "report_notice", "test_notice"]

_MARK = {"critical": ":red_circle:", "warning": ":large_orange_circle:", "resolved": ":white_check_mark:"}


@dataclass(frozen=True, slots=True)
class Notice:
    """One notification, ready for every channel."""

    title: str
    lines: tuple[str, ...]
    sections: tuple[tuple[str, tuple[str, ...]], ...] = ()
    mark: str = ":information_source:"

    @property
    def text(self) -> str:
        parts = [self.title, "", *self.lines]
        for heading, body in self.sections:
            parts += ["", heading, *(f"  - {line}" for line in body)]
        return "\n".join(parts).rstrip() + "\n"

    @property
    def html(self) -> str:
        esc = html.escape
        body = [f"<h2>{esc(self.title)}</h2>"] + [f"<p>{esc(line)}</p>" for line in self.lines]
        for heading, items in self.sections:
            body.append(f"<h3>{esc(heading)}</h3><ul>" + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>")
        return "<!doctype html><html><body>" + "".join(body) + "</body></html>"

    def slack(self) -> dict[str, Any]:
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": self.title[:150]}},
        ]
        if self.lines:
            blocks.append(_mrkdwn("\n".join(self.lines)))
        for heading, items in self.sections:
            blocks.append(_mrkdwn(f"*{heading}*\n" + "\n".join(f"• {item}" for item in items)))
        return {"text": f"{self.mark} {self.title}", "blocks": blocks[:50]}


def _mrkdwn(text: str) -> dict[str, Any]:
    # Slack caps a section's text at 3000 characters.
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}


def alert_notice(payload: dict[str, Any]) -> Notice:
    alert = payload.get("alert") or {}
    transition = str(payload.get("transition", "fired"))
    severity = str(alert.get("severity", "warning"))
    head = "RESOLVED" if transition == "resolved" else severity.upper()
    still = " (still firing)" if transition == "repeat" else ""
    title = f"[{head}] {alert.get('title', 'alert')}{still}"
    lines = [str(alert.get("message", ""))]
    lines.append(
        f"category {alert.get('category', '?')} · severity {severity} · seen {alert.get('count', 1)} time(s) "
        f"since {alert.get('first_seen', '?')}"
    )
    if transition == "resolved":
        lines.append(f"resolved at {alert.get('resolved_at', '?')} by {alert.get('resolved_by') or 'PRISM'}")
    if alert.get("runbook"):
        lines.append(f"runbook: prism://runbooks/{alert['runbook']}")
    lines.append(f"alert id {alert.get('id', '?')} · fingerprint {alert.get('fingerprint', '?')}")
    mark = _MARK["resolved"] if transition == "resolved" else _MARK.get(severity, _MARK["warning"])
    return Notice(title=title, lines=tuple(line for line in lines if line), mark=mark)


def report_notice(payload: dict[str, Any]) -> Notice:
    sections = []
    for section in payload.get("sections") or []:
        items = [str(line) for line in section.get("lines") or []]
        if section.get("skipped"):
            items = [f"not available: {section['skipped']}"]
        sections.append((str(section.get("title", "")), tuple(items)))
    lines = [f"PRISM daily report for the {payload.get('period_hours', 24)} h up to {payload.get('generated_at')}"]
    return Notice(
        title=str(payload.get("title", "PRISM daily report")),
        lines=tuple(lines),
        sections=tuple(sections),
        mark=":bar_chart:",
    )


def test_notice(payload: dict[str, Any]) -> Notice:
    return Notice(
        title="PRISM test notification",
        lines=(
            str(payload.get("message") or "If you can read this, PRISM-NOTIFIER reaches this channel."),
            f"requested by {payload.get('requested_by', '?')} at {payload.get('requested_at', '?')}",
        ),
    )


def notice_for(kind: str, payload: dict[str, Any]) -> Notice:
    if kind == "alert":
        return alert_notice(payload)
    if kind == "report":
        return report_notice(payload)
    return test_notice(payload)
