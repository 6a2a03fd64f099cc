"""``gatewatch config check FILE``: validate a targets file and explain every problem."""

from __future__ import annotations

import os
import sys

from gatewatch.cli import EXIT_OK, EXIT_USAGE
from gatewatch.config import ConfigError, load_config


def register(sub) -> None:
    p = sub.add_parser("config", help="work with targets files")
    inner = p.add_subparsers(dest="config_command", metavar="ACTION")
    inner.required = True
    check = inner.add_parser("check", help="validate a targets file; exit 2 listing every problem")
    check.add_argument("file")
    check.add_argument(
        "--no-env", action="store_true", help="do not require the ${ENV_VAR} header references to be set"
    )
    check.set_defaults(func=run_check)


def run_check(args) -> int:
    try:
        config = load_config(args.file, environ=None if args.no_env else os.environ)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_USAGE
    names = ", ".join(t.name for t in config.targets)
    print(f"{args.file}: ok ({len(config.targets)} target(s): {names})")
    return EXIT_OK
