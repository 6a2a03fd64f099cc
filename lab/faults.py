"""The fault catalogue: each entry breaks the lab for real, says how to see it, how to heal it, and which verdict
category (DESIGN.md) the diagnosis should reach. Faults that cannot be made real here are listed in README.md.

A fault is data plus three small functions of the ``Lab``; ``Lab.inject`` waits until ``settled`` says the fault is
observable, so tests and demos never race the thing they break.
"""

from __future__ import annotations

import resource
import socket
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lab.layout import BACKEND_PORT, SERVICE, WRONG_LOGIN_PATH, WRONG_PORT
from lab.render import NginxSite
from lab.topology import Topology

if TYPE_CHECKING:
    from lab.manager import Lab

FD_LIMIT = 256  # the backend's lowered RLIMIT_NOFILE in fd_exhaustion
GAVE_UP = {"BACKOFF", "FATAL", "EXITED"}


@dataclass(frozen=True)
class Fault:
    name: str
    expect: str  # the verdict category the diagnosis should reach
    description: str  # what is broken, as an operator would say it
    proves: str  # what telling this fault apart proves about gatewatch
    inject: Callable[[Lab], None]
    heal: Callable[[Lab], None]
    settled: Callable[[Lab], bool] = lambda lab: True
    settle_s: float = 20.0
    applies: Callable[[Topology], bool] = lambda topo: True  # which topologies can have this fault

    def applies_to(self, topo: Topology) -> bool:
        return self.applies(topo)


def faults_for(topo: Topology) -> list[str]:
    """The catalogue's faults that apply to a topology, in catalogue order."""
    return [name for name, fault in FAULTS.items() if fault.applies_to(topo)]


# which topologies a fault applies to
def _tcp(topo: Topology) -> bool:
    return not topo.unix


def _unix(topo: Topology) -> bool:
    return topo.unix


def _uvicorn(topo: Topology) -> bool:
    return topo.app_server == "uvicorn"


def _restarted(topo: Topology) -> bool:
    """Something restarts the backend when it dies (supervisor or a shell loop)."""
    return topo.manager != "plain"


# ---- small building blocks -----------------------------------------------------------------------------------
def _login_is(*codes: int | None) -> Callable[[Lab], bool]:
    return lambda lab: lab.login_status() in codes


def _state_in(program: str, states: set[str]) -> Callable[[Lab], bool]:
    return lambda lab: lab.sup.state(program) in states


def _backend_gave_up(lab: Lab) -> bool:
    """supervisor: the program is in BACKOFF/FATAL; a shell loop: the start-up has failed at least twice."""
    if lab.topology.supervised:
        return lab.sup.state(SERVICE) in GAVE_UP
    try:
        text = lab.paths.app_log.read_text(errors="replace")
    except OSError:
        return False
    # a failed import leaves a traceback; a failed bind only uvicorn's "[Errno 98] ... address already in use" line
    # three failures: a loop, not one bad start (the on-box checks want repeated identical tracebacks too)
    return text.count("Traceback (most recent call last)") >= 3 or text.count("[Errno 98]") >= 3


def _nginx_variant(site: Callable[[Lab], NginxSite]) -> Callable[[Lab], None]:
    def inject(lab: Lab) -> None:
        lab.write_nginx(site(lab))
        lab.reload_nginx()

    return inject


def _nginx_baseline(lab: Lab) -> None:
    lab.write_nginx()
    lab.reload_nginx()


def _toggle(name: str, on: bool, restart: bool = False) -> Callable[[Lab], None]:
    def act(lab: Lab) -> None:
        lab.toggles.set(name, on)
        if restart:
            lab.restart_backend()

    return act


def _edge_status(lab: Lab, code: int) -> set[int | None]:
    """What the outside sees when the edge cannot reach nginx: a Cloudflare 52x, or a closed connection."""
    return {code} if lab.cloudflare else {None}


# ---- the faults ----------------------------------------------------------------------------------------------
def _stop(program: str) -> Callable[[Lab], None]:
    return lambda lab: lab.sup.stop(program)


def _start(program: str) -> Callable[[Lab], None]:
    return lambda lab: lab.sup.start(program)


def _hung(lab: Lab) -> bool:
    if lab.topology.app_server == "gunicorn":
        return lab.login_status() == 504  # a worker took the request and its event loop is blocked
    pid = lab.backend_pid()
    try:
        return bool(pid) and Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"
    except OSError:
        return False


def _hang(lab: Lab) -> None:
    """uvicorn: SIGSTOP the process. gunicorn: every request blocks its worker's event loop; the arbiter kills the
    worker after its timeout (WORKER TIMEOUT) and boots another, which the next request blocks again."""
    if lab.topology.app_server == "gunicorn":
        lab.toggles.set("block_loop")
    else:
        lab.backend.signal("STOP")


