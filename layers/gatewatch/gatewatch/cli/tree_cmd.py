"""``gatewatch tree`` draws the decision tree; ``gatewatch diagnose --facts FILE`` walks it over recorded facts."""

from __future__ import annotations

import json
import sys

from gatewatch import safejson
from gatewatch.cli import EXIT_DOWN, EXIT_OK, EXIT_USAGE
from gatewatch.cli.output import examples


def register(sub) -> None:
    tree = sub.add_parser("tree", help="print the decision tree (text, Mermaid, or the generated ASL)",
                          epilog=examples("gatewatch tree | less", "gatewatch tree --format mermaid > tree.mmd"))
    tree.add_argument("--format", choices=("text", "mermaid", "asl"), default="text",
                      help="text (default), mermaid (the picture in docs/tree.md) or asl (the Step Functions form)")
    tree.set_defaults(func=run_tree)
    diag = sub.add_parser("diagnose", help="walk the decision tree over a recorded facts document",
                          epilog=examples("gatewatch diagnose --facts tests/events/facts/classic/backend_stopped.json",
                                          "gatewatch diagnose --facts facts.json --json | jq .path"))
    diag.add_argument("--facts", required=True, help="a facts JSON file (outside + on-box), as the pipeline stores")
    diag.add_argument("--json", action="store_true", help="print the verdict document")
    diag.set_defaults(func=run_diagnose)


def run_tree(args) -> int:
    from gatewatch.tree import load_tree

    tree = load_tree()
    if args.format == "mermaid":
        from gatewatch.tree.export import to_mermaid

        sys.stdout.write(to_mermaid(tree))
    elif args.format == "asl":
        from gatewatch.tree.asl import to_asl

        sys.stdout.write(to_asl(tree))
    else:
        from gatewatch.tree.export import to_text

        sys.stdout.write(to_text(tree))
    return EXIT_OK


def format_verdict(verdict: dict) -> str:
    lines = [
        f"verdict:    {verdict['category']} ({verdict['confidence']} confidence)",
        f"title:      {verdict['title']}",
        f"why:        {verdict['explanation']}",
        "path:       " + " -> ".join(f"{p['node']}={p['answer']}" for p in verdict.get("path") or []),
    ]
    quotes = [e for e in verdict.get("evidence") or [] if e.get("quote")]
    for item in quotes[:5]:
        lines.append(f"evidence:   {item['quote']}")
    for i, step in enumerate(verdict.get("next_steps") or [], 1):
        lines.append(f"next {i}:     {step}")
    for note in verdict.get("never_automate") or []:
        lines.append(f"not automated: {note}")
    lines.append(f"remediation allowed by the tree: {verdict.get('remediation') or 'none'}")
    return "\n".join(lines) + "\n"


def run_diagnose(args) -> int:
    from gatewatch.tree import diagnose

    try:
        with open(args.facts, encoding="utf-8") as fh:
            facts = safejson.loads(fh.read(), max_bytes=16 * 1024 * 1024)
    except OSError as exc:
        print(f"gatewatch: cannot read {args.facts}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as exc:
        print(f"gatewatch: {args.facts} is not JSON: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not isinstance(facts, dict) or "outside" not in facts:
        print(f"gatewatch: {args.facts} is not a facts document (no 'outside' key; see docs/data-model.md)",
              file=sys.stderr)
        return EXIT_USAGE
    verdict = diagnose(facts)
    if args.json:
        print(json.dumps(verdict, indent=2, default=str))
    else:
        sys.stdout.write(format_verdict(verdict))
    return EXIT_OK if verdict["category"] in ("healthy", "transient", "tls_certificate_expiring") else EXIT_DOWN
