"""``gatewatch run`` (the local pipeline), ``gatewatch incidents`` and ``gatewatch history`` (read the store)."""

from __future__ import annotations

import json
import os
import sys
import time

from gatewatch.cli import EXIT_DOWN, EXIT_OK, EXIT_USAGE


def _db_arg(p, table: bool = False) -> None:
    p.add_argument("--db", help="SQLite results store (default $GATEWATCH_DB or ~/.local/state/gatewatch/gatewatch.db)")
    if table:
        p.add_argument("--table", help="read the DynamoDB table of an AWS deployment instead (its TableName output)")


def register(sub) -> None:
    run = sub.add_parser("run", help="probe, confirm, diagnose, record, notify (and remediate) on a schedule")
    run.add_argument("--config", required=True, help="targets YAML file")
    when = run.add_mutually_exclusive_group()
    when.add_argument("--once", action="store_true", help="one round, then exit (the default)")
    when.add_argument("--every", type=float, metavar="SECONDS", help="a round every SECONDS until interrupted")
    run.add_argument("--rounds", type=int, default=0, help="with --every: stop after this many rounds (0: never)")
    _db_arg(run)
    run.add_argument("--sns-topic-arn", help="also publish notifications to this SNS topic")
    run.add_argument("--remediation-ceiling", choices=("off", "suggest", "auto"), default="auto",
                     help="no target may remediate beyond this mode (default auto: the targets' own modes)")
    run.add_argument("--json", action="store_true", help="print each round's reports as JSON lines")
    run.add_argument("--metrics-port", type=int, metavar="PORT",
                     help="serve Prometheus metrics on http://HOST:PORT/metrics while running (docs/web.md)")
    run.add_argument("--metrics-host", default="127.0.0.1", help="address for --metrics-port (default 127.0.0.1)")
    run.set_defaults(func=run_pipeline)

    inc = sub.add_parser("incidents", help="list incidents from the store, newest first")
    _db_arg(inc, table=True)
    inc.add_argument("--target")
    inc.add_argument("--open", action="store_true", help="only open incidents")
    inc.add_argument("--limit", type=int, default=20)
    inc.add_argument("--json", action="store_true")
    inc.set_defaults(func=run_incidents)

    hist = sub.add_parser("history", help="recent probe results from the store, newest first")
    _db_arg(hist, table=True)
    hist.add_argument("--target")
    hist.add_argument("--limit", type=int, default=20)
    hist.add_argument("--json", action="store_true")
    hist.set_defaults(func=run_history)


def _store(args):
    from gatewatch.store import SQLiteStore, StoreError

    try:
        if getattr(args, "table", None):
            from gatewatch.store import DynamoDBStore

            return DynamoDBStore(args.table)
        return SQLiteStore(args.db or None)
    except StoreError as exc:
        print(f"gatewatch: {exc}", file=sys.stderr)
        return None


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


def _line(report) -> str:
    event = f" {report.event.upper()} {report.incident_id}" if report.event else ""
    verdict = f" verdict={report.verdict['category']}" if report.verdict else ""
    fix = ""
    if report.remediation:
        fix = f" remediation={report.remediation.get('action') or '-'}:{report.remediation.get('result')}"
    reason = f" ({report.reason})" if report.reason else ""
    flag = " transient" if report.transient else ""
    return f"{report.target:<24} {report.status:<9}{reason}{flag}{event}{verdict}{fix}"


def run_pipeline(args) -> int:
    from gatewatch.config import ConfigError, load_config

    try:
        config = load_config(args.config, environ=os.environ)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_USAGE
    store = _store(args)
    if store is None:
        return EXIT_USAGE
    pipeline = build_pipeline(config, store, args.sns_topic_arn, args.remediation_ceiling,
                              stream=sys.stderr if args.json else sys.stdout)
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
            reports = pipeline.run_once()
            if metrics is not None:
                metrics.observe_round(reports, store, time.monotonic() - started)
            any_down = any(r.status == "down" for r in reports)
            for report in reports:
                if args.json:
                    doc = report.to_dict()
                    doc.pop("facts", None)
                    print(json.dumps(doc, default=str), flush=True)
                else:
                    print(_line(report), flush=True)
            rounds += 1
            if not args.every or (args.rounds and rounds >= args.rounds):
                break
            time.sleep(max(0.0, args.every - (time.monotonic() - started)))
    finally:
        if server is not None:
            server.shutdown()
        store.close()
    return EXIT_DOWN if any_down else EXIT_OK


def run_incidents(args) -> int:
    store = _store(args)
    if store is None:
        return EXIT_USAGE
    incidents = store.list_incidents(target=args.target, open_only=args.open, limit=args.limit)
    if args.json:
        print(json.dumps([i.to_dict() for i in incidents], indent=2, default=str))
        return EXIT_OK
    if not incidents:
        print("no incidents")
    for i in incidents:
        took = f"{i.duration_s:.0f}s" if i.duration_s is not None else "-"
        fix = (i.remediation or {}).get("result") or "-"
        print(f"{i.id:<44} {i.status:<9} {i.opened_at}  {took:>6}  {i.category or '-':<24} fix={fix}  {i.title or ''}")
    return EXIT_OK


def run_history(args) -> int:
    store = _store(args)
    if store is None:
        return EXIT_USAGE
    records = store.history(target=args.target, limit=args.limit)
    if args.json:
        print(json.dumps([r.to_dict() for r in records], indent=2, default=str))
        return EXIT_OK
    if not records:
        print("no probes recorded")
    for r in records:
        total = f"{r.total_ms:.0f}ms" if r.total_ms is not None else "-"
        status = ((r.result.get("probe") or {}).get("http") or {}).get("status") or "-"
        print(f"{r.at}  {r.target:<24} {r.status:<9} {status!s:>4} {total:>8}  {r.reason or ''}")
    return EXIT_OK
