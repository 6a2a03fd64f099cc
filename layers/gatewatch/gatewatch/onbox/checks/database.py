"""The database: what the health body says, and whether the configured address accepts TCP."""

# Runs on the host's python 3.8+ (see __init__.py).
# ruff: noqa: UP031, UP041
from __future__ import annotations

import json
import socket
import time

from .common import DB_CONNECT_TIMEOUT_S, FAIL, OK, UNKNOWN, _errtext, _short
from .registry import check, result

HEALTHY_DB_WORDS = ("connected", "ok", "up", "healthy", "true", "available", "ready")


@check("database")
def check_database(ctx):
    p = ctx.p
    value = {"from_health": None, "tcp": None}
    evidence = []
    verdicts = []
    db = p["database"]
    if db:
        start = time.monotonic()
        tcp = {"host": db["host"], "port": db["port"], "reachable": False, "error": None}
        try:
            sock = socket.create_connection((db["host"], db["port"]),
                                            timeout=max(0.1, min(DB_CONNECT_TIMEOUT_S, ctx.remaining() - 0.3)))
            sock.close()
            tcp["reachable"] = True
            tcp["connect_ms"] = round((time.monotonic() - start) * 1000.0, 1)
        except socket.timeout:
            tcp["error"] = "connect timed out"
        except OSError as exc:
            tcp["error"] = _errtext(exc)
        value["tcp"] = tcp
        verdicts.append(tcp["reachable"])
        evidence.append("tcp %s:%d: %s" % (db["host"], db["port"], "reachable" if tcp["reachable"] else tcp["error"]))
    health = ctx.wait_for("local_health", reserve_s=0.5)
    body = ((health or {}).get("value") or {}).get("json")
    if isinstance(body, dict):
        for key in ("database", "db", "postgres", "postgresql"):
            if key in body:
                raw = body[key]
                if isinstance(raw, dict):
                    raw = raw.get("status", raw.get("state", json.dumps(raw)))
                value["from_health"] = _short(str(raw).lower() if isinstance(raw, bool) else str(raw), 100)
                verdicts.append(value["from_health"].lower() in HEALTHY_DB_WORDS)
                evidence.append("health says database: %s" % value["from_health"])
                break
    if not verdicts:
        return result(UNKNOWN, value, evidence, "no database address configured and none in the health body")
    return result(OK if all(verdicts) else FAIL, value, evidence)
