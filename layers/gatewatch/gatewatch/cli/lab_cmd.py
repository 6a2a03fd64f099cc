"""``gatewatch lab up|down|status|faults|inject FAULT|heal [FAULT]``: the real fault lab (``lab`` package).

Needs root (it creates a network namespace) and nginx, PostgreSQL, iproute2 and iptables installed; it installs
nothing itself and exits 2 naming what is missing.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gatewatch.cli.output import examples, progress

EXIT_OK, EXIT_DOWN, EXIT_USAGE = 0, 1, 2
NO_LAB = ("the lab is not part of the installed package: it needs a checkout of the gatewatch repository "
          "(git clone it, then `make demo` as root on Debian 12, or `.venv/bin/gatewatch lab ...` after `make venv`)")


def register(sub) -> None:
    p = sub.add_parser(
        "lab", help="the real fault lab: nginx, FastAPI and PostgreSQL in a network namespace (from a checkout)",
        description="The real fault lab (root, Debian; from a checkout of the repository, not the wheel).",
        epilog=examples("sudo .venv/bin/gatewatch lab demo                # every fault: inject, diagnose, fix",
                        "sudo .venv/bin/gatewatch lab up && gatewatch lab inject backend_hung"),
    )
    p.add_argument("--dir", help="lab directory (default $GATEWATCH_LAB_DIR or /tmp/gatewatch-lab)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    lab_sub = p.add_subparsers(dest="lab_command", metavar="ACTION")
    lab_sub.required = True

    up = lab_sub.add_parser("up", help="start the lab (idempotent) and wait until it is healthy")
    up.add_argument("--plain-edge", action="store_true",
                    help="relay bytes only; by default the edge emulates Cloudflare (server/cf-ray, 52x codes)")
    up.add_argument("--wait", type=float, default=60.0, metavar="SECONDS", help="how long to wait for health")
    topologies = _topology_names()
    up.add_argument("--topology", choices=topologies or None, metavar="NAME",
                    help="how the origin is put together (default: what the lab was brought up with, else classic): "
                         + ", ".join(topologies))
    lab_sub.add_parser("down", help="stop everything and remove the namespace and the edge")
    lab_sub.add_parser("status", help="each program's state, the edge, health and injected faults")
    lab_sub.add_parser("faults", help="list the faults the lab can inject")
    # The fault names come from the lab package, which only a checkout has: an installed gatewatch still builds
    # its parser (and `gatewatch lab ...` then says where to get the lab) instead of failing to start at all.

    fault_names = _fault_names()
    demo = lab_sub.add_parser("demo", help="bring the lab up, inject every fault, diagnose and fix it, print a table")
    demo.add_argument("faults", nargs="*", choices=[[], *fault_names] if fault_names else None, metavar="FAULT",
                      help="only these faults (default: all)")
    demo.add_argument("--keep", action="store_true", help="leave the lab up afterwards")
    demo.add_argument("--topology", choices=[*topologies, "all"] if topologies else None, default=None,
                      metavar="NAME|all",
                      help="run the demo on this topology, or on every one in turn (default classic); "
                           "only the faults that apply to a topology run on it")
    inject = lab_sub.add_parser("inject", help="break the lab in one named way and wait until it shows")
    inject.add_argument("fault", choices=fault_names or None, metavar="FAULT",
                        help="one of: " + (", ".join(fault_names) or "(see gatewatch lab faults in a checkout)"))
    heal = lab_sub.add_parser("heal", help="heal one fault, or with no FAULT everything back to the baseline")
    heal.add_argument("fault", nargs="?", choices=fault_names or None, metavar="FAULT", help="the fault to heal")
    lab_examples = {
        "up": ("sudo .venv/bin/gatewatch lab up", "sudo .venv/bin/gatewatch lab up --plain-edge"),
        "down": ("sudo .venv/bin/gatewatch lab down",),
        "status": ("sudo .venv/bin/gatewatch lab status", "sudo .venv/bin/gatewatch lab status --json"),
        "faults": ("gatewatch lab faults",),
        "demo": ("sudo .venv/bin/gatewatch lab demo", "sudo .venv/bin/gatewatch lab demo backend_hung nginx_stopped"),
        "inject": ("sudo .venv/bin/gatewatch lab inject backend_hung",),
        "heal": ("sudo .venv/bin/gatewatch lab heal backend_hung", "sudo .venv/bin/gatewatch lab heal"),
    }
    for action, sp in lab_sub.choices.items():
        sp.epilog = examples(*lab_examples[action])
        # also accepted after the action (gatewatch lab status --json); SUPPRESS keeps the parent's value otherwise
        sp.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    p.set_defaults(func=run)


def lab_available() -> bool:
    """Is the ``lab`` package importable? In a checkout it sits beside ``layers/``: an editable install finds it
    there even when the console script runs from elsewhere. An installed wheel has no lab."""
    import importlib.util
    from pathlib import Path

    if importlib.util.find_spec("lab") is not None:
        return True
    import gatewatch

    checkout = Path(gatewatch.__file__).resolve().parents[3]
    if (checkout / "lab" / "manager.py").is_file() and (checkout / "layers" / "gatewatch").is_dir():
        sys.path.append(str(checkout))
        return importlib.util.find_spec("lab") is not None
    return False


def _topology_names() -> list[str]:
    if not lab_available():
        return []
    from lab.topology import TOPOLOGIES

    return list(TOPOLOGIES)


def _fault_names() -> list[str]:
    if not lab_available():
        return []
    from lab.faults import FAULTS

    return list(FAULTS)


def run(args) -> int:
    if not lab_available():
        print(f"gatewatch lab: {NO_LAB}", file=sys.stderr)
        return EXIT_USAGE
    from lab.manager import Lab, LabError

    action = args.lab_command
    if action == "faults":
        return _print_faults(args.json)
    if action == "demo":
        from lab.demo import run_demo

        try:
            if args.topology == "all":
                from lab.demo import run_demo_all

                return run_demo_all(args.faults or None, dir=args.dir, keep=args.keep)
            return run_demo(args.faults or None, lab=Lab(dir=args.dir, topology=args.topology), keep=args.keep)
        except LabError as exc:
            print(f"gatewatch lab demo: {exc}", file=sys.stderr)
            return exc.exit_code
    cloudflare = (not args.plain_edge) if action == "up" else None
    lab = Lab(dir=args.dir, cloudflare=cloudflare, topology=getattr(args, "topology", None))
    try:
        if action == "up":
            with progress("bringing the lab up (nginx, the backend, the database, the edge)"):
                status = lab.up(wait_s=args.wait)
            _out(args.json, status, _status_text(status, headline="lab is up"))
            return EXIT_OK
        if action == "down":
            lab.down()
            _out(args.json, {"down": True, "dir": str(lab.paths.root)}, f"lab is down (data kept in {lab.paths.root})")
            return EXIT_OK
        if action == "status":
            status = lab.status()
            healthy = bool(status["health"]) and status["health"]["status"] == 200
            _out(args.json, status, _status_text(status, headline="lab status"))
            return EXIT_OK if healthy and not status["faults"] else EXIT_DOWN
        if action == "inject":
            lab.inject(args.fault)
            doc = {"injected": args.fault, "expect": _fault(args.fault).expect}
            _out(args.json, doc, f"injected {args.fault} (the diagnosis should say: {doc['expect']})")
            return EXIT_OK
        if action == "heal":
            lab.heal(args.fault)
            what = args.fault or "everything"
            _out(args.json, {"healed": what}, f"healed {what}; the site answers healthy again")
            return EXIT_OK
    except LabError as exc:
        if args.json:
            print(json.dumps({"error": str(exc)}))
        print(f"gatewatch lab {action}: {exc}", file=sys.stderr)
        return exc.exit_code
    return EXIT_USAGE


def _fault(name: str):
    from lab.faults import FAULTS

    return FAULTS[name]


def _print_faults(as_json: bool) -> int:
    from lab.faults import FAULTS
    from lab.topology import TOPOLOGIES

    rows = [{"name": f.name, "expect": f.expect, "description": f.description, "proves": f.proves,
             "topologies": [t for t, topo in TOPOLOGIES.items() if f.applies_to(topo)]} for f in FAULTS.values()]
    width = max(len(r["name"]) for r in rows)
    text = "\n".join(f"{r['name']:<{width}}  -> {r['expect']}\n{'':<{width}}     {r['description']}\n"
                     f"{'':<{width}}     topologies: {', '.join(r['topologies'])}" for r in rows)
    _out(as_json, rows, text)
    return EXIT_OK


def _out(as_json: bool, doc: Any, text: str) -> None:
    print(json.dumps(doc, indent=2, default=str) if as_json else text)


def _status_text(s: dict[str, Any], headline: str) -> str:
    progs = ", ".join(f"{name} {p['state']}" for name, p in s["programs"].items()) or "(supervisord not running)"
    edge = s["edge"]
    health = s["health"]
    topo = s.get("topology") or {}
    lines = [
        f"{headline}: {s['dir']} (network namespace {s['netns']['name']}: "
        f"{'present' if s['netns']['exists'] else 'absent'})",
        f"  topology  {topo.get('name', 'classic')}: {topo.get('description', '')}",
        f"  programs  {progs}",
        f"  edge      http://{edge['listen']} ({edge['mode']}, {'running' if edge['running'] else 'not running'})"
        " -> nginx 127.0.0.1:80 inside the namespace",
        f"  health    {health['status'] if health else 'n/a'}",
        f"  faults    {', '.join(s['faults']) or 'none'}",
        f"  targets   {s['targets']}",
        f"  logs      app {s['logs']['app']}, nginx {s['logs']['nginx_error']}, edge {s['logs']['edge']}",
        f"  control   supervisorctl -c {s['supervisord']['config']} status",
        "  try       curl -H 'Host: backend.lab.test' http://127.0.0.1:18080/api/v1/health",
    ]
    return "\n".join(lines)
