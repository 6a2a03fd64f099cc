"""``gatewatch check --config FILE --target NAME [--ssm] [--json]``: run the on-box checks for a target.

On this machine by default (a local subprocess), or with ``--ssm`` on the target's ``host.instance_id`` /
``host.instance_tags`` through SSM Run Command with the user's own AWS credentials (the stack's on-box document).
Exit 0 when every check is ok (or cannot tell), 1 when any check fails, 2 on bad usage or configuration or
when the checks could not run at all.
"""

from __future__ import annotations

import json
import os
import sys

from gatewatch import safejson
from gatewatch.cli import EXIT_DOWN, EXIT_OK, EXIT_USAGE, UsageError, positive
from gatewatch.cli.output import examples, progress
from gatewatch.config import ConfigError, load_config
from gatewatch.facts import REPORT_MAX_BYTES, REPORT_MAX_DEPTH


def register(sub) -> None:
    p = sub.add_parser(
        "check", help="run the on-box checks for a target (on this machine, or through SSM with --ssm)",
        description="Run the read-only on-box checks (process, port, local health, nginx config and log, "
                    "firewall, memory, disk, file descriptors, logs) for one target and summarise them.",
        epilog=examples("gatewatch check --config targets.yaml --target api            # on this machine",
                        "gatewatch check --config targets.yaml --target api --ssm      # on host.instance_id via SSM"),
    )
    p.add_argument("--config", required=True, metavar="FILE", help="targets YAML file")
    p.add_argument("--target", required=True, metavar="NAME", help="target name")
    p.add_argument("--json", action="store_true", help="print the JSON report instead of the summary")
    p.add_argument("--ssm", action="store_true",
                   help="run them on the target's host.instance_id/instance_tags through SSM Run Command, with your "
                        "AWS credentials (needs the stack's on-box document)")
    p.add_argument("--document", metavar="NAME",
                   help="with --ssm: the on-box SSM document (the stack's OnboxDocumentName output; default "
                        "$ONBOX_DOCUMENT or gatewatch-onbox)")
    p.add_argument("--region", help="with --ssm: AWS region of the instance (default: AWS_REGION or your profile's)")
    p.add_argument("--python", default="python3", metavar="PATH",
                   help="locally: the interpreter that runs the checks (default: python3)")
    p.add_argument("--timeout", type=positive(float), default=30.0, metavar="S",
                   help="seconds before the checks are abandoned (default 30)")
    p.set_defaults(func=run_check)


def _runner(args):
    if not args.ssm:
        if args.document or args.region:
            raise UsageError("--document and --region apply with --ssm only")
        from gatewatch.runner import LocalRunner

        return LocalRunner(python=args.python)
    if args.python != "python3":
        raise UsageError("--python applies to local checks only; over SSM the host's own python3 runs them")
    from gatewatch.cli import awserrors
    from gatewatch.runner.ssm import SSMRunner

    ssm = awserrors.client("ssm", args.region)
    ec2 = awserrors.client("ec2", args.region)
    document = args.document or os.environ.get("ONBOX_DOCUMENT") or None
    return SSMRunner(client=ssm, ec2_client=ec2, onbox_document=document)


def run_check(args) -> int:
    from gatewatch.onbox import onbox_params
    from gatewatch.onbox.report import overall_exit, render
    from gatewatch.runner import RunnerError

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
    host = target.host
    if args.ssm and not (host and (host.instance_id or host.instance_tags)):
        raise UsageError(f"target {target.name} has no host.instance_id or host.instance_tags",
                         "add one to its host: section to check it through SSM")
    if not args.ssm and host is not None and (host.instance_id or host.instance_tags):
        raise UsageError(f"target {target.name} runs on {host.instance_id or host.instance_tags}, not here",
                         "add --ssm to run the checks there through SSM with your AWS credentials")
    runner = _runner(args)
    where = "through SSM" if args.ssm else "on this machine"
    try:
        params = onbox_params(target)
        with progress(f"on-box checks for {target.name} {where}"):
            run = runner.run_onbox(host, params, timeout_s=args.timeout)
    except (ValueError, RunnerError) as exc:
        print(f"gatewatch check: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        report = safejson.loads(run.stdout or "", max_bytes=REPORT_MAX_BYTES, max_depth=REPORT_MAX_DEPTH)
    except ValueError:
        detail = run.error or "output is not JSON"
        print(f"gatewatch check: the on-box checks could not run {where} ({run.status}: {detail})", file=sys.stderr)
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
