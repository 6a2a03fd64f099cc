"""The lab backend: the runbook's FastAPI service in miniature (health with a real ``SELECT 1``, demo-login).

Application faults are switched on by files in the lab directory (``lab.toggles``), read per request, so a fault
appears and disappears without a restart. Only ``crash_on_import`` acts at import: that is the fault.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from pathlib import Path
from typing import Any

from fastapi import Body, FastAPI, Request
from fastapi.responses import JSONResponse

from lab.layout import DB_NAME, DB_PASSWORD, DB_PORT, DB_USER, MARIADB_PORT, lab_dir
from lab.toggles import Toggles
from lab.topology import get as get_topology

VERSION = "1.4.2-lab"
LAB_DIR = lab_dir()
TOGGLES = Toggles(LAB_DIR / "toggles")
TOPOLOGY = get_topology(os.environ.get("GATEWATCH_LAB_TOPOLOGY"))
DSN = f"host=127.0.0.1 port={DB_PORT} user=postgres dbname=postgres"
DB_CONNECT_TIMEOUT_S = 2
BLOCK_S = 600  # block_loop: longer than any probe waits
PADDING_BYTES = 16 * 1024
DEMO_USER, DEMO_PASSWORD_SHA256 = "demo", hashlib.sha256(b"demo-password").hexdigest()

log = logging.getLogger("bandarupay")


def _configure_logging() -> None:
    """The app's own log file (what ``host.app_log`` points at); uvicorn's output and tracebacks go to stderr,
    which supervisor appends to the same file, as ``python main.py >> app.log 2>&1`` would."""
    path = Path(os.environ.get("LAB_APP_LOG", LAB_DIR / "logs" / "app.log"))
    if log.handlers:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


_configure_logging()


def _name_oom_victim() -> None:
    """While the oom_kill fault is in, the backend names itself ``oom-<namespace>`` (PR_SET_NAME, as setproctitle
    does). The kernel keeps the kill's record for the on-box checks' whole window; a name of this lab's own keeps
    that record from being read as evidence against any other lab's stopped ``python`` backend."""
    import ctypes

    group = (LAB_DIR / "run" / "memory-cgroup").read_text().strip() if TOGGLES.on("memory_hog") else ""
    if group:
        name = ("oom-" + group.removeprefix("gatewatch-lab-"))[:15].encode()
        ctypes.CDLL(None, use_errno=True).prctl(15, ctypes.c_char_p(name), 0, 0, 0)


if TOGGLES.on("memory_hog"):
    try:
        _name_oom_victim()
    except (OSError, AttributeError) as exc:
        log.warning("memory_hog: cannot set the process name: %s", exc)

if TOGGLES.on("crash_on_import"):
    try:
        import bandarupay_plugins  # noqa: F401 - does not exist: this import failing is the crash-loop fault
    except ModuleNotFoundError:
        log.exception("start-up failed: a required module is missing")
        raise

app = FastAPI(title="bandarupay backend (gatewatch lab)", version=VERSION)
_leaked: list[Any] = []

if TOPOLOGY.database == "mariadb":
    import pymysql

    DB_ERROR: type[Exception] = pymysql.Error

    def _db_query(sql: str, params: tuple = ()) -> list[tuple]:
        conn = pymysql.connect(host="127.0.0.1", port=MARIADB_PORT, user=DB_USER, password=DB_PASSWORD,
                               database=DB_NAME, connect_timeout=DB_CONNECT_TIMEOUT_S)
        try:
            with conn.cursor() as cur:
                cur.execute(sql.replace("::text", ""), params)
                return list(cur.fetchall())
        finally:
            conn.close()
else:
    import psycopg

    DB_ERROR = psycopg.Error

    def _db_query(sql: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(DSN, connect_timeout=DB_CONNECT_TIMEOUT_S) as conn:
            return conn.execute(sql, params).fetchall()


@app.middleware("http")
async def _block_loop(request: Request, call_next):
    """block_loop: a blocking call inside the event loop, the classic way an async server hangs (gunicorn's
    arbiter then kills the worker: WORKER TIMEOUT, and boots another that the next request blocks again)."""
    if TOGGLES.on("block_loop"):
        import time

        log.warning("%s: calling a blocking function in the event loop", request.url.path)
        time.sleep(BLOCK_S)
    return await call_next(request)


@app.get("/health")
def health() -> JSONResponse:
    try:
        _db_query("SELECT 1")
    except DB_ERROR as exc:
        log.error("health: database unreachable: %s", str(exc).strip().splitlines()[0] if str(exc) else exc)
        return JSONResponse(
            status_code=503, content={"status": "unhealthy", "database": "disconnected", "version": VERSION}
        )
    return JSONResponse({"status": "healthy", "database": "connected", "version": VERSION})


def _leak_descriptors() -> None:
    """Open files until the process hits its RLIMIT_NOFILE, and keep them: a descriptor leak."""
    try:
        while True:
            _leaked.append(open(os.devnull, "rb"))  # noqa: SIM115 - kept open on purpose
    except OSError as exc:
        log.error("demo-login: cannot open more files after %d: %s", len(_leaked), exc)
        raise


def _hog_memory() -> None:
    """Allocate (and touch) memory until the kernel's OOM killer ends this process; only inside the lab's memory
    cgroup, and never more than 4 GB, so a mistake cannot take the machine's memory."""
    from lab.cgroup import in_lab_cgroup

    if not in_lab_cgroup():
        raise RuntimeError("memory_hog: refusing to allocate outside the lab's memory cgroup")
    hoard = []
    for i in range(256):
        hoard.append(bytearray(b"\x01") * (16 * 1024 * 1024))
        if i % 4 == 0:
            log.warning("demo-login: cache warm-up holds %d MB", 16 * (i + 1))
    raise RuntimeError("memory_hog: 4 GB allocated and still alive; is the memory limit set?")


@app.post("/api/v1/auth/demo-login")
def demo_login(credentials: dict[str, Any] | None = Body(default=None)) -> JSONResponse:  # noqa: B008
    if TOGGLES.on("raise_500"):
        raise RuntimeError("demo-login: session store returned an unexpected value (lab toggle raise_500)")
    if TOGGLES.on("fd_leak"):
        _leak_descriptors()
    if TOGGLES.on("memory_hog"):
        _hog_memory()
    username = str((credentials or {}).get("username", ""))[:128]
    password = str((credentials or {}).get("password", ""))[:128]
    # A real round trip to the database, as the real service's user lookup does; it fails when the database is down.
    known = _db_query("SELECT %s::text = %s::text", (username, DEMO_USER))[0][0]
    digest = hashlib.sha256(password.encode()).hexdigest()
    headers = {"X-Lab-Padding": "x" * PADDING_BYTES} if TOGGLES.on("huge_header") else None
    if known and hmac.compare_digest(digest, DEMO_PASSWORD_SHA256):
        return JSONResponse({"access_token": "lab-demo-token", "token_type": "bearer"}, headers=headers)
    return JSONResponse(
        status_code=401, content={"detail": "User not found or incorrect credentials"}, headers=headers
    )
