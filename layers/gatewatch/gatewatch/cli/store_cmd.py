"""``gatewatch store prune``: delete what the SQLite results store no longer needs (DynamoDB has TTL for it)."""

from __future__ import annotations

import json
import sys

from gatewatch.cli import EXIT_OK, EXIT_USAGE
from gatewatch.cli.output import examples
from gatewatch.cli.stores import add_store_args, open_store
from gatewatch.store.retention import PROBE_DAYS, RESOLVED_DAYS


def register(sub) -> None:
    p = sub.add_parser("store", help="maintain the local SQLite results store",
                       epilog=examples("gatewatch store prune", "gatewatch store prune --older-than 7d"))
    inner = p.add_subparsers(dest="store_command", metavar="ACTION")
    inner.required = True
    prune = inner.add_parser(
        "prune", help="delete old probe rounds, old notifications and long-resolved incidents and actions",
        description=f"Delete probe rounds and notifications older than --older-than (default {PROBE_DAYS}d), and "
                    f"remediation actions and resolved incidents older than --resolved-older-than (default "
                    f"{RESOLVED_DAYS}d). Open incidents are never deleted. `gatewatch run` does the same at most "
                    "once a day. An AWS deployment's DynamoDB table needs none of this: TTL expires the same items.",
        epilog=examples("gatewatch store prune", "gatewatch store prune --older-than 7d --db ./gatewatch.db"),
    )
    add_store_args(prune, table=False)
    prune.add_argument("--older-than", default=f"{PROBE_DAYS}d", metavar="AGE",
                       help=f"probe rounds and notifications older than this: 30d, 12h, 2w (default {PROBE_DAYS}d)")
    prune.add_argument("--resolved-older-than", default=f"{RESOLVED_DAYS}d", metavar="AGE",
                       help=f"resolved incidents and remediation actions older than this (default {RESOLVED_DAYS}d)")
    prune.add_argument("--json", action="store_true", help="print the deleted counts as one JSON object")
    prune.set_defaults(func=run_prune)


def run_prune(args) -> int:
    from datetime import UTC, datetime

    from gatewatch.store.retention import cutoffs
    from gatewatch.views import parse_window

    try:
        probes, resolved = parse_window(args.older_than), parse_window(args.resolved_older_than)
    except ValueError as exc:
        print(f"gatewatch store prune: {exc}", file=sys.stderr)
        return EXIT_USAGE
    store = open_store(args)  # a problem is a UsageError: one line, exit 2
    try:
        counts = store.prune(*cutoffs(datetime.now(UTC), probes, resolved))
    finally:
        store.close()
    if args.json:
        print(json.dumps(counts))
    else:
        print("deleted: " + ", ".join(f"{n} {name}" for name, n in counts.items()))
    return EXIT_OK
