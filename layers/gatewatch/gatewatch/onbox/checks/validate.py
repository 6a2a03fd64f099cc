"""Parameters: validated again here, because the checks may be handed anything by whoever runs them."""

# Runs on the host's python 3.8+ (see __init__.py).
# ruff: noqa: UP031, UP041
from __future__ import annotations

import base64
import json
import re
import socket

from .allowlist import NGINX_BIN_PATHS, log_root_problem, nginx_bin_allowed
from .common import _short

# ---------------------------------------------------------------------------------------------------------------
# Parameters: validated again here, because this script may be handed anything by whoever runs it.

# Every pattern that guards a value is used with fullmatch: re.match(r"...$") accepts a trailing newline.
SERVICE_RE = re.compile(r"[A-Za-z0-9_.@:][A-Za-z0-9_.@:-]{0,127}")
PATH_RE = re.compile(r"/[A-Za-z0-9._/+-]{0,4095}")
PROCESS_MATCH_RE = re.compile(r"[A-Za-z0-9 _./:=@-]{1,200}")
URL_PATH_RE = re.compile(r"/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]{0,2047}")
HOSTNAME_RE = re.compile(r"[A-Za-z0-9_.:\[\]-]{1,253}")  # _ : DNS names such as my_host.example
DB_NAME_RE = re.compile(r"[A-Za-z0-9_.$-]{1,63}")
MAX_ARGUMENT_CHARS = 200_000  # the parameters are small; SSM's own limit on the word is 8,000 base64 characters
MAX_JSON_DEPTH = 8
DB_KINDS = ("postgresql", "mysql")
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
MANAGERS = ("systemd", "supervisor", "command")


class ParamError(Exception):
    def __init__(self, field: str, message: str):
        super().__init__("%s: %s" % (field, message))
        self.field = field
        self.message = message


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _ip_or_localhost(v: str) -> bool:
    if v == "localhost":
        return True
    for fam in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(fam, v)
            return True
        except (OSError, ValueError):
            pass
    return False


def _safe_path(v) -> bool:
    return isinstance(v, str) and bool(PATH_RE.fullmatch(v)) and "/../" not in v + "/" and not v.endswith("/..")


def _opt(kind):
    def check(v):
        return v is None or kind(v)

    return check


# name -> (default, predicate, message shown when the predicate fails)
PARAM_SPEC = {
    "service": (None, _opt(lambda v: isinstance(v, str) and bool(SERVICE_RE.fullmatch(v))),
                "must be a service name of letters, digits and . _ @ : - not starting with '-'"),
    "service_manager": ("systemd", lambda v: v in MANAGERS, "must be one of systemd, supervisor, command"),
    "supervisor_config": (None, _opt(_safe_path), "must be an absolute path of safe characters"),
    "process_match": (None, _opt(lambda v: isinstance(v, str) and bool(PROCESS_MATCH_RE.fullmatch(v))),
                      "must be plain text of letters, digits, space and _ . / : = @ -"),
    "backend_host": ("127.0.0.1", lambda v: isinstance(v, str) and _ip_or_localhost(v),
                     "must be an IP address or localhost"),
    "backend_port": (8000, lambda v: _is_int(v) and 1 <= v <= 65535, "must be an integer from 1 to 65535"),
    "health_path": ("/health", lambda v: isinstance(v, str) and bool(URL_PATH_RE.fullmatch(v)),
                    "must be a URL path starting with '/'"),
    "nginx_port": (80, lambda v: _is_int(v) and 1 <= v <= 65535, "must be an integer from 1 to 65535"),
    "nginx_bin": ("nginx", lambda v: isinstance(v, str) and nginx_bin_allowed(v),
                  "must be nginx or one of " + ", ".join(NGINX_BIN_PATHS)),
    "nginx_conf": (None, _opt(_safe_path), "must be an absolute path of safe characters"),
    "nginx_prefix": (None, _opt(_safe_path), "must be an absolute path of safe characters"),
    "nginx_error_log": ("/var/log/nginx/error.log", _safe_path, "must be an absolute path of safe characters"),
    "app_log": (None, _opt(_safe_path), "must be an absolute path of safe characters"),
    "log_window_minutes": (15, lambda v: _is_int(v) and 1 <= v <= 1440, "must be an integer from 1 to 1440"),
    "extra_paths": ([], lambda v: isinstance(v, list) and len(v) <= 20 and all(_safe_path(p) for p in v),
                    "must be a list of at most 20 absolute paths of safe characters"),
    "database": (None, _opt(lambda v: isinstance(v, dict) and set(v) <= {"host", "port", "kind", "name", "user"}
                            and isinstance(v.get("host", "127.0.0.1"), str)
                            and bool(HOSTNAME_RE.fullmatch(v.get("host", "127.0.0.1")))
                            and _is_int(v.get("port", 5432)) and 1 <= v.get("port", 5432) <= 65535
                            and v.get("kind") in (None,) + DB_KINDS
                            and all(v.get(k) is None or (isinstance(v[k], str) and bool(DB_NAME_RE.fullmatch(v[k])))
                                    for k in ("name", "user"))),
                 "must be an object {host: name or IP, port: 1-65535, kind: postgresql|mysql, name, user}"),
    "log_roots": ([], lambda v: isinstance(v, list) and len(v) <= 8 and all(
        _safe_path(r) and log_root_problem(r) is None for r in v),
        "must be a list of at most 8 absolute directories outside the system trees (/etc, /root, /home, /usr...)"),
    "backend_socket": (None, _opt(lambda v: _safe_path(v) and len(v) <= 107),
                       "must be an absolute path of safe characters, at most 107 characters (a unix socket)"),
    "endpoint_path": ("/", lambda v: isinstance(v, str) and bool(URL_PATH_RE.fullmatch(v)),
                      "must be a URL path (and query) starting with '/'"),
    "endpoint_method": ("GET", lambda v: v in METHODS, "must be one of " + ", ".join(METHODS)),
    "endpoint_body": (None, _opt(lambda v: isinstance(v, str) and len(v) <= 65536),
                      "must be a string of at most 65536 characters"),
    "public_host": (None, _opt(lambda v: isinstance(v, str) and bool(HOSTNAME_RE.fullmatch(v))),
                    "must be a host name such as api.example.com"),
    "expect_status": (None, _opt(lambda v: isinstance(v, list) and 0 < len(v) <= 500
                                 and all(_is_int(s) and 100 <= s <= 599 for s in v)),
                      "must be a list of HTTP status codes from 100 to 599"),
}


