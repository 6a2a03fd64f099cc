"""``gatewatch probe``: probe one URL, the targets of a config file, or a built-in loopback demo.

Exit codes: 0 every target up (degraded counts as up), 1 any target down, 2 bad usage or config.
``--json`` prints a ProbeResult (URL mode) or a JSON list of TargetResults (config and demo modes).
"""

from __future__ import annotations

import json
import os
import sys

from pydantic import ValidationError

from gatewatch.cli import EXIT_DOWN, EXIT_OK, EXIT_USAGE
from gatewatch.cli.output import examples, progress
from gatewatch.config import ConfigError, Target, load_config
from gatewatch.probe import probe_targets, probe_url
from gatewatch.probe.table import render

URL_ONLY = {"method": "--method", "timeout": "--timeout", "header": "--header", "insecure": "--insecure",
            "ca_file": "--ca-file", "resolve_to": "--resolve-to"}


def register(sub) -> None:
    p = sub.add_parser(
        "probe",
        help="probe a URL or the targets of a config file",
        description="Probe a URL once, or every target of a config file (with confirmation retries), and show "
                    "each phase: DNS, connect, TLS, first byte, transfer, the certificate and Cloudflare's part. "
                    "Exit 0 when every target is up (degraded counts as up), 1 when any is down.",
        epilog=examples("gatewatch probe --demo                         # a loopback demo: one route up, one down",
                        "gatewatch probe https://example.com/health --json"),
    )
    p.add_argument("url", nargs="?", help="the URL to probe (http:// or https://)")
    p.add_argument("--config", metavar="FILE", help="probe the targets of this targets file")
    p.add_argument("--target", metavar="NAME", help="with --config: only this target")
    p.add_argument("--demo", action="store_true", help="probe a built-in loopback demo site (healthy and failing)")
    p.add_argument("--method", type=str.upper, help="HTTP method (URL mode; default GET)")
    p.add_argument("--timeout", type=float, metavar="S",
                   help="total deadline in seconds (URL mode; default 10; in a file: timeout_s per target)")
    p.add_argument("--header", action="append", metavar="'K: V'", help="extra request header (URL mode; repeatable)")
    p.add_argument("--insecure", action="store_true", default=None,
                   help="do not verify the TLS certificate (URL mode)")
    p.add_argument("--ca-file", metavar="PEM", help="trust this CA bundle instead of the system CAs (URL mode)")
    p.add_argument("--resolve-to", metavar="IP", help="connect to this IP; Host and SNI stay the URL's (URL mode)")
    p.add_argument("--json", action="store_true", help="print the result documents as JSON (fields: docs/cli.md)")
    p.set_defaults(func=run)


def run(args) -> int:
    modes = sum(bool(x) for x in (args.url, args.config, args.demo))
    if modes != 1:
        return _usage("give exactly one of URL, --config FILE or --demo")
    if args.target and not args.config:
        return _usage("--target needs --config FILE")
    if not args.url:
        given = [flag for dest, flag in URL_ONLY.items() if getattr(args, dest) is not None]
        if given:
            where = "set them per target in the file (timeout_s, method, headers, verify_tls, tls_ca_file, " \
                    "resolve_to)" if args.config else "the demo site needs none"
            return _usage(f"{', '.join(given)} appl{'ies' if len(given) == 1 else 'y'} to URL mode only; {where}")
    if args.demo:
        return _demo(args)
    if args.config:
        return _config(args)
    return _url(args)


def _url(args) -> int:
    headers = {}
    for raw in args.header or []:
        name, sep, value = raw.partition(":")
        if not sep or not name.strip():
            return _usage(f"--header {raw!r} must look like 'Name: value'")
        headers[name.strip()] = value.strip()
    try:
        target = Target.model_validate({
            "name": "url", "url": args.url, "method": args.method or "GET", "headers": headers,
            "timeout_s": 10.0 if args.timeout is None else args.timeout, "verify_tls": not args.insecure,
            "tls_ca_file": os.path.abspath(args.ca_file) if args.ca_file else None, "resolve_to": args.resolve_to,
        })
    except ValidationError as exc:
        problems = "; ".join(_option(e) for e in exc.errors())
        return _usage(problems)
    result = probe_url(
        target.url, method=target.method, headers=dict(target.headers), timeout_s=target.timeout_s,
        verify_tls=target.verify_tls, ca_file=target.tls_ca_file, resolve_to=target.resolve_to,
    )
    print(json.dumps(result.to_dict(), indent=2) if args.json else render([result]))
    return EXIT_OK if result.ok else EXIT_DOWN


def _config(args) -> int:
    try:
        config = load_config(args.config, environ=os.environ)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_USAGE
    targets = config.targets
    if args.target:
        targets = [t for t in targets if t.name == args.target]
        if not targets:
            names = ", ".join(t.name for t in config.targets)
            return _usage(f"no target named {args.target!r} in {args.config} (targets: {names})")
    with progress(f"probing {len(targets)} target(s)"):
        results = probe_targets(targets, concurrency=config.settings.concurrency)
    _print_rounds(results, args.json)
    return EXIT_OK if all(r.ok for r in results) else EXIT_DOWN


def _demo(args) -> int:
    """Exit 0 when the demo shows what it should (the healthy route up, the failing one down), else 1."""
    from gatewatch.probe.demo import DemoSite

    with DemoSite() as site:
        if not args.json:
            print(f"demo site on http://127.0.0.1:{site.port} (loopback only)")
        results = probe_targets(site.targets())
    _print_rounds(results, args.json)
    as_expected = [r.status for r in results] == ["up", "down"]
    if not args.json:
        print("demo: the healthy route is up and the failing route is down, as expected" if as_expected
              else "demo: unexpected results")
    return EXIT_OK if as_expected else EXIT_DOWN


def _print_rounds(results, as_json: bool) -> None:
    if as_json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        print(render(results))


OPTION_OF = {"url": "URL", "method": "--method", "timeout_s": "--timeout", "headers": "--header",
             "tls_ca_file": "--ca-file", "resolve_to": "--resolve-to"}


def _option(err) -> str:
    loc = [str(p) for p in err.get("loc", ())]
    name = OPTION_OF.get(loc[0], loc[0]) if loc else "argument"
    msg = str((err.get("ctx") or {}).get("error") or err.get("msg"))
    return f"{name}: {msg}"


def _usage(message: str) -> int:
    print(f"gatewatch probe: error: {message}", file=sys.stderr)
    return EXIT_USAGE
