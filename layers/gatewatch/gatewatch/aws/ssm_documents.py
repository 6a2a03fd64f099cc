"""Generate gatewatch's two SSM Command documents, and their copies inlined in infra/template.yaml.

* ``gatewatch-onbox``: writes the on-box checks zipapp (the package ``gatewatch/onbox/checks/`` built by
  ``gatewatch.onbox.bundle``; gzip + base64 in a quoted heredoc, unpacked by python3 itself) to a temp file and runs
  it with the host's python3 and ONE parameter, ``Params``, which SSM only accepts as ``b64:<base64>``: nothing but
  base64 ever reaches the shell. A plain-text script (``--script FILE``, tests) is embedded verbatim when it fits.
* ``gatewatch-remediation``: one catalogued action by NAME (``Action`` from a fixed list), a service manager from a
  fixed list, a service name and paths from safe alphabets (checked by SSM's allowedPattern and again by the
  script). Fixed commands only; ``nginx -t`` must pass before the proxy is started or reloaded.

``python -m gatewatch.aws.ssm_documents --write`` rewrites infra/ssm/*.json and the template's Content blocks;
``--check`` exits 1 when any of them is stale (a unit test does the same).
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

from gatewatch import hostpaths
from gatewatch.aws.template_schema import REPO_ROOT

CHECKS_SCRIPT = Path(__file__).resolve().parents[1] / "onbox" / "checks"  # the package: embedded as its zipapp
SSM_DIR = Path("infra") / "ssm"
TEMPLATE = Path("infra") / "template.yaml"
DOCUMENT_MAX_BYTES = 64 * 1024  # SSM's limit on a document's content
HEREDOC = "GATEWATCH_CHECKS_EOF"

PARAMS_PATTERN = r"^b64:[A-Za-z0-9+/=]{1,8000}$"
ACTIONS = ("restart_backend", "start_proxy", "reload_proxy")
MANAGERS = ("systemd", "supervisor")
SERVICE_OR_EMPTY_PATTERN = r"^([A-Za-z0-9_.@:][A-Za-z0-9_.@:-]{0,127})?$"
PATH_OR_EMPTY_PATTERN = r"^(/[A-Za-z0-9._/+-]{0,1023})?$"
NGINX_BIN_PATTERN = hostpaths.nginx_bin_pattern()  # exactly one of hostpaths.NGINX_BINARIES
ONBOX_TIMEOUT_S = 120
REMEDIATION_TIMEOUT_S = 180

# Which template resource holds which document (between "# BEGIN GENERATED <key>" and "# END GENERATED <key>").
DOCUMENTS = {"onbox": "gatewatch-onbox.json", "remediation": "gatewatch-remediation.json"}


class GenerationError(Exception):
    """The inputs cannot make a safe document (a script that would break out of its heredoc, a size overflow)."""


def _linux_step(name: str, timeout_s: int, lines: list[str]) -> dict[str, Any]:
    return {
        "action": "aws:runShellScript",
        "name": name,
        "precondition": {"StringEquals": ["platformType", "Linux"]},
        "inputs": {"timeoutSeconds": str(timeout_s), "runCommand": lines},
    }


def _text_embedding(script_text: str) -> list[str] | None:
    """The script verbatim through a quoted heredoc, or None when it cannot be embedded as plain text."""
    script_lines = script_text.replace("\r\n", "\n").rstrip("\n").split("\n")
    if HEREDOC in script_lines or "{{" in script_text or "}}" in script_text:
        return None  # it would end its heredoc early, or SSM would read '{{ x }}' as a parameter and rewrite it
    return [f"cat > \"$f\" <<'{HEREDOC}'", *script_lines, HEREDOC]


def _gzip_embedding(program: str | bytes) -> list[str]:
    """gzip + base64 in a quoted heredoc, unpacked by python3 itself: a third of the size, and only [A-Za-z0-9+/=]."""
    raw = program.encode("utf-8") if isinstance(program, str) else program
    packed = base64.b64encode(gzip.compress(raw, compresslevel=9, mtime=0)).decode("ascii")
    unpack = "import base64,gzip,sys; sys.stdout.buffer.write(gzip.decompress(base64.b64decode(sys.stdin.read())))"
    return [
        f"python3 -c '{unpack}' > \"$f\" <<'{HEREDOC}' || exit 1",
        *textwrap.wrap(packed, 1024),  # long lines: each line costs JSON quoting and indentation
        HEREDOC,
    ]


def onbox_document(script_text: str | bytes, embed: str = "auto") -> dict[str, Any]:
    """The on-box checks document for this program: a script's text, or a zipapp's bytes (always gzip).

    ``embed``: ``text`` (verbatim, readable in the console), ``gzip`` (compressed) or ``auto``: text when the
    document fits SSM's 64 KB and the text is safe to embed, else gzip.
    """
    if embed not in ("auto", "text", "gzip"):
        raise GenerationError(f"embed must be auto, text or gzip (got {embed!r})")
    is_text = isinstance(script_text, str)
    embedded = _text_embedding(script_text) if is_text and embed in ("auto", "text") else None
    if embedded is None and embed == "text":
        raise GenerationError(
            f"the checks script cannot be embedded as text: it contains '{{{{', '}}}}' or the line {HEREDOC}"
        )
    if embed == "auto" and embedded is not None:
        document = _onbox_document(embedded)
        if len(render(document, check=False).encode("utf-8")) <= DOCUMENT_MAX_BYTES:
            return document
        embedded = None
    return _onbox_document(embedded or _gzip_embedding(script_text))


def _onbox_document(embedded: list[str]) -> dict[str, Any]:
    lines = [
        "#!/bin/sh",
        "# gatewatch on-box checks: read-only, bounded; prints one JSON document",
        "set -u",
        "if ! command -v python3 >/dev/null 2>&1; then",
        '  echo "gatewatch: python3 is not installed on this host" >&2; exit 127',
        "fi",
        'f=$(mktemp "${TMPDIR:-/tmp}/gatewatch-checks.XXXXXX") || exit 1',
        "trap 'rm -f \"$f\"' EXIT",
        *embedded,
        "python3 \"$f\" '{{ Params }}'",
    ]
    return {
        "schemaVersion": "2.2",
        "description": "gatewatch on-box checks (read-only): service, port, local health, nginx, logs, firewall, "
        "resources. Generated by gatewatch.aws.ssm_documents; do not edit.",
        "parameters": {
            "Params": {
                "type": "String",
                "description": "b64: followed by base64 of the checks' JSON parameters",
                "allowedPattern": PARAMS_PATTERN,
            }
        },
        "mainSteps": [_linux_step("gatewatchOnboxChecks", ONBOX_TIMEOUT_S, lines)],
    }


REMEDIATION_SCRIPT = r"""#!/bin/sh
# gatewatch remediation: one catalogued action, fixed commands, values checked again here.
set -u
action='{{ Action }}'
manager='{{ ServiceManager }}'
service='{{ Service }}'
proxy_service='{{ ProxyService }}'
supervisor_conf='{{ SupervisorConfig }}'
nginx_bin='{{ NginxBin }}'
nginx_conf='{{ NginxConf }}'
nginx_prefix='{{ NginxPrefix }}'
say() { echo "gatewatch-remediation: $*"; }
refuse() { echo "gatewatch-remediation: refused: $*" >&2; exit 2; }
case "$action" in restart_backend|start_proxy|reload_proxy) ;; *) refuse "unknown action" ;; esac
case "$manager" in systemd|supervisor) ;; *) refuse "unknown service manager" ;; esac
case "$action" in restart_backend) unit=$service ;; *) unit=$proxy_service ;; esac
case "$unit" in ''|-*|*[!A-Za-z0-9_.@:-]*) refuse "missing or unsafe service name for $action" ;; esac
for p in "$supervisor_conf" "$nginx_conf" "$nginx_prefix"; do
  case "$p" in
    '') ;; *..*|*[!A-Za-z0-9._/+-]*) refuse "unsafe path" ;; /*) ;; *) refuse "path must be absolute" ;;
  esac
done
case "$nginx_bin" in
  @NGINX_BINARIES@) ;; *) refuse "nginx_bin must be one of @NGINX_BINARIES@" ;;
esac
nginx_test() {
  set -- -t
  if [ -n "$nginx_prefix" ]; then set -- "$@" -p "$nginx_prefix"; fi
  if [ -n "$nginx_conf" ]; then set -- "$@" -c "$nginx_conf"; fi
  if ! "$nginx_bin" "$@" 2>&1; then
    echo "gatewatch-remediation: nginx -t failed: not running $action on a broken configuration" >&2
    exit 3
  fi
}
supervisor() {
  if [ -n "$supervisor_conf" ]; then supervisorctl -c "$supervisor_conf" "$@"; else supervisorctl "$@"; fi
}
manage() {
  say "$manager $1 $unit"
  case "$manager" in
    systemd) systemctl "$1" -- "$unit" ;;
    supervisor)
      if [ "$1" = reload ]; then supervisor signal HUP "$unit"; else supervisor "$1" "$unit"; fi ;;
  esac
}
status() {
  case "$manager" in
    systemd) systemctl is-active -- "$unit" ;;
    supervisor) supervisor status "$unit" ;;
  esac
}
case "$action" in
  restart_backend) manage restart ;;
  start_proxy) nginx_test; manage start ;;
  reload_proxy) nginx_test; manage reload ;;
esac
rc=$?
status || true
if [ "$rc" -ne 0 ]; then echo "gatewatch-remediation: $action failed (exit $rc)" >&2; fi
exit "$rc"
"""


def _remediation_script() -> str:
    """The script with the nginx allow-list filled in (a shell case pattern: exact strings, no globbing)."""
    for b in hostpaths.NGINX_BINARIES:
        if not re.fullmatch(r"[A-Za-z0-9._/-]+", b):
            raise GenerationError(f"{b!r} cannot be a shell case pattern")
    return REMEDIATION_SCRIPT.replace("@NGINX_BINARIES@", "|".join(hostpaths.NGINX_BINARIES))


def remediation_document() -> dict[str, Any]:
    return {
        "schemaVersion": "2.2",
        "description": "gatewatch remediation: restart the backend, or start/reload the proxy after nginx -t "
        "passes, through systemd or supervisor. Generated by gatewatch.aws.ssm_documents; do not edit.",
        "parameters": {
            "Action": {"type": "String", "description": "the catalogued action", "allowedValues": list(ACTIONS)},
            "ServiceManager": {"type": "String", "description": "how services are managed on the host",
                               "allowedValues": list(MANAGERS), "default": "systemd"},
            "Service": {"type": "String", "description": "the backend's unit or supervisor program (restart_backend)",
                        "allowedPattern": SERVICE_OR_EMPTY_PATTERN, "default": ""},
            "ProxyService": {"type": "String", "description": "the proxy's unit or supervisor program",
                             "allowedPattern": SERVICE_OR_EMPTY_PATTERN, "default": "nginx"},
            "SupervisorConfig": {"type": "String", "description": "supervisord.conf path (supervisor only)",
                                 "allowedPattern": PATH_OR_EMPTY_PATTERN, "default": ""},
            "NginxBin": {"type": "String", "description": "nginx binary for the configuration test",
                         "allowedPattern": NGINX_BIN_PATTERN, "default": "nginx"},
            "NginxConf": {"type": "String", "description": "nginx -c path, or empty for the default",
                          "allowedPattern": PATH_OR_EMPTY_PATTERN, "default": ""},
            "NginxPrefix": {"type": "String", "description": "nginx -p prefix, or empty for the default",
                            "allowedPattern": PATH_OR_EMPTY_PATTERN, "default": ""},
        },
        "mainSteps": [
            _linux_step("gatewatchRemediation", REMEDIATION_TIMEOUT_S, _remediation_script().rstrip("\n").split("\n"))
        ],
    }


def render(document: dict[str, Any], check: bool = True) -> str:
    text = json.dumps(document, indent=2, ensure_ascii=True) + "\n"
    if check and len(text.encode("utf-8")) > DOCUMENT_MAX_BYTES:
        raise GenerationError(f"document is {len(text)} bytes; SSM allows {DOCUMENT_MAX_BYTES}")
    return text


def onbox_program(script: Path = CHECKS_SCRIPT) -> str | bytes:
    """The package directory as its zipapp's bytes; a single script file as its text."""
    if script.is_dir():
        from gatewatch.onbox.bundle import zipapp_bytes

        return zipapp_bytes(script)
    if not script.is_file():
        raise GenerationError(f"the on-box checks script {script} does not exist yet")
    return script.read_text(encoding="utf-8")


def documents(script: Path = CHECKS_SCRIPT) -> dict[str, dict[str, Any]]:
    return {"onbox": onbox_document(onbox_program(script)), "remediation": remediation_document()}


def inline_in_template(template_text: str, docs: dict[str, dict[str, Any]]) -> str:
    """Replace each generated Content block (JSON is YAML: a flow mapping indented under ``Content:``)."""
    for key, document in docs.items():
        pattern = re.compile(
            rf"^(?P<indent>[ \t]*)# BEGIN GENERATED {key}\n.*?^(?P=indent)# END GENERATED {key}$", re.S | re.M
        )
        match = pattern.search(template_text)
        if not match:
            raise GenerationError(f"{TEMPLATE} has no '# BEGIN GENERATED {key}' ... '# END GENERATED {key}' block")
        indent = match.group("indent")
        body = "\n".join(indent + line for line in json.dumps(document, indent=2, ensure_ascii=True).split("\n"))
        block = f"{indent}# BEGIN GENERATED {key}\n{body}\n{indent}# END GENERATED {key}"
        template_text = template_text[: match.start()] + block + template_text[match.end():]
    return template_text


def expected_files(root: Path = REPO_ROOT, script: Path = CHECKS_SCRIPT) -> dict[Path, str]:
    docs = documents(script)
    files = {root / SSM_DIR / DOCUMENTS[key]: render(doc) for key, doc in docs.items()}
    files[root / TEMPLATE] = inline_in_template((root / TEMPLATE).read_text(encoding="utf-8"), docs)
    return files


def stale_files(root: Path = REPO_ROOT, script: Path = CHECKS_SCRIPT) -> list[Path]:
    return [p for p, text in expected_files(root, script).items()
            if not p.is_file() or p.read_text(encoding="utf-8") != text]


def write(root: Path = REPO_ROOT, script: Path = CHECKS_SCRIPT) -> list[Path]:
    changed = []
    for path, text in expected_files(root, script).items():
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gatewatch.aws.ssm_documents", description=__doc__.split("\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help="write infra/ssm/*.json and the template blocks")
    action.add_argument("--check", action="store_true", help="exit 1 when a generated file is stale")
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="repository root (default: this checkout)")
    parser.add_argument("--script", type=Path, default=CHECKS_SCRIPT, help="the checks package or a script")
    args = parser.parse_args(argv)
    try:
        if args.check:
            stale = stale_files(args.root, args.script)
            for path in stale:
                print(f"stale: {path} (run: python -m gatewatch.aws.ssm_documents --write)", file=sys.stderr)
            return 1 if stale else 0
        for path in write(args.root, args.script):
            print(f"wrote {path}")
        return 0
    except (GenerationError, OSError) as exc:
        print(f"ssm_documents: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