def bounded_json(text: str, max_chars: int, max_depth: int):
    """json.loads with a size and nesting bound (ValueError beyond them): deep nesting raises RecursionError."""
    if len(text) > max_chars:
        raise ValueError("more than %d characters" % max_chars)
    depth, deepest, in_str, esc = 0, 0, False, False
    for ch in text:  # count brackets outside strings before the parser recurses into them
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > max_depth:
                raise ValueError("nested deeper than %d levels" % max_depth)
        elif ch in "]}":
            depth -= 1
    return json.loads(text)


def decode_argument(arg: str) -> dict:
    """The single argument: a JSON object, or ``b64:`` + base64 of one (so a shell never sees quotes)."""
    if len(arg) > MAX_ARGUMENT_CHARS:
        raise ParamError("(argument)", "longer than %d characters" % MAX_ARGUMENT_CHARS)
    text = arg
    if arg.startswith("b64:"):
        try:
            text = base64.b64decode(arg[4:].encode("ascii"), validate=True).decode("utf-8")
        except (ValueError, UnicodeError) as exc:
            raise ParamError("(argument)", "not valid base64 after 'b64:' (%s)" % exc) from None
    try:
        data = bounded_json(text, MAX_ARGUMENT_CHARS, MAX_JSON_DEPTH)
    except (ValueError, RecursionError) as exc:
        raise ParamError("(argument)", "not valid JSON (%s)" % exc) from None
    if not isinstance(data, dict):
        raise ParamError("(argument)", "must be a JSON object")
    return data


def validate_params(raw: dict) -> dict:
    unknown = sorted(set(raw) - set(PARAM_SPEC))
    if unknown:
        raise ParamError(unknown[0], "unknown parameter (known: %s)" % ", ".join(sorted(PARAM_SPEC)))
    params = {}
    for name, (default, pred, message) in PARAM_SPEC.items():
        value = raw.get(name, default)
        if not pred(value):
            raise ParamError(name, "%s (got %s)" % (message, _short(json.dumps(value), 80)))
        params[name] = value
    if params["service_manager"] == "supervisor" and not params["service"]:
        raise ParamError("service", "service_manager supervisor needs service: the supervisor program name")
    if params["database"] is not None:
        db = params["database"]
        port = db.get("port", 5432)
        params["database"] = {"host": db.get("host", "127.0.0.1"), "port": port,
                              "kind": db.get("kind") or ("mysql" if port in (3306, 3307) else "postgresql"),
                              "name": db.get("name"), "user": db.get("user")}
    return params
