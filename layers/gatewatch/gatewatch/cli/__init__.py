"""The ``gatewatch`` command. Each sub-command lives in its own module with a ``register(subparsers)``.

Exit codes are shared by every command: 0 all good, 1 something is down or wrong, 2 bad usage or config.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from gatewatch import __version__

EXIT_OK, EXIT_DOWN, EXIT_USAGE = 0, 1, 2

# One line per command module: adding a command is one file plus one line here.
COMMAND_MODULES = (
    "gatewatch.cli.probe_cmd",
    "gatewatch.cli.config_cmd",
    "gatewatch.cli.tree_cmd",
    "gatewatch.cli.run_cmd",
    "gatewatch.cli.check_cmd",
    "gatewatch.cli.lab_cmd",
    "gatewatch.remediation.cli",
    "gatewatch.cli.notify_cmd",
    "gatewatch.cli.serve_cmd",
    "gatewatch.cli.report_cmd",
    "gatewatch.cli.status_page_cmd",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse exits 2 as well; keep its usage line, make the text ours
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"gatewatch: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gatewatch", description="Outside-in probing and diagnosis for sites behind nginx.")
    parser.add_argument("--version", action="version", version=f"gatewatch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
