"""``gatewatch run`` (the local pipeline), ``gatewatch incidents`` and ``gatewatch history`` (read the store)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from gatewatch.cli import EXIT_DOWN, EXIT_OK, EXIT_USAGE, UsageError, positive
from gatewatch.cli.output import Stamped, examples, paint, print_json, progress, stamp, status, table
from gatewatch.cli.stores import add_store_args, open_store


# Kept for command modules written against them (serve, status-page, report); new code: gatewatch.cli.stores.
def _db_arg(p, table: bool = False) -> None:
    add_store_args(p, table=table, config=False)


def _store(args):
    return open_store(args)  # never None: a problem is a UsageError (one line, exit 2)


def register(sub) -> None:
    run = sub.add_parser(
        "run", help="probe, confirm, diagnose, record, notify (and remediate) on a schedule",
        description="The local pipeline: each round probes every target, confirms failures, opens and resolves "
                    "incidents, diagnoses them (on-box checks locally or through SSM), records everything in the "
                    "results store, notifies, and remediates within the guardrails. Exit 1 when the last round "
                    "saw a target down.",
        epilog=examples("gatewatch run --config targets.yaml                # one round",
                        "gatewatch run --config targets.yaml --every 60     # a round a minute; Ctrl-C stops"),
    )
    run.add_argument("--config", required=True, metavar="FILE", help="targets YAML file")
    when = run.add_mutually_exclusive_group()
    when.add_argument("--once", action="store_true", help="one round, then exit (the default)")
    when.add_argument("--every", type=positive(float), metavar="SECONDS",
                      help="a round every SECONDS (more than 0) until interrupted; each line starts with the UTC time")
    run.add_argument("--rounds", type=positive(int, "a whole number"), metavar="N",
                     help="with --every: stop after N rounds (default: never)")
    add_store_args(run, table=False, config=False)
    run.add_argument("--sns-topic-arn", metavar="ARN", help="also publish notifications to this SNS topic")
    run.add_argument("--remediation-ceiling", choices=("off", "suggest", "auto"), default="auto",
                     help="no target may remediate beyond this mode (default auto: the targets' own modes)")
    run.add_argument("--json", action="store_true",
                     help="print each target's report as one JSON line (fields: docs/cli.md)")
    run.add_argument("--metrics-port", type=positive(int, "a port number"), metavar="PORT",
                     help="serve Prometheus metrics on http://HOST:PORT/metrics while running (docs/web.md)")
    run.add_argument("--metrics-host", default="127.0.0.1", metavar="HOST",
                     help="address for --metrics-port (default 127.0.0.1)")
    run.set_defaults(func=run_pipeline)

    inc = sub.add_parser(
        "incidents", help="list incidents from the store, newest first (exit 1 with --open when any is open)",
        epilog=examples("gatewatch incidents --open          # exit 1 while anything is open",
                        "gatewatch incidents show ID         # the full verdict, evidence and next steps"),
    )
    add_store_args(inc)
    inc.add_argument("--target", metavar="NAME", help="only this target's incidents")
    inc.add_argument("--open", action="store_true", help="only open incidents; exit 1 when there is any")
    inc.add_argument("--limit", type=positive(int, "a whole number"), default=20, metavar="N",
                     help="at most N incidents (default 20)")
    inc.add_argument("--json", action="store_true", help="print the incident documents as JSON (docs/cli.md)")
    inc.set_defaults(func=run_incidents)
    inc_sub = inc.add_subparsers(dest="incidents_command", metavar="[show ID]")
    show = inc_sub.add_parser(
        "show", help="one incident in full: verdict, evidence, path through the tree, next steps, remediation",
        epilog=examples("gatewatch incidents show api-20261128T190501Z",
                        "gatewatch incidents show ID --json | jq .verdict"),
    )
    show.add_argument("incident_id", metavar="ID", help="the incident id (first column of gatewatch incidents)")
    add_store_args(show, suppress=True)
    show.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print the incident as JSON")
    show.set_defaults(func=run_incident_show)

    hist = sub.add_parser(
        "history", help="recent probe results from the store, newest first",
        epilog=examples("gatewatch history --target api --limit 50", "gatewatch history --json | jq '.[0]'"),
    )
    add_store_args(hist)
    hist.add_argument("--target", metavar="NAME", help="only this target's probes")
    hist.add_argument("--limit", type=positive(int, "a whole number"), default=20, metavar="N",
                      help="at most N probes (default 20)")
    hist.add_argument("--json", action="store_true", help="print the probe records as JSON (docs/cli.md)")
    hist.set_defaults(func=run_history)


def build_notifier(config, store, sns_topic_arn=None, stream=None, clock=None):
    """The console (and SNS with --sns-topic-arn), then the configured channels; every attempt recorded."""
    from gatewatch.notify import ConsoleNotifier
    from gatewatch.notify.dispatch import Dispatcher

    local = [ConsoleNotifier(stream=stream or sys.stdout)]
    if sns_topic_arn:
        from gatewatch.notify import SNSNotifier

        local.append(SNSNotifier(sns_topic_arn))
    return Dispatcher(config, store, clock, local=local)


def build_pipeline(config, store, sns_topic_arn=None, ceiling="auto", stream=None):
    from gatewatch.pipeline import Pipeline, Remediator

    pipeline = Pipeline(config, store, None)
    pipeline.notifier = build_notifier(config, store, sns_topic_arn, stream, pipeline.clock)
    pipeline.remediator = Remediator(store, pipeline.clock, ceiling=ceiling, runner_for=pipeline.runner_for,
                                     resolver=pipeline.resolver)
    return pipeline


def _line(report, stream=None) -> str:
    event = f" {report.event.upper()} {report.incident_id}" if report.event else ""
    verdict = f" verdict={report.verdict['category']}" if report.verdict else ""
    fix = ""
    if report.remediation:
        fix = f" remediation={report.remediation.get('action') or '-'}:{report.remediation.get('result')}"
    reason = f" ({report.reason})" if report.reason else ""
    flag = " transient" if report.transient else ""
    return f"{report.target:<24} {status(report.status, 9, stream)}{reason}{flag}{event}{verdict}{fix}"


def run_pipeline(args) -> int:
    from gatewatch.config import ConfigError, load_config

    try:
        config = load_config(args.config, environ=os.environ)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_USAGE
    if args.rounds and not args.every:
        raise UsageError("--rounds needs --every SECONDS", "one round is the default without --every")
    store = open_store(args, config)
    console = sys.stderr if args.json else sys.stdout
    pipeline = build_pipeline(config, store, args.sns_topic_arn, args.remediation_ceiling,
                              stream=Stamped(console) if args.every else console)
    rounds = 0
    any_down = False
    metrics = server = None
    try:
        if args.metrics_port is not None:
            from gatewatch.metrics import Metrics

            metrics = Metrics()
            server = metrics.serve(args.metrics_port, args.metrics_host)
            print(f"metrics: http://{args.metrics_host}:{server.server_address[1]}/metrics", file=sys.stderr,
                  flush=True)
        while True:
            started = time.monotonic()
            _auto_prune(store)
            with progress(f"round {rounds + 1}: probing {len(config.targets)} target(s)"):
                # a round fits its interval: what is not answered by then is recorded as skipped
                reports = pipeline.run_once(budget_s=max(1.0, args.every * 0.9) if args.every else None)
            if metrics is not None:
                metrics.observe_round(reports, store, time.monotonic() - started)
            any_down = any(r.status == "down" for r in reports)
            when = f"{stamp()} " if args.every else ""
            for report in reports:
                if args.json:
                    doc = report.to_dict()
                    doc.pop("facts", None)
                    if args.every:
                        doc.setdefault("at", when.strip())
                    print(json.dumps(doc, default=str), flush=True)
                else:
                    print(when + _line(report), flush=True)
            rounds += 1
            if not args.every or (args.rounds and rounds >= args.rounds):
                break
            time.sleep(max(0.0, args.every - (time.monotonic() - started)))
    finally:
        if server is not None:
            server.shutdown()
        store.close()
    return EXIT_DOWN if any_down else EXIT_OK


def _auto_prune(store) -> None:
    """SQLite: delete old rounds at most once a day (gatewatch.store.retention); a failure never stops the run."""
    from datetime import UTC, datetime

    from gatewatch.store.retention import auto_prune

    try:
        auto_prune(store, datetime.now(UTC))
    except Exception as exc:  # noqa: BLE001 - retention is housekeeping: the round goes on
        print(f"gatewatch run: pruning the results store failed: {exc}", file=sys.stderr)


def run_incidents(args) -> int:
    store = open_store(args)
    try:
        incidents = store.list_incidents(target=args.target, open_only=args.open, limit=args.limit)
    finally:
        store.close()
    if args.json:
        print_json([i.to_dict() for i in incidents])
    elif not incidents:
        print("no open incidents" if args.open else "no incidents")
    else:
        rows = []
        for i in incidents:
            took = f"{i.duration_s:.0f}s" if i.duration_s is not None else "-"
            fix = (i.remediation or {}).get("result") or "-"
            rows.append([i.id, i.status, i.opened_at, took, i.category or "-", fix, i.title or ""])
        print(table(rows, ["ID", "STATUS", "OPENED", "TOOK", "VERDICT", "FIX", "TITLE"], status_column=1))
    return EXIT_DOWN if args.open and incidents else EXIT_OK


def run_incident_show(args) -> int:
    from gatewatch.cli.tree_cmd import format_verdict

    store = open_store(args)
    try:
        incident = store.get_incident(args.incident_id)
        actions = store.list_actions(incident_id=args.incident_id) if incident else []
    finally:
        store.close()
    if incident is None:
        raise UsageError(f"no incident {args.incident_id}", "list them with gatewatch incidents")
    if getattr(args, "json", False):
        doc = incident.to_dict()
        doc["actions"] = [a.to_dict() for a in actions]
        print_json(doc)
        return EXIT_OK
    took = f", {incident.duration_s:.0f}s" if incident.duration_s is not None else ""
    print(f"incident:   {paint(incident.id, 'bold')}")
    print(f"target:     {incident.target}")
    print(f"status:     {status(incident.status)} (opened {incident.opened_at}"
          + (f", resolved {incident.resolved_at}{took}" if incident.resolved_at else "") + ")")
    if incident.resolution:
        print(f"resolution: {incident.resolution}")
    outside = incident.outside or {}
    if outside:
        probe = outside.get("probe") or outside
        code = (probe.get("http") or {}).get("status") or "-"
        print(f"outside:    {probe.get('status', '-')} {code} {probe.get('reason') or ''}".rstrip())
    if incident.verdict:
        sys.stdout.write(format_verdict(incident.verdict))
    else:
        print("verdict:    (none yet: the diagnosis has not finished)")
    if incident.remediation:
        r = incident.remediation
        print(f"remediation: {r.get('action') or '-'}: {r.get('result') or '-'}"
              + (f" ({r.get('reason')})" if r.get("reason") else ""))
    for a in actions:  # the remediation audit trail, as `gatewatch remediation audit ID` tells it
        reason = a.detail.get("reason") or ""
        print(f"audit:      {a.at} {a.decision} {a.action} [{a.guard}] {reason}".rstrip())
    return EXIT_OK


def run_history(args) -> int:
    store = open_store(args)
    try:
        records = store.history(target=args.target, limit=args.limit)
    finally:
        store.close()
    if args.json:
        print_json([r.to_dict() for r in records])
        return EXIT_OK
    if not records:
        print("no probes recorded")
        return EXIT_OK
    rows = []
    for r in records:
        total = f"{r.total_ms:.0f}ms" if r.total_ms is not None else "-"
        code = ((r.result.get("probe") or {}).get("http") or {}).get("status") or "-"
        rows.append([r.at, r.target, r.status, code, total, r.reason or ""])
    print(table(rows, ["AT", "TARGET", "STATUS", "CODE", "TOTAL", "REASON"], status_column=2))
    return EXIT_OK