def _hang_heal(lab: Lab) -> None:
    if lab.topology.app_server == "gunicorn":
        lab.toggles.set("block_loop", False)
        lab.restart_backend()
    else:
        lab.backend.signal("CONT")


def _crash_loop(lab: Lab) -> None:
    lab.toggles.set("crash_on_import")
    if lab.topology.supervised:
        lab.sup.stop(SERVICE)
        lab.sup.start(SERVICE, wait=False)
    else:
        lab.backend.signal("TERM")  # the loop starts it again, and again, every second


def _crash_loop_heal(lab: Lab) -> None:
    lab.toggles.set("crash_on_import", False)
    lab.restart_backend()


def _port_conflict(lab: Lab) -> None:
    lab.backend.stop()
    lab.sup.start("stranger")
    lab.backend.start(wait=False)  # fails: [Errno 98] address already in use


def _port_conflict_heal(lab: Lab) -> None:
    lab.backend.stop()
    lab.sup.stop("stranger")
    lab.backend.start()


def _stale_socket(lab: Lab) -> None:
    """The backend dies without removing its socket file. With no manager, SIGKILL does exactly that; under
    supervisor the program is stopped and the file a SIGKILLed server leaves is put back (supervisor would restart
    a killed server at once)."""
    path = lab.paths.backend_socket
    if lab.topology.supervised:
        lab.backend.stop()
        path.unlink(missing_ok=True)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.bind(str(path))  # bound, never listening, closed: the file stays and connecting is refused
        path.chmod(0o777)
    else:
        lab.backend.signal("KILL")
        lab._wait(lambda: lab.backend.pid() is None, 10, None)


def _stale_socket_seen(lab: Lab) -> bool:
    return lab.paths.backend_socket.is_socket() and lab.backend.pid() is None and lab.login_status() == 502


def _stale_config(lab: Lab) -> None:
    """The backend moved (another port or socket), someone updated the site file on disk, nobody reloaded nginx."""
    lab.toggles.set("listen_moved")
    lab.restart_backend()
    moved = f"unix:{lab.paths.moved_socket}" if lab.topology.unix else f"127.0.0.1:{WRONG_PORT}"
    lab.write_nginx(NginxSite(upstream=moved))  # on disk only: no reload


def _stale_config_heal(lab: Lab) -> None:
    lab.toggles.set("listen_moved", False)
    lab.restart_backend()
    lab.write_nginx()
    lab.reload_nginx()


def _stop_db(lab: Lab) -> None:
    lab.sup.stop(lab.topology.db_program)


def _start_db(lab: Lab) -> None:
    lab.sup.start(lab.topology.db_program)


def _broken_config(lab: Lab) -> None:
    lab.write_nginx(NginxSite(extra_server_lines=("proxy_passs http://backend_app;  # a typo someone saved",)))
    lab.sup.stop("nginx")
    lab.sup.start("nginx", wait=False)  # nginx refuses the file: [emerg] unknown directive "proxy_passs"


def _broken_config_heal(lab: Lab) -> None:
    lab.write_nginx()
    lab.sup.stop("nginx")
    lab.sup.start("nginx")


def _wrong_route(lab: Lab) -> None:
    lab.targets_path.write_text(lab.targets_text(url_path=WRONG_LOGIN_PATH))


def _wrong_route_heal(lab: Lab) -> None:
    lab.targets_path.write_text(lab.targets_text())


def _firewall(action: str) -> Callable[[Lab], None]:
    return lambda lab: lab.add_firewall_rule(BACKEND_PORT, action)


def _fd_exhaustion(lab: Lab) -> None:
    pid = lab.backend_pid()
    if not pid:
        raise RuntimeError("fd_exhaustion needs a running backend")
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))  # as `prlimit --nofile` does
    lab.toggles.set("fd_leak")
    lab.login_status()  # the first demo-login leaks every descriptor left


def _fds_exhausted(lab: Lab) -> bool:
    pid = lab.backend_pid()
    try:
        return bool(pid) and len(list(Path(f"/proc/{pid}/fd").iterdir())) >= FD_LIMIT - 2
    except OSError:
        return False


def _fd_heal(lab: Lab) -> None:
    lab.toggles.set("fd_leak", False)
    lab.restart_backend()  # a fresh process: descriptors released, limit inherited from supervisord again


def _socket_denied(lab: Lab) -> None:
    lab.toggles.set("listen_unix")
    lab.restart_backend()
    _nginx_variant(lambda lab: NginxSite(upstream=f"unix:{lab.paths.app_socket}"))(lab)


def _socket_denied_heal(lab: Lab) -> None:
    _nginx_baseline(lab)
    _toggle("listen_unix", False, restart=True)(lab)


