"""The entry point: one argument in, one JSON document out."""

# Runs on the host's python 3.8+ (see __init__.py).
# ruff: noqa: UP031, UP041
from __future__ import annotations

import os
import sys

from .common import EXIT_BAD_PARAMS, EXIT_INTERNAL, EXIT_REPORT, kill_leftover_children
from .output import bound_output, error_document
from .registry import run_checks
from .validate import ParamError, decode_argument, validate_params


def main(argv) -> int:
    if len(argv) != 1:
        sys.stdout.write(error_document("expected exactly one argument: a JSON object or b64:<base64 of one>",
                                        "(argument)") + "\n")
        return EXIT_BAD_PARAMS
    try:
        params = validate_params(decode_argument(argv[0]))
    except ParamError as exc:
        sys.stdout.write(error_document("bad parameter %s" % exc, exc.field) + "\n")
        return EXIT_BAD_PARAMS
    try:
        text = bound_output(run_checks(params))
        code = EXIT_REPORT
    except Exception as exc:  # noqa: BLE001 - the guard: whatever happens, print valid JSON
        text = error_document("on-box checks failed: %s: %s" % (type(exc).__name__, exc))
        code = EXIT_INTERNAL
    sys.stdout.write(text + "\n")
    return code


def entry() -> None:
    """Run as a program (the zipapp's ``__main__``): print one JSON document whatever happens, then exit."""
    _code = EXIT_INTERNAL
    try:
        _code = main(sys.argv[1:])
    except BaseException as _exc:  # noqa: BLE001 - even KeyboardInterrupt ends in valid JSON
        sys.stdout.write(error_document("on-box checks failed: %s" % type(_exc).__name__) + "\n")
    finally:
        sys.stdout.flush()
        kill_leftover_children()
    os._exit(_code)
