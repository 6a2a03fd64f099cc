"""The ``gatewatch`` command. Each sub-command lives in its own module with a ``register(subparsers)``.

Exit codes are shared by every command: 0 all good, 1 something is down or wrong, 2 bad usage or config.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from gatewatch import __version__

EXIT_OK, EXIT_DOWN, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad usage, config or environment: ``main`` prints one line, ``gatewatch: error: MESSAGE; FIX``, and exits 2.

    Raise it from any command (``raise UsageError("no AWS region", "set AWS_REGION or pass --region")``).
    """

    def __init__(self, message: str, fix: str | None = None):
        super().__init__(message)
        self.message, self.fix = message, fix

    def line(self) -> str:
        return f"gatewatch: error: {self.message}" + (f"; {self.fix}" if self.fix else "")


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
    "gatewatch.cli.store_cmd",
)


def positive(kind: type, what: str = "a number"):
    """An argparse type: a number above zero ("--every -1" would loop without sleeping)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what} (got {text!r})") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be more than 0 (got {text})")
        return value

    return parse


class _Parser(argparse.ArgumentParser):
    """Every (sub)command's parser: epilogs keep their line breaks, so each ``--help`` can end with examples."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # argparse exits 2 as well; keep its usage line, make the text ours
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"gatewatch: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gatewatch",
        description="Outside-in probing and diagnosis for sites behind Cloudflare and nginx.",
        epilog="examples:\n  gatewatch probe --demo\n  gatewatch probe https://example.com/health\n\n"
               "Each command has its own help: gatewatch COMMAND --help. Exit codes: 0 all good, 1 something is "
               "down or wrong, 2 bad usage or config.",
    )
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
    except UsageError as exc:
        print(exc.line(), file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        from gatewatch.cli.awserrors import known_error  # AWS and store failures: one line with the fix, no trace

        known = known_error(exc)
        if known is None:
            raise
        print(known.line(), file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
