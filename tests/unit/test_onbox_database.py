"""The database check's handshake against a real PostgreSQL and a real MariaDB, each run by hand in a temp dir:
refused, timed out, authentication failed, unknown database and too many connections, each with the server's own
message. Both servers are started once per module (about 5 s each) and stopped by their own handles."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from gatewatch.onbox.checks import database

PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
MARIADBD = shutil.which("mariadbd") or shutil.which("mariadbd", path="/usr/sbin")
INSTALL_DB = shutil.which("mariadb-install-db")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the servers as their own users")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")


def own_dir(user: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=f"gw-{user}-", dir="/tmp"))  # noqa: S108 - the server's user must reach it
    shutil.chown(path, user, user)
    return path


@pytest.fixture(scope="module")
def postgres():
    if not PG_BIN or os.geteuid() != 0:
        pytest.skip("needs PostgreSQL (apt-get install postgresql) and root")
    bin_dir, data = Path(PG_BIN[-1]), own_dir("postgres")
    as_pg = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]
    subprocess.run([*as_pg, str(bin_dir / "initdb"), "-D", str(data / "db"), "-A", "trust", "-U", "postgres"],
                   check=True, capture_output=True, timeout=120)
    port = free_port()
    proc = subprocess.Popen([*as_pg, str(bin_dir / "postgres"), "-D", str(data / "db"), "-k", str(data), "-p",
                             str(port), "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=4",
                             "-c", "superuser_reserved_connections=0", "-c", "fsync=off"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc)
        end = time.monotonic() + 60
        while shake("postgresql", port)["error"] == "not_accepting" and time.monotonic() < end:
            time.sleep(0.2)  # "the database system is starting up"
        yield port
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="module")
def mariadb():
    if not MARIADBD or not INSTALL_DB or os.geteuid() != 0:
        pytest.skip("needs MariaDB (apt-get install mariadb-server) and root")
    data = own_dir("mysql")
    subprocess.run([INSTALL_DB, "--no-defaults", f"--datadir={data}/db", "--user=mysql", "--skip-test-db",
                    "--auth-root-authentication-method=normal"], check=True, capture_output=True, timeout=180)
    port = free_port()
    proc = subprocess.Popen([MARIADBD, "--no-defaults", f"--datadir={data}/db", f"--socket={data}/sock",
                             f"--port={port}", "--bind-address=127.0.0.1", "--user=mysql", "--max-connections=10",
                             f"--pid-file={data}/pid", "--innodb-buffer-pool-size=8M", "--skip-log-bin",
                             "--performance-schema=OFF"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc)
        subprocess.run(["mariadb", "--no-defaults", f"--socket={data}/sock", "-u", "root", "-e",
                        "CREATE USER app@'%'; CREATE USER app@localhost"], check=True, capture_output=True, timeout=30)
        yield port
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(data, ignore_errors=True)


def shake(kind: str, port: int, **extra) -> dict:
    return database.handshake(dict({"kind": kind, "host": "127.0.0.1", "port": port}, **extra), 3.0)


def test_refused_and_timed_out_need_no_server():
    refused = shake("postgresql", free_port())
    assert refused["error"] == "refused" and refused["reachable"] is False
    with socket.socket() as silent:  # accepts (the backlog) and never says a word: a hung database
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        for kind in ("postgresql", "mysql"):
            out = database.handshake({"kind": kind, "host": "127.0.0.1", "port": silent.getsockname()[1]}, 0.5)
            assert out["error"] == "timeout" and out["reachable"] is True, out


@needs_root
def test_postgresql_ok_unknown_database_bad_role_and_too_many_clients(postgres):
    ok = shake("postgresql", postgres, user="postgres", name="postgres")
    assert ok["error"] is None and ok["auth"] == "ok" and ok["server_version"], ok
    missing = shake("postgresql", postgres, user="postgres", name="nope")
    assert missing["error"] == "unknown_database" and missing["code"] == "3D000"
    assert 'database "nope" does not exist' in missing["message"]
    role = shake("postgresql", postgres, user="nobody_gw", name="postgres")
    assert role["error"] == "auth_failed" and 'role "nobody_gw" does not exist' in role["message"]
    held = []
    try:
        for _ in range(4):  # max_connections=4, none reserved: hold them all
            sock = socket.create_connection(("127.0.0.1", postgres), timeout=5)
            conn = database._Conn(sock, time.monotonic() + 5)
            assert database.postgres_handshake(conn, "postgres", "postgres", quit=False)["auth"] == "ok"
            held.append(sock)
        full = shake("postgresql", postgres, user="postgres")
    finally:
        for sock in held:
            sock.close()
    assert full["error"] == "too_many_connections" and full["code"] == "53300", full
    assert "too many clients" in full["message"]


def _hold_mysql(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    conn = database._Conn(sock, time.monotonic() + 5)
    assert database.mysql_handshake(conn, "app", None, quit=False)["auth"] == "ok"
    return sock


@needs_root
def test_mariadb_greeting_login_unknown_database_denied_and_too_many_connections(mariadb):
    greeting = shake("mysql", mariadb)
    assert greeting["error"] is None and "MariaDB" in greeting["server_version"], greeting
    ok = shake("mysql", mariadb, user="root", name="mysql")
    assert ok["error"] is None and ok["auth"] == "ok", ok
    missing = shake("mysql", mariadb, user="root", name="nope")
    assert missing["error"] == "unknown_database" and missing["code"] == 1049 and "nope" in missing["message"]
    denied = shake("mysql", mariadb, user="nobody_gw")
    assert denied["error"] == "auth_failed" and denied["code"] == 1045 and "Access denied" in denied["message"]
    held = []
    try:
        for _ in range(10):  # max_connections=10, its least (root, an administrator, would get one more)
            held.append(_hold_mysql(mariadb))
        full = shake("mysql", mariadb, user="app")
    finally:
        for sock in held:
            sock.close()
    assert full["error"] == "too_many_connections" and full["code"] == 1040, full
    assert "Too many connections" in full["message"]


@needs_root
def test_the_check_quotes_the_servers_message(postgres):
    from gatewatch.onbox.checks import registry, validate

    registry.load_all()
    params = validate.validate_params({"service_manager": "command", "process_match": "gwtest-none",
                                       "database": {"port": postgres, "name": "nope", "user": "postgres"}})
    ctx = registry.Context(params, 5.0)
    ctx.done["local_health"].set()
    res = database.check_database(ctx)
    assert res["status"] == "fail" and res["value"]["kind"] == "postgresql"
    assert res["value"]["error"] == "unknown_database" and "does not exist" in res["value"]["message"]
    assert res["value"]["tcp"]["reachable"] is True
    assert any("does not exist" in e for e in res["evidence"])
