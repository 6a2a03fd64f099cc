"""``gatewatch check --config FILE --target NAME [--json]``: run the on-box checks on this machine.

Exit 0 when every check is ok (or cannot tell), 1 when any check fails, 2 on bad usage or configuration or
when the checks could not run at all.
"""

from __future__ import annotations

import json
import sys

from gatewatch import safejson
from gatewatch.cli import EXIT_DOWN, EXIT_OK, EXIT_USAGE
from gatewatch.config import ConfigError, load_config
from gatewatch.facts import REPORT_MAX_BYTES, REPORT_MAX_DEPTH


def register(sub) -> None:
    p = sub.add_parser("check", help="run the on-box checks for a target on this machine")
    p.add_argument("--config", required=True, help="targets YAML file")
    p.add_argument("--target", required=True, help="target name")
    p.add_argument("--json", action="store_true", help="print the JSON report instead of the summary")
    p.add_argument("--python", default="python3", help="interpreter that runs the checks (default: python3)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds before the checks are killed (default 30)")
    p.set_defaults(func=run_check)


def run_check(args) -> int:
    from gatewatch.onbox import onbox_params
    from gatewatch.onbox.report import overall_exit, render
    from gatewatch.runner import LocalRunner, RunnerError

    try:
        config = load_config(args.config, environ=None)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_USAGE
    try:
        target = config.target(args.target)
    except KeyError:
        names = ", ".join(t.name for t in config.targets)
        print(f"gatewatch check: no target {args.target!r} in {args.config} (targets: {names})", file=sys.stderr)
        return EXIT_USAGE
    try:
        params = onbox_params(target)
        run = LocalRunner(python=args.python).run_onbox(target.host, params, timeout_s=args.timeout)
    except (ValueError, RunnerError) as exc:
        print(f"gatewatch check: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        report = safejson.loads(run.stdout, max_bytes=REPORT_MAX_BYTES, max_depth=REPORT_MAX_DEPTH)
    except ValueError:
        detail = run.error or "output is not JSON"
        print(f"gatewatch check: the on-box checks could not run ({run.status}: {detail})", file=sys.stderr)
        if run.stderr:
            print(run.stderr.strip()[-2000:], file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(render(report))
    if not run.ok or "error" in report and "service" not in report:
        if not args.json:
            print(f"gatewatch check: {report.get('error') or run.error}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_DOWN if overall_exit(report) else EXIT_OK
