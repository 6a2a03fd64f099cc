"""``gatewatch notify test --target NAME [--channel C]``: send a sample notification through the configured
channels so the wiring is checked before an outage; ``gatewatch notify log`` lists recorded attempts."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from gatewatch.cli import EXIT_DOWN, EXIT_OK, EXIT_USAGE
from gatewatch.cli.output import examples

SAMPLE_FACTS = "backend_hung.json"


def register(sub) -> None:
    notify = sub.add_parser("notify", help="check and inspect the notification channels",
                            epilog=examples("gatewatch notify test --config targets.yaml --target api",
                                            "gatewatch notify log --pending"))
    nsub = notify.add_subparsers(dest="notify_command", metavar="ACTION")
    nsub.required = True
    test = nsub.add_parser("test", help="send a sample notification to the target's channels",
                           epilog=examples("gatewatch notify test --config targets.yaml --target api",
                                           "gatewatch notify test --config targets.yaml --target api --channel ops"))
    test.add_argument("--config", required=True, help="targets YAML file")
    test.add_argument("--target", required=True, help="the target whose channels get the sample")
    test.add_argument("--channel", help="only this channel (by name), even if the target does not use it")
    test.add_argument("--db", help="record the attempts in this SQLite store (default: $GATEWATCH_DB or the "
                                   "default store)")
    test.set_defaults(func=run_test)
    log = nsub.add_parser("log", help="recorded notification attempts, newest first",
                          epilog=examples("gatewatch notify log --pending", "gatewatch notify log --target api --json"))
    log.add_argument("--db", help="SQLite results store (default: $GATEWATCH_DB or the default store)")
    log.add_argument("--target", help="only this target's notifications")
    log.add_argument("--pending", action="store_true", help="only deliveries still to retry")
    log.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    log.add_argument("--json", action="store_true", help="print the records as JSON")
    log.set_defaults(func=run_log)


def sample_notification(target):
    """A real verdict (the lab's hung backend) re-addressed to ``target``, marked as a test everywhere."""
    from gatewatch.messages import incident_opened, subject_line
    from gatewatch.notify import Notification
    from gatewatch.tree import diagnose

    facts = json.loads(Path(__file__).resolve().parent.joinpath("samples", SAMPLE_FACTS).read_text())
    verdict = diagnose(facts)
    incident = f"{target.name}-test"
    _, text = incident_opened(incident, target.name, facts["outside"], verdict)
    subject = subject_line("TEST", target.name, verdict["category"], "a sample notification from gatewatch")
    text = ("This is a TEST sent by `gatewatch notify test`: nothing is down. Below is what a real alert looks "
            "like (the lab's hung backend).\n\n" + text)
    return Notification(kind="test", target=target.name, incident_id=incident, subject=subject, text=text,
                        data={"verdict": verdict, "url": target.url, "dedup_key": incident})


def run_test(args) -> int:
    from gatewatch.cli.run_cmd import _store, build_notifier
    from gatewatch.config import ConfigError, load_config

    try:
        config = load_config(args.config, environ=os.environ)
        target = config.target(args.target)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_USAGE
    except KeyError:
        print(f"gatewatch: no target named {args.target!r} in {args.config}", file=sys.stderr)
        return EXIT_USAGE
    store = _store(args)
    notifier = build_notifier(config, store, stream=sys.stdout)
    try:
        names = notifier.channel_names(target.name, args.channel)
    except KeyError:
        known = ", ".join(sorted(config.notifications.channels)) or "none configured"
        print(f"gatewatch: no channel named {args.channel!r} (known: {known})", file=sys.stderr)
        return EXIT_USAGE
    if not names:
        print(f"gatewatch: {target.name} has no channels (alerting.channels or notifications.default); "
              "only the console would be told", file=sys.stderr)
    deliveries = notifier.send_all(sample_notification(target), only=args.channel)
    failed = 0
    for d in deliveries:
        if d.channel == "console":
            continue
        failed += not d.ok
        state = "delivered" if d.ok else ("will retry" if d.retry else "refused")
        print(f"{d.channel:<16} {state:<10} {d.detail or ''}".rstrip())
    return EXIT_DOWN if failed else EXIT_OK


def run_log(args) -> int:
    from gatewatch.cli.run_cmd import _store

    store = _store(args)
    if store is None:
        return EXIT_USAGE
    records = store.list_notifications(target=args.target, pending_only=args.pending, limit=args.limit)
    for r in records:
        if args.json:
            doc = r.to_dict()
            doc.pop("notification", None)
            print(json.dumps(doc))
        else:
            print(f"{r.first_at}  {r.target:<20} {r.channel:<12} {r.event:<11} {r.status:<9} x{r.attempts} "
                  f"{r.detail or ''}".rstrip())
    return EXIT_OK
