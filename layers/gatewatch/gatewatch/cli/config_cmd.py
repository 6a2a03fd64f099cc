"""``gatewatch config check|schema|init|push``: validate a targets file, print its JSON Schema, write a starter file,
upload it to an AWS deployment."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from gatewatch.cli import EXIT_OK, EXIT_USAGE
from gatewatch.cli.output import error, examples
from gatewatch.config import ConfigError, load_config, load_config_text


def register(sub) -> None:
    p = sub.add_parser(
        "config", help="check, describe or start a targets file",
        epilog=examples("gatewatch config init https://example.com/ -o targets.yaml",
                        "gatewatch config check targets.yaml"),
    )
    inner = p.add_subparsers(dest="config_command", metavar="ACTION")
    inner.required = True
    check = inner.add_parser(
        "check", help="validate a targets file; exit 2 listing every problem as FILE:LINE:COLUMN: path: message",
        epilog=examples("gatewatch config check targets.yaml",
                        "gatewatch config check --no-env examples/targets.yaml   # ${VARS} need not be set"),
    )
    check.add_argument("file", help="the targets YAML file")
    check.add_argument(
        "--no-env", action="store_true", help="do not require the ${ENV_VAR} header references to be set"
    )
    check.set_defaults(func=run_check)

    schema = inner.add_parser(
        "schema", help="print the JSON Schema of targets files (for editors: yaml-language-server, VS Code)",
        epilog=examples("gatewatch config schema > targets.schema.json",
                        "# then, first line of targets.yaml:  # yaml-language-server: $schema=targets.schema.json"),
    )
    schema.set_defaults(func=run_schema)

    init = inner.add_parser(
        "init", help="write a commented starter targets file, probing each URL once to fill in what it can",
        description="Write a starter targets file with one target per URL. Each URL is probed once (and its "
                    "/health): the status it answered becomes expect.status, a 200 from /health becomes the "
                    "health check, and Cloudflare in front is noted. Nothing else is sent anywhere.",
        epilog=examples("gatewatch config init https://example.com/ https://www.example.com/ -o targets.yaml",
                        "gatewatch config init --no-probe https://intranet.example/ -o -   # print it"),
    )
    init.add_argument("urls", nargs="+", metavar="URL", help="a public URL to watch (http:// or https://)")
    init.add_argument("-o", "--output", default="targets.yaml", metavar="FILE",
                      help="where to write it ('-' prints it; default targets.yaml; an existing file is kept "
                           "unless --force)")
    init.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    init.add_argument("--no-probe", action="store_true", help="write the file without probing the URLs")
    init.add_argument("--timeout", type=float, default=10.0, metavar="S", help="deadline of each probe (default 10)")
    init.set_defaults(func=run_init)

    push = inner.add_parser(
        "push", help="validate a targets file and upload it to an AWS deployment's targets bucket (your credentials)",
        description="Validate FILE, then upload it as the deployment's targets object (versioned, encrypted with "
                    "the stack's key). The functions pick it up within 5 minutes; a file that fails validation is "
                    "never uploaded. Needs s3:PutObject on the bucket and kms:GenerateDataKey on the stack's key.",
        epilog=examples("gatewatch config push targets.yaml --bucket BUCKET   # the stack's TargetsBucketName output",
                        "GATEWATCH_TARGETS_BUCKET=BUCKET gatewatch config push targets.yaml --region eu-west-1"),
    )
    push.add_argument("file", help="the targets YAML file")
    push.add_argument("--bucket", default=os.environ.get("GATEWATCH_TARGETS_BUCKET"),
                      help="the stack's TargetsBucketName output (default: $GATEWATCH_TARGETS_BUCKET)")
    push.add_argument("--key", default="targets.yaml", help="object key (the stack's TargetsKey; default targets.yaml)")
    push.add_argument("--region", help="AWS region of the deployment (default: AWS_REGION or your profile's region)")
    push.set_defaults(func=run_push)


def run_check(args) -> int:
    try:
        config = load_config(args.file, environ=None if args.no_env else os.environ)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_USAGE
    names = ", ".join(t.name for t in config.targets)
    print(f"{args.file}: ok ({len(config.targets)} target(s): {names})")
    return EXIT_OK


def schema_document() -> dict:
    """The JSON Schema of a targets file, straight from the pydantic models (so it cannot drift from them)."""
    from gatewatch.config.models import Config

    doc = Config.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "gatewatch targets file",
        "description": "Generated by `gatewatch config schema` from gatewatch's pydantic models.",
        **{k: v for k, v in doc.items() if k != "title"},
    }


def run_schema(args) -> int:
    print(json.dumps(schema_document(), indent=2))
    return EXIT_OK


def run_init(args) -> int:
    from gatewatch.config.models import _check_url
    from gatewatch.config.starter import observe, render

    for url in args.urls:
        try:
            _check_url(url)
        except ValueError as exc:
            return error("config init", f"URL {url}: {exc}")
    if args.timeout <= 0:
        return error("config init", f"--timeout must be more than 0 seconds (got {args.timeout:g})")
    out = None if args.output == "-" else Path(args.output)
    if out is not None:
        if out.exists() and not args.force:
            return error("config init", f"{out} exists", "keep it, choose another -o FILE, or add --force")
        if not out.parent.is_dir():
            return error("config init", f"directory {out.parent} does not exist", "create it first")
    observed = {}
    for url in args.urls:
        observed[url] = None if args.no_probe else observe(url, timeout_s=args.timeout)
        seen = observed[url]
        if seen is not None:
            what = f"answered {seen.status}" if seen.status is not None else f"no answer ({seen.reason})"
            health = f", /health {seen.health_status}" if seen.health_status is not None else ""
            edge = ", Cloudflare in front" if seen.cloudflare else ""
            print(f"probed {url}: {what}{health}{edge}", file=sys.stderr)
    text = render(args.urls, observed)
    load_config_text(text, source="(starter)")  # what we write must load; a ConfigError here is our bug
    if out is None:
        sys.stdout.write(text)
        return EXIT_OK
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out} ({len(args.urls)} target(s)); next: gatewatch config check {out}, then "
          f"gatewatch run --config {out} --every 60")
    return EXIT_OK


def run_push(args) -> int:
    from gatewatch.aws.targets_store import push
    from gatewatch.cli import awserrors

    if not args.bucket:
        return error("config push", "no bucket", "pass --bucket (the stack's TargetsBucketName output) or set "
                                                 "GATEWATCH_TARGETS_BUCKET")
    try:
        text = Path(args.file).read_text(encoding="utf-8")
    except OSError as exc:
        return error("config push", f"cannot read {args.file}: {exc.strerror or exc}")
    s3 = awserrors.client("s3", args.region)
    try:
        pushed = push(text, args.bucket, args.key, s3)
    except ConfigError as exc:
        print(exc.render().replace(f"s3://{args.bucket}/{args.key}", args.file), file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
        if code == "NoSuchBucket":
            return error("config push", f"bucket {args.bucket} not found",
                         "use the TargetsBucketName output of your stack (and its region: --region)")
        known = awserrors.known_error(exc, region=args.region)
        if known is None:
            raise
        raise known from None
    print(f"pushed {args.file} to s3://{pushed.bucket}/{pushed.key}: {pushed.targets} target(s), {pushed.size} B, "
          f"version {pushed.version_id or '(unversioned)'}; the functions use it within 5 minutes")
    return EXIT_OK
