"""The database: a real, read-only protocol handshake (PostgreSQL or MySQL/MariaDB), and what the health body says.

The handshake never sends a password and never runs a query: PostgreSQL gets a StartupMessage and, when the server
lets us in without a password, a Terminate; MySQL's greeting is read and, with a configured user, a login with an
empty password is tried, then COM_QUIT. What it tells apart: refused, timeout, too_many_connections, auth_failed,
unknown_database, not_accepting (starting or shutting down), with the server's own message quoted.
"""

# Runs on the host's python 3.8+ (see __init__.py).
# ruff: noqa: UP031, UP041
from __future__ import annotations

import json
import socket
import struct
import time

from .common import DB_CONNECT_TIMEOUT_S, FAIL, OK, UNKNOWN, _errtext, _short
from .registry import check, result

HEALTHY_DB_WORDS = ("connected", "ok", "up", "healthy", "true", "available", "ready")
MAX_PACKET = 65536
PG_ERRORS = {"53300": "too_many_connections", "3D000": "unknown_database", "28P01": "auth_failed",
             "28000": "auth_failed", "57P03": "not_accepting", "57P01": "not_accepting"}
MYSQL_ERRORS = {1040: "too_many_connections", 1203: "too_many_connections", 1226: "too_many_connections",
                1045: "auth_failed", 1130: "auth_failed", 1129: "host_blocked", 1049: "unknown_database",
                1044: "auth_failed", 1053: "not_accepting"}
# Conditions in which the database cannot serve the app (an auth request we did not answer is not one).
FAILING = ("refused", "timeout", "too_many_connections", "auth_failed", "unknown_database", "not_accepting",
           "host_blocked", "unreachable", "protocol")


class _Conn:
    def __init__(self, sock, deadline: float):
        self.sock, self.deadline, self.buf = sock, deadline, b""

    def read(self, n: int) -> bytes:
        while len(self.buf) < n:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout()
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def _pg_fields(payload: bytes) -> dict:
    fields = {}
    for part in payload.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode("utf-8", "replace")
    return fields


def postgres_handshake(conn: _Conn, user: str, database: str, quit: bool = True) -> dict:
    """``quit``: say goodbye once let in (a test holding a slot passes False)."""
    out = {"error": None, "message": None, "code": None, "auth": None, "server_version": None}
    params = b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in
                      (("user", user), ("database", database), ("application_name", "gatewatch-onbox"))) + b"\0"
    conn.sock.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
    while True:
        kind = conn.read(1)
        length = struct.unpack("!i", conn.read(4))[0]
        if length < 4 or length > MAX_PACKET:
            out.update(error="protocol", message="not a PostgreSQL server (message length %d)" % length)
            return out
        payload = conn.read(length - 4)
        if kind == b"E":
            fields = _pg_fields(payload)
            out.update(code=fields.get("C"), message=_short("%s: %s" % (fields.get("S", "ERROR"), fields.get("M", "")),
                                                               300))
            out["error"] = PG_ERRORS.get(fields.get("C") or "", "error")
            return out
        if kind == b"R":
            code = struct.unpack("!i", payload[:4])[0]
            if code != 0:
                out["auth"] = "required"  # the server wants a password: it is up and has a slot for us
                return out
            out["auth"] = "ok"
        elif kind == b"S":
            name, _, rest = payload.partition(b"\0")
            if name == b"server_version":
                out["server_version"] = rest.split(b"\0")[0].decode("utf-8", "replace")
        elif kind == b"Z":
            if quit:
                conn.sock.sendall(b"X" + struct.pack("!i", 4))  # Terminate: nothing was queried
            return out
        elif kind not in (b"K", b"N"):
            out.update(error="protocol", message="unexpected PostgreSQL message %r" % kind)
            return out


def _mysql_packet(conn: _Conn):
    header = conn.read(4)
    length = header[0] | header[1] << 8 | header[2] << 16
    if length > MAX_PACKET:
        raise ValueError("packet of %d bytes" % length)
    return header[3], conn.read(length)


def _mysql_err(payload: bytes, out: dict) -> dict:
    code = struct.unpack("<H", payload[1:3])[0]
    text = payload[3:]
    if text[:1] == b"#":
        text = text[6:]
    out.update(code=code, message=_short("ERROR %d: %s" % (code, text.decode("utf-8", "replace")), 300))
    out["error"] = MYSQL_ERRORS.get(code, "error")
    return out


