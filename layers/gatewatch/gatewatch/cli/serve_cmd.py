"""``gatewatch serve``: the read-only web view of the results store (127.0.0.1 by default)."""

from __future__ import annotations

import os
import sys

from gatewatch.cli import EXIT_OK, EXIT_USAGE
from gatewatch.cli.output import examples
from gatewatch.cli.stores import add_store_args, open_store


def register(sub) -> None:
    p = sub.add_parser("serve", help="read-only web view of targets, incidents and the remediation audit",
                       epilog=examples("gatewatch serve --config targets.yaml        # http://127.0.0.1:8080/"))
    add_store_args(p, config=False)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.add_argument("--config", help="targets YAML: also list configured targets that were never probed")
    p.set_defaults(func=run_serve)


def configured_names(path: str | None) -> list[str] | None:
    """Target names from a config file, or None; raises ConfigError on a bad file."""
    if not path:
        return None
    from gatewatch.config import load_config

    return [t.name for t in load_config(path, environ=os.environ).targets]


def run_serve(args) -> int:
    try:
        import uvicorn

        from gatewatch.web import create_app
    except ImportError as exc:
        print(f"gatewatch serve needs the web extra: pip install 'gatewatch[web]' ({exc})", file=sys.stderr)
        return EXIT_USAGE
    from gatewatch.config import ConfigError

    try:
        names = configured_names(args.config)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_USAGE
    store = open_store(args)  # a problem is a UsageError: one line, exit 2
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        print(f"gatewatch serve: listening on {args.host}: anyone who can reach it sees verdicts, hosts and "
              "evidence (there is no login); put it behind an authenticating proxy", file=sys.stderr)
    print(f"gatewatch serve: http://{args.host}:{args.port}/ (read-only; Ctrl-C stops)", file=sys.stderr, flush=True)
    try:
        uvicorn.run(create_app(store, configured=names), host=args.host, port=args.port, log_level="warning",
                    server_header=False)
    finally:
        store.close()
    return EXIT_OK