def _ipv6_seen(lab: Lab) -> bool:
    """Round robin over 127.0.0.1 and ::1: within a few requests one must fail."""
    return any(lab.login_status() == 502 for _ in range(6))


OOM_LIMIT_BYTES = 256 * 1024 * 1024


def _cgroup(lab: Lab):
    from lab.cgroup import MemoryCgroup

    return MemoryCgroup(f"gatewatch-lab-{lab.netns}")


def _oom_kill(lab: Lab) -> None:
    group = _cgroup(lab)
    group.create(OOM_LIMIT_BYTES)
    lab.paths.memory_cgroup_file.write_text(f"{group.path.name}\n")
    lab.toggles.set("memory_hog")
    lab.restart_backend()  # it starts inside the cgroup (lab.backend.serve joins it), as every restart will


def _oom_heal(lab: Lab) -> None:
    lab.toggles.set("memory_hog", False)
    lab.paths.memory_cgroup_file.unlink(missing_ok=True)
    lab.restart_backend()
    _cgroup(lab).remove()


_FAULT_LIST = [
    Fault(
        "backend_stopped", "backend_down",
        "the backend program is stopped (supervisorctl stop bandarupay-backend)",
        "refused connections on the backend port plus a stopped service read as 'backend down', not a proxy fault",
        lambda lab: lab.backend.stop(), lambda lab: lab.backend.start(), _login_is(502),
    ),
    Fault(
        "backend_hung", "backend_hung",
        "the backend process is frozen (SIGSTOP): the port accepts connections, nothing answers",
        "a listening port with a timing-out health check and nginx 'upstream timed out' is a hang, not a crash",
        _hang, _hang_heal, _hung,
    ),
    Fault(
        "crash_loop", "backend_crash_loop",
        "the app imports a module that is not installed, so every start dies (supervisor BACKOFF, then FATAL)",
        "restarts plus ModuleNotFoundError in the app log name the crash loop and its cause",
        _crash_loop, _crash_loop_heal, _backend_gave_up, settle_s=40, applies=_restarted,
    ),
    Fault(
        "port_conflict", "port_conflict",
        "another program holds 127.0.0.1:8000, so the backend fails to bind ([Errno 98] Address already in use)",
        "a listening port owned by a process that is not the service is a conflict, not a healthy backend",
        _port_conflict, _port_conflict_heal, _backend_gave_up, settle_s=40,
        applies=lambda t: _tcp(t) and _restarted(t),
    ),
    Fault(
        "nginx_stopped", "proxy_down",
        "nginx is stopped; the edge cannot reach the origin (Cloudflare 521 in the emulation)",
        "an edge that cannot connect to the origin while the backend is healthy points at the proxy",
        _stop("nginx"), _start("nginx"), lambda lab: lab.login_status() in _edge_status(lab, 521),
    ),
    Fault(
        "nginx_config_broken", "proxy_config_invalid",
        "nginx.conf has an unknown directive and nginx was restarted, so it does not start",
        "`nginx -t` failing plus nginx not running is a config error to fix by hand, not a restart",
        _broken_config, _broken_config_heal, _state_in("nginx", GAVE_UP),
    ),
    Fault(
        "upstream_wrong_port", "proxy_upstream_mismatch",
        f"nginx's upstream points at 127.0.0.1:{WRONG_PORT} while the backend listens on {BACKEND_PORT} (reloaded)",
        "a healthy backend plus 'connection refused' to another port in nginx's log is the proxy's mistake",
        _nginx_variant(lambda lab: NginxSite(upstream=f"127.0.0.1:{WRONG_PORT}")), _nginx_baseline, _login_is(502),
        applies=_tcp,
    ),
    Fault(
        "header_too_big", "proxy_header_too_big",
        "demo-login answers with a 16 KB header, larger than nginx's proxy_buffer_size",
        "'upstream sent too big header' is a 502 that no restart fixes",
        _toggle("huge_header", True), _toggle("huge_header", False), _login_is(502),
    ),
    Fault(
        "database_stopped", "database_unavailable",
        "PostgreSQL is stopped: health answers 503 database disconnected, demo-login fails",
        "the database, not the backend or proxy, is named when health reports it and the port is closed",
        _stop_db, _start_db, lambda lab: lab.health_status() == 503,
    ),
    Fault(
        "endpoint_500", "endpoint_error",
        "demo-login raises an unhandled exception (500) while /health stays healthy",
        "an application error on one endpoint is told apart from infrastructure faults",
        _toggle("raise_500", True), _toggle("raise_500", False), _login_is(500),
    ),
    Fault(
        "wrong_route", "route_not_found",
        "the targets file probes /api/v1/demo-login (the runbook's mistake); the route is /api/v1/auth/demo-login",
        "a 404 from a healthy backend is a wrong URL, and the OpenAPI document names the nearest real route",
        _wrong_route, _wrong_route_heal, lambda lab: lab.login_status(WRONG_LOGIN_PATH) == 404,
    ),
    Fault(
        "firewall_reject", "firewall_blocked",
        "an iptables rule inside the namespace rejects TCP to port 8000 (icmp-port-unreachable)",
        "a running, listening backend that nothing local can reach is a firewall, never 'open the port'",
        _firewall("REJECT"), lambda lab: lab.clear_firewall(), _login_is(502), applies=_tcp,
    ),
    Fault(
        "firewall_drop", "firewall_blocked",
        "an iptables rule inside the namespace drops TCP to port 8000: connections time out",
        "connect timeouts to a listening local port are a firewall drop, not a hang",
        _firewall("DROP"), lambda lab: lab.clear_firewall(), lambda lab: bool(lab.firewall_rules()), applies=_tcp,
    ),
    Fault(
        "fd_exhaustion", "fd_exhausted",
        f"the backend's RLIMIT_NOFILE is lowered to {FD_LIMIT} and it leaks descriptors until EMFILE",
        "open files at the limit and 'Too many open files' explain a backend that stops accepting",
        _fd_exhaustion, _fd_heal, _fds_exhausted, applies=_uvicorn,
    ),
    Fault(
        "backend_wrong_port", "backend_not_listening",
        f"the backend runs but listens on {WRONG_PORT} instead of {BACKEND_PORT}",
        "a running service with nothing on the expected port is 'not listening', not 'down'",
        _toggle("listen_wrong_port", True, restart=True), _toggle("listen_wrong_port", False, restart=True),
        _login_is(502), applies=_tcp,
    ),
    Fault(
        "unix_socket_missing", "proxy_upstream_mismatch",
        "nginx proxies to a unix socket path that does not exist",
        "'No such file or directory' while connecting upstream names the socket path, not the backend",
        _nginx_variant(lambda lab: NginxSite(upstream=f"unix:{lab.paths.run}/backend.sock")),  # never created
        _nginx_baseline, _login_is(502),
    ),
    Fault(
        "socket_permission_denied", "proxy_permission_denied",
        "the backend listens on a unix socket in a root-only directory; nginx's nobody workers get EACCES",
        "'(13: Permission denied) while connecting to upstream' is permissions, like the SELinux case",
        _socket_denied, _socket_denied_heal, _login_is(502), applies=_tcp,
    ),
    Fault(
        "localhost_ipv6", "proxy_upstream_mismatch",
        "the upstream is `server localhost:8000 max_fails=0` with proxy_next_upstream off; localhost is also ::1, "
        "where nothing listens, so about every other request fails (with nginx's default max_fails=1 the failing "
        "address is benched for 10 s after each failure and a retry mostly passes: a transient)",
        "intermittent 502s with upstream [::1]:8000 in the log are the localhost trap, not a flaky backend",
        _nginx_variant(lambda lab: NginxSite(upstream=f"localhost:{BACKEND_PORT} max_fails=0", next_upstream=False)),
        _nginx_baseline, _ipv6_seen, applies=_tcp,
    ),
    Fault(
        "stale_socket", "backend_down",
        "the backend died and left its unix socket file behind: the file is there, nothing listens on it",
        "a socket file that refuses connections is a dead backend, not a missing socket or a proxy fault",
        _stale_socket, lambda lab: lab.backend.start(), _stale_socket_seen, applies=_unix,
    ),
    Fault(
        "stale_config", "proxy_upstream_mismatch",
        "the backend moved (port 8001, or another socket), the site file on disk was updated, nginx was not reloaded",
        "a running nginx older than its config on disk, proxying to where the backend was, is fixed by a reload",
        _stale_config, _stale_config_heal, _login_is(502),
    ),
    Fault(
        "database_connection_limit", "database_unavailable",
        "another client holds every database connection (max_connections 20): the backend's connections are refused",
        "the database's own 'too many connections' error is named, not just 'database unavailable'",
        lambda lab: lab.sup.start("dbhog"), lambda lab: lab.sup.stop("dbhog"), lambda lab: lab.health_status() == 503,
    ),
    # Last on purpose: the kernel log keeps the OOM kill, and the on-box checks count kills within their window.
    Fault(
        "oom_kill", "out_of_memory",
        f"the backend runs in a {OOM_LIMIT_BYTES >> 20} MB memory cgroup and demo-login allocates until the kernel's "
        "OOM killer kills it; supervisor restarts it and the next request kills it again",
        "an OOM kill of the backend in the kernel log explains 502s ('upstream prematurely closed') and restarts",
        _oom_kill, _oom_heal, _login_is(502), settle_s=30, applies=lambda t: t.name == "classic",
    ),
]

FAULTS: OrderedDict[str, Fault] = OrderedDict((f.name, f) for f in _FAULT_LIST)
