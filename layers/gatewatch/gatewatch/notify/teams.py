"""Microsoft Teams incoming webhook (or a Workflows webhook): an Adaptive Card with the verdict and the evidence."""

from __future__ import annotations

from typing import Any

from gatewatch.notify.base import Notification
from gatewatch.notify.content import content
from gatewatch.notify.http import JsonWebhookNotifier

COLOR = {"critical": "Attention", "error": "Warning", "warning": "Warning", "info": "Accent"}


def build_payload(n: Notification) -> dict[str, Any]:
    c = content(n)
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "size": "Medium", "weight": "Bolder", "wrap": True, "text": c.headline,
         "color": "Good" if c.resolving else COLOR.get(c.severity, "Default")},
    ]
    if c.title:
        body.append({"type": "TextBlock", "wrap": True, "text": c.title})
    if c.explanation:
        body.append({"type": "TextBlock", "wrap": True, "isSubtle": True, "text": c.explanation})
    if c.evidence:
        body.append({"type": "FactSet", "facts": [{"title": label, "value": text} for label, text in c.evidence]})
    elif not c.title:
        body.append({"type": "TextBlock", "wrap": True, "text": c.text})
    if c.next_steps:
        body.append({"type": "TextBlock", "wrap": True, "weight": "Bolder", "text": "Next steps"})
        body += [{"type": "TextBlock", "wrap": True, "text": f"{i}. {s}"} for i, s in enumerate(c.next_steps, 1)]
    card: dict[str, Any] = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
                            "version": "1.4", "body": body}
    if c.links:
        card["actions"] = [{"type": "Action.OpenUrl", "title": text, "url": url} for text, url in c.links]
    return {"type": "message", "summary": c.headline,
            "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
                             "content": card}]}


class TeamsNotifier(JsonWebhookNotifier):
    channel = "teams"

    def payload(self, notification: Notification) -> dict[str, Any]:
        return build_payload(notification)
