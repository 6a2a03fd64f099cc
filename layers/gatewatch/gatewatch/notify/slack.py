"""Slack incoming webhook: a Block Kit message with the verdict, the evidence that decided, next steps, buttons."""

from __future__ import annotations

from typing import Any

from gatewatch.notify.base import Notification
from gatewatch.notify.content import content
from gatewatch.notify.http import JsonWebhookNotifier

SECTION_MAX = 3000  # Slack: a section's text
HEADER_MAX = 150  # Slack: a header's plain_text
EMOJI = {"critical": ":red_circle:", "error": ":large_orange_circle:", "warning": ":large_yellow_circle:",
         "info": ":large_blue_circle:"}


def escape(text: str) -> str:
    """Slack mrkdwn control characters (a quoted log line must not become a link or a mention)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def build_payload(n: Notification) -> dict[str, Any]:
    c = content(n)
    mark = ":large_green_circle:" if c.resolving else EMOJI.get(c.severity, "")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(c.headline, HEADER_MAX), "emoji": True}},
    ]
    summary = [f"{mark} *{escape(c.target)}*" + (f" `{escape(c.category)}`" if c.category else "")]
    if c.title:
        summary.append(f"*{escape(c.title)}*")
    if c.explanation:
        summary.append(escape(c.explanation))
    blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut("\n".join(summary), SECTION_MAX)}})
    if c.evidence:
        lines = [f"• *{escape(label)}:* {escape(text)}" for label, text in c.evidence]
        blocks.append({"type": "section", "text": {"type": "mrkdwn",
                                                   "text": _cut("*Evidence that decided it*\n" + "\n".join(lines),
                                                                SECTION_MAX)}})
    elif not c.title:  # a resolution, a reminder: the text says it all
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(escape(c.text), SECTION_MAX)}})
    if c.next_steps:
        steps = [f"{i}. {escape(s)}" for i, s in enumerate(c.next_steps, 1)]
        blocks.append({"type": "section", "text": {"type": "mrkdwn",
                                                   "text": _cut("*Next steps*\n" + "\n".join(steps), SECTION_MAX)}})
    if c.links:
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": text}, "url": url,
             "action_id": f"gatewatch_link_{i}"} for i, (text, url) in enumerate(c.links)]})
    context = [f"kind: {c.kind}"] + ([f"incident: {c.incident_id}"] if c.incident_id else [])
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": escape(" | ".join(context))}]})
    return {"text": c.headline, "blocks": blocks}


class SlackNotifier(JsonWebhookNotifier):
    channel = "slack"

    def payload(self, notification: Notification) -> dict[str, Any]:
        return build_payload(notification)
