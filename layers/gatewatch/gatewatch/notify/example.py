"""The example notification in docs/notifications.md, produced from a recorded lab facts document:
``python -m gatewatch.notify.example FACTS.json`` prints the e-mail (subject and text) and the Slack payload;
``--write`` refreshes the block in docs/notifications.md (a test fails when it is stale)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gatewatch.messages import incident_opened
from gatewatch.notify.base import Notification
from gatewatch.notify.slack import build_payload
from gatewatch.tree import diagnose

BEGIN, END = "<!-- example:begin (python -m gatewatch.notify.example --write) -->", "<!-- example:end -->"
DEFAULT_FACTS = "tests/events/facts/classic/backend_hung.json"


def render(facts_path: str | Path, label: str | None = None) -> str:
    facts = json.loads(Path(facts_path).read_text())
    verdict = diagnose(facts)
    incident = "lab-api-20261125T141751Z"
    subject, text = incident_opened(incident, facts["target"], facts["outside"], verdict)
    note = Notification("diagnosed", facts["target"], incident, subject, text,
                        {"verdict": verdict, "url": (facts.get("config") or {}).get("url")})
    slack = json.dumps(build_payload(note), indent=2, ensure_ascii=False)
    source = label or Path(facts_path).as_posix()
    return (f"{BEGIN}\nFrom `{source}` (recorded by the lab: the backend stopped with SIGSTOP).\n\n"
            f"E-mail (SNS) subject:\n\n```text\n{note.subject}\n```\n\n"
            f"E-mail text:\n\n```text\n{text.rstrip()}\n```\n\n"
            f"Slack (incoming webhook, Block Kit):\n\n```json\n{slack}\n```\n{END}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("facts", nargs="?", default=DEFAULT_FACTS)
    parser.add_argument("--write", action="store_true", help="refresh docs/notifications.md")
    args = parser.parse_args(argv)
    block = render(args.facts)
    if not args.write:
        print(block)
        return 0
    doc = Path("docs/notifications.md")
    text = doc.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    doc.write_text(text[:start] + block + text[end:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
