"""``gatewatch remediation``: read the catalogue, preview a target's commands, read an incident's audit trail.

Read-only on purpose: actions run only through the pipeline, under the guardrails.
"""

from __future__ import annotations

import json
import shlex
import sys

EXIT_OK, EXIT_DOWN, EXIT_USAGE = 0, 1, 2  # the shared exit codes (gatewatch.cli)


def register(sub) -> None:
    from gatewatch.cli.output import examples
    from gatewatch.cli.stores import add_store_args

    p = sub.add_parser(
        "remediation", help="the remediation catalogue, command previews and audit trails",
        epilog=examples("gatewatch remediation catalogue", "gatewatch remediation audit INCIDENT_ID"),
    )
    inner = p.add_subparsers(dest="remediation_command", metavar="ACTION")
    inner.required = True
    cat = inner.add_parser("catalogue", help="what gatewatch may run, when, and what it never automates",
                           epilog=examples("gatewatch remediation catalogue", "gatewatch remediation catalogue --json"))
    cat.add_argument("--json", action="store_true", help="print the catalogue as JSON")
    cat.set_defaults(func=run_catalogue)
    cmd = inner.add_parser("commands", help="the argv each action would run on a target's host (nothing is run)",
                           epilog=examples("gatewatch remediation commands --config targets.yaml api"))
    cmd.add_argument("--config", required=True, metavar="FILE", help="targets YAML file")
    cmd.add_argument("target", help="the target's name")
    cmd.set_defaults(func=run_commands)
    aud = inner.add_parser("audit", help="an incident's remediation audit trail, oldest first",
                           epilog=examples("gatewatch remediation audit api-20261128T190501Z",
                                           "gatewatch remediation audit ID --table gatewatch-Table-XYZ --region "
                                           "eu-west-1"))
    aud.add_argument("incident_id", metavar="ID", help="the incident id (first column of gatewatch incidents)")
    add_store_args(aud)
    aud.add_argument("--json", action="store_true", help="print the audit records as JSON")
    aud.set_defaults(func=run_audit)


def _template_text(argv) -> str:
    return " ".join(f"[{' '.join(part)}]" if isinstance(part, list) else part for part in argv)


def run_catalogue(args) -> int:
    from gatewatch.remediation import CATALOGUE

    if args.json:
        print(json.dumps(CATALOGUE.model_dump(), indent=2))
        return EXIT_OK
    for action in CATALOGUE.actions.values():
        print(f"{action.name}: {action.title}")
        print(f"  allowed for: {', '.join(action.allow)}")
        for pattern, reason in action.refuse.items():
            print(f"  refused for {pattern}: {reason}")
        if action.preconditions:
            print(f"  preconditions (from the facts): {', '.join(action.preconditions)}")
        if action.check_first:
            print(f"  checked on the host first: {', '.join(action.check_first)}")
        for manager, argv in action.commands.items():
            print(f"  {manager}: {_template_text(argv)}")
        print("  command: the host's own host.commands template")
    print("never automated:")
    for category, text in CATALOGUE.never_automate.items():
        print(f"  {category}: {text}")
    return EXIT_OK


def run_commands(args) -> int:
    from gatewatch.config import ConfigError, load_config
    from gatewatch.remediation import CATALOGUE, CommandError, commands_for

    try:
        target = load_config(args.config).target(args.target)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_USAGE
    except KeyError:
        print(f"gatewatch: no target named {args.target!r} in {args.config}", file=sys.stderr)
        return EXIT_USAGE
    print(f"{target.name}: remediation.mode {target.remediation.mode}, cooldown {target.remediation.cooldown_minutes}"
          f" min, at most {target.remediation.max_per_day} a day")
    for name in CATALOGUE.actions:
        try:
            print(f"  {name}: {shlex.join(commands_for(name, target.host))}")
        except CommandError as exc:
            print(f"  {name}: not available ({exc})")
    return EXIT_OK


def run_audit(args) -> int:
    from gatewatch.cli.stores import open_store
    from gatewatch.remediation import story

    store = open_store(args)
    try:
        if args.json:
            print(json.dumps([r.to_dict() for r in store.list_actions(incident_id=args.incident_id)], indent=2))
            return EXIT_OK
        lines = story(store, args.incident_id)
    finally:
        store.close()
    if not lines:
        print(f"no remediation records for incident {args.incident_id}")
        return EXIT_OK
    print("\n".join(lines))
    return EXIT_OK
