"""``gatewatch report``: uptime, incidents, time to detect/verdict/recover, auto-remediated share, root causes."""

from __future__ import annotations

import sys

from gatewatch.cli import EXIT_OK, EXIT_USAGE
from gatewatch.cli.output import examples
from gatewatch.cli.stores import add_store_args, open_store


def register(sub) -> None:
    p = sub.add_parser("report", help="uptime and incident report per target and for the fleet",
                       epilog=examples("gatewatch report --since 7d", "gatewatch report --format csv > uptime.csv"))
    add_store_args(p, config=False)
    p.add_argument("--since", default="30d", help="window ending now: 30d, 7d, 24h, 2w (default 30d)")
    p.add_argument("--format", choices=("text", "markdown", "json", "csv"), default="text",
                   help="text (default), markdown, json or csv")
    p.add_argument("--config", help="targets YAML: also report configured targets that were never probed")
    p.set_defaults(func=run_report)


def run_report(args) -> int:
    from datetime import UTC, datetime

    from gatewatch.cli.serve_cmd import configured_names
    from gatewatch.config import ConfigError
    from gatewatch.views import build_report, parse_window, render_report

    try:
        window = parse_window(args.since)
    except ValueError as exc:
        print(f"gatewatch report: --since: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        names = configured_names(args.config)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_USAGE
    store = open_store(args)  # a problem is a UsageError: one line, exit 2
    try:
        report = build_report(store, datetime.now(UTC), window, label=args.since.strip(), configured=names)
    finally:
        store.close()
    sys.stdout.write(render_report(report, args.format))
    return EXIT_OK