def mysql_handshake(conn: _Conn, user, database, quit: bool = True) -> dict:
    out = {"error": None, "message": None, "code": None, "auth": None, "server_version": None}
    seq, payload = _mysql_packet(conn)
    if payload[:1] == b"\xff":
        return _mysql_err(payload, out)
    if payload[:1] != b"\x0a":
        out.update(error="protocol", message="not a MySQL greeting (protocol %r)" % payload[:1])
        return out
    version, _, rest = payload[1:].partition(b"\0")
    out["server_version"] = version.decode("utf-8", "replace")
    if not user:
        return out  # the greeting is the check: the server accepted us and had a thread for us
    plugin = b"mysql_native_password"
    end = rest.rfind(b"\0", 0, len(rest) - 1)
    if end > 0 and rest.endswith(b"\0"):
        plugin = rest[end + 1:-1] or plugin
    flags = 0x1 | 0x200 | 0x8000 | 0x80000 | (0x8 if database else 0)  # long password, 4.1, secure, plugin, db
    body = struct.pack("<IIB23x", flags, MAX_PACKET, 33) + user.encode() + b"\0" + b"\0"
    if database:
        body += database.encode() + b"\0"
    body += plugin + b"\0"
    conn.sock.sendall(struct.pack("<I", len(body))[:3] + bytes([(seq + 1) & 0xFF]) + body)
    _, reply = _mysql_packet(conn)
    if reply[:1] == b"\x00":
        out["auth"] = "ok"
        if quit:
            conn.sock.sendall(b"\x01\x00\x00\x00\x01")  # COM_QUIT
    elif reply[:1] == b"\xff":
        _mysql_err(reply, out)
        if out["error"] == "auth_failed":
            out["auth"] = "failed"
    else:
        out["auth"] = "required"  # another authentication method (a password, a socket): not attempted
    return out


def handshake(db: dict, timeout: float) -> dict:
    """Connect to the database and shake hands; every outcome is data."""
    start = time.monotonic()
    deadline = start + timeout
    out = {"kind": db["kind"], "host": db["host"], "port": db["port"], "error": None, "message": None, "code": None,
           "auth": None, "server_version": None, "reachable": False}
    try:
        sock = socket.create_connection((db["host"], db["port"]), timeout=timeout)
    except ConnectionRefusedError:
        out.update(error="refused", message="connection refused")
        return out
    except socket.timeout:
        out.update(error="timeout", message="connect timed out after %.1fs" % timeout)
        return out
    except OSError as exc:
        out.update(error="unreachable", message=_errtext(exc))
        return out
    out["reachable"] = True
    out["connect_ms"] = round((time.monotonic() - start) * 1000.0, 1)
    conn = _Conn(sock, deadline)
    try:
        if db["kind"] == "mysql":
            out.update(mysql_handshake(conn, db.get("user"), db.get("name")))
        else:
            user = db.get("user") or "postgres"
            out.update(postgres_handshake(conn, user, db.get("name") or user))
    except socket.timeout:
        out.update(error="timeout", message="connected, but no answer to the handshake within %.1fs" % timeout)
    except (ConnectionError, OSError, ValueError, struct.error, IndexError) as exc:
        out.update(error="protocol", message="handshake failed: %s" % _errtext(exc))
    finally:
        sock.close()
    out["handshake_ms"] = round((time.monotonic() - start) * 1000.0, 1)
    return out


@check("database")
def check_database(ctx):
    p = ctx.p
    value = {"from_health": None, "tcp": None, "kind": None, "error": None, "message": None}
    evidence = []
    verdicts = []
    db = p["database"]
    if db:
        hs = handshake(db, max(0.1, min(DB_CONNECT_TIMEOUT_S, ctx.remaining() - 0.3)))
        value.update(kind=db["kind"], error=hs["error"] if hs["error"] in FAILING or hs["error"] == "error" else None,
                     message=hs["message"], handshake=hs)
        tcp_error = hs["message"] if not hs["reachable"] else None
        value["tcp"] = {"host": db["host"], "port": db["port"], "reachable": hs["reachable"], "error": tcp_error}
        if hs.get("connect_ms") is not None:
            value["tcp"]["connect_ms"] = hs["connect_ms"]
        verdicts.append(hs["reachable"] and value["error"] is None)
        said = hs["message"] or ("auth %s" % hs["auth"] if hs["auth"] else "greeting received")
        evidence.append("%s %s:%d: %s%s" % (db["kind"], db["host"], db["port"],
                                            (hs["error"] + ": ") if hs["error"] else "", said))
    health = ctx.wait_for("local_health", reserve_s=0.5)
    body = ((health or {}).get("value") or {}).get("json")
    if isinstance(body, dict):
        for key in ("database", "db", "postgres", "postgresql", "mysql"):
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
