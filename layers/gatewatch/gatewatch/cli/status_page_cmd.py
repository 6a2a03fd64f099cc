"""``gatewatch status-page --out DIR``: the public status page as static files (nothing private on it)."""

from __future__ import annotations

import os
import sys

from gatewatch.cli import EXIT_OK, EXIT_USAGE
from gatewatch.cli.output import examples
from gatewatch.cli.stores import add_store_args, open_store


def register(sub) -> None:
    p = sub.add_parser("status-page", help="write the public status page (HTML, CSS, JSON) to a directory",
                       epilog=examples("gatewatch status-page --config targets.yaml --out public/"))
    add_store_args(p, config=False)
    p.add_argument("--out", required=True, help="directory to write index.html, status.css and status.json into")
    p.add_argument("--config", help="targets YAML: their display_name is shown instead of the target name")
    p.set_defaults(func=run_status_page)


def display_names(path: str | None) -> dict[str, str]:
    if not path:
        return {}
    from gatewatch.config import load_config

    return {t.name: t.display_name or t.name for t in load_config(path, environ=os.environ).targets}


def run_status_page(args) -> int:
    from datetime import UTC, datetime

    from gatewatch.config import ConfigError
    from gatewatch.views import status_data, write_status_site

    try:
        names = display_names(args.config)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_USAGE
    store = open_store(args)  # a problem is a UsageError: one line, exit 2
    try:
        data = status_data(store, datetime.now(UTC), names)
    finally:
        store.close()
    written = write_status_site(data, args.out)
    print(f"status page: {data['state']}, {len(data['targets'])} target(s), {len(data['incidents'])} incident(s); "
          f"wrote {', '.join(str(p) for p in written)}")
    return EXIT_OK
