"""Bring the lab up and down, and inject and heal its faults.

The origin (PostgreSQL, the backend, nginx) runs under its own supervisord inside a network namespace the lab
creates; the edge relay runs in this namespace on 127.0.0.1:18080. Nothing here touches the machine's own
firewall or sends traffic anywhere but loopback and the lab's namespace. ``down`` removes all of it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import pwd
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gatewatch.config import Target, load_config
from gatewatch.config.models import PATH_RE
from lab.layout import (
    EDGE_HOST,
    EDGE_PORT,
    HEALTH_PATH,
    LOGIN_PATH,
    NETNS,
    NGINX_PORT,
    ORIGIN_HOST,
    SERVICE,
    SITE_HOST,
    LabPaths,
    lab_dir,
)
from lab.render import (
    REPO_ROOT,
    NginxSite,
    backend_launcher,
    mariadb_init_sql,
    nginx_files,
    supervisord_conf,
    targets_yaml,
)
from lab.supervisor import Supervisor, SupervisorError
from lab.toggles import Toggles
from lab.topology import Topology
from lab.topology import get as get_topology

BAD_CREDENTIALS = b'{"username": "probe", "password": "wrong"}'
COMMAND_TIMEOUT_S = 30.0
REQUEST_TIMEOUT_S = 10.0
MAX_RESPONSE_BYTES = 1024 * 1024
FIREWALL_TAG = "gatewatch-lab"
NETNS_HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


class LabError(Exception):
    """The lab cannot do what was asked; the message says why and what to do."""

    exit_code = 1


class LabPrerequisiteError(LabError):
    """Not root, or a program the lab runs is not installed (the message names the package)."""

    exit_code = 2


def _mariadb_bin(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin")


def _postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parts[-3]))
    return found[-1] if found else None


class Lab:
    def __init__(self, dir: str | os.PathLike[str] | None = None, netns: str | None = None,
                 cloudflare: bool | None = None, edge_port: int | None = None, topology: str | None = None):
        """None for ``netns``, ``cloudflare``, ``edge_port`` or ``topology`` keeps what the lab in ``dir`` was brought
        up with (else the defaults: gwlab, Cloudflare emulation, 18080, classic). Tests give their own so they never
        collide with a lab a person runs."""
        self.paths = LabPaths(lab_dir(dir))
        if not PATH_RE.fullmatch(str(self.paths.root)):
            raise LabError(f"the lab directory must be an absolute path of letters, digits and . _ / + - "
                           f"(gatewatch's targets file only accepts those), got {str(self.paths.root)!r}")
        state = self._load_state()
        self.netns = state.get("netns", NETNS) if netns is None else netns
        self.edge_port = int(state.get("edge_port", EDGE_PORT) if edge_port is None else edge_port)
        self.cloudflare = bool(state.get("cloudflare", True) if cloudflare is None else cloudflare)
        try:
            self.topology: Topology = get_topology(state.get("topology") if topology is None else topology)
        except ValueError as exc:
            raise LabError(str(exc)) from None
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,30}", self.netns):
            raise LabError(f"netns must be a-z, 0-9, _ and - (up to 31 characters), got {self.netns!r}")
        if not 1024 <= self.edge_port <= 65535:
            raise LabError(f"edge_port must be from 1024 to 65535, got {self.edge_port!r}")
        self.sup = Supervisor(self.paths.supervisor_sock)
        self.toggles = Toggles(self.paths.toggles)
        self.python = sys.executable
        self._edge_proc: subprocess.Popen | None = None
        self.backend = SupervisedBackend(self) if self.topology.supervised else BareBackend(self)

    @property
    def programs(self) -> tuple[str, ...]:
        """The supervisord programs that make the healthy origin."""
        own = (SERVICE,) if self.topology.supervised else ()
        return (self.topology.db_program, *own, "nginx")

    # ---- public API ------------------------------------------------------------------------------------------
    @property
    def targets_path(self) -> Path:
        return self.paths.targets

    def targets_text(self, url_path: str = LOGIN_PATH) -> str:
        """The lab's targets file (``url_path`` differs only for the wrong_route fault)."""
        return targets_yaml(self.paths, self.netns, url_path, self.edge_port, self.topology)

    def target(self) -> Target:
        """The lab's target as gatewatch loads it (re-read each time: the wrong_route fault rewrites the file)."""
        return load_config(self.targets_path).target("lab-api")

    def check_prerequisites(self) -> dict[str, str]:
        """Paths of the programs the lab runs; raises LabPrerequisiteError naming what to install."""
        if os.geteuid() != 0:
            raise LabPrerequisiteError(
                "the lab needs root: it creates a network namespace and firewall rules inside it "
                "(run `sudo gatewatch lab up`)"
            )
        bin_dir = Path(self.python).parent
        found: dict[str, str] = {}
        missing: list[str] = []
        for tool, package in (("nginx", "nginx"), ("ip", "iproute2"), ("iptables", "iptables"),
                              ("runuser", "util-linux")):
            path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")
            if path:
                found[tool] = path
            else:
                missing.append(f"{tool} (apt-get install {package})")
        if self.topology.database == "mariadb":
            for tool in ("mariadbd", "mariadb-install-db"):
                path = _mariadb_bin(tool)
                if path:
                    found[tool] = path
                else:
                    missing.append(f"{tool} (apt-get install mariadb-server)")
            try:
                pwd.getpwnam("mysql")
            except KeyError:
                missing.append("user mysql (apt-get install mariadb-server)")
        else:
            postgres = _postgres_bin()
            if postgres and (postgres.parent / "initdb").exists():
                found["postgres"] = str(postgres)
            else:
                missing.append("postgres (apt-get install postgresql)")
        supervisord = bin_dir / "supervisord"
        if supervisord.exists():
            found["supervisord"] = str(supervisord)
        else:
            missing.append(f"supervisord next to {self.python} (pip install -e '.[lab]')")
        for module in ("uvicorn", "fastapi", "psycopg", "gunicorn", "pymysql"):
            try:
                __import__(module)
            except ImportError:
                missing.append(f"python module {module} (pip install -e '.[lab]')")
        if self.topology.database == "postgresql":
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                missing.append("user postgres (apt-get install postgresql)")
        if missing:
            raise LabPrerequisiteError("the lab needs: " + "; ".join(missing) + " (or run `make setup`)")
        return found

    def up(self, wait_s: float = 60.0) -> dict[str, Any]:
        """Start whatever is not running (idempotent), then wait until the site answers through the edge."""
        tools = self.check_prerequisites()
        running = self._load_state().get("topology", "classic")
        if self.sup.alive() and running != self.topology.name:
            raise LabError(f"the lab in {self.paths.root} is up with topology {running}; "
                           f"run `gatewatch lab down` before bringing it up as {self.topology.name}")
        self._make_dirs()
        if not self.sup.alive():
            self._write_baseline_files(tools)
            self._init_database(tools)
            self._kill_leftovers()  # a lab whose supervisord died leaves its programs holding the ports
            self._ensure_netns(tools["ip"])
            self._run([tools["ip"], "netns", "exec", self.netns, tools["supervisord"], "-c",
                       str(self.paths.supervisord_conf)])
            self._wait(self.sup.alive, 15, "supervisord did not come up; see " + str(self.paths.logs))
            self._save_state({"faults": [], "cloudflare": self.cloudflare, "netns": self.netns,
                              "edge_port": self.edge_port, "topology": self.topology.name})
            if not self.topology.supervised:
                self.sup.start(self.topology.db_program)
                self.backend.start()
            fresh = True
        else:
            fresh = False
            if not self.paths.targets.exists():
                self.paths.targets.write_text(self.targets_text())
        if self._load_state().get("cloudflare", True) != self.cloudflare:
            self._stop_edge()  # the edge mode changed: start it again in the new mode
            self._save_state({**self._load_state(), "cloudflare": self.cloudflare})
        self._ensure_edge()
        if not fresh and self._load_state().get("faults"):
            return self.status()  # up already, with faults injected on purpose: `heal` clears them, not `up`
        if not fresh:
            for program in self.programs:  # something stopped by hand is started again
                self.sup.start(program)
            self.backend.start()
        self.wait_healthy(wait_s)
        if fresh:
            self._fresh_logs()  # start-up races (nginx up before the backend) are not evidence of anything
        return self.status()

    def down(self) -> None:
        """Stop everything, remove the namespace and the edge; leaves no lab process behind (data dir stays)."""
        if os.geteuid() != 0:
            raise LabPrerequisiteError("the lab needs root to stop it (its processes and namespace are root's)")
        with contextlib.suppress(SupervisorError, OSError):
            self.backend.signal("CONT")  # a stopped (hung) process cannot act on SIGTERM
        if not self.topology.supervised:
            with contextlib.suppress(OSError, LabError):
                self.backend.stop()
        if self.sup.alive():
            with contextlib.suppress(SupervisorError):
                self.sup.shutdown()
        pid = self._read_pid(self.paths.supervisord_pid)
        if pid:
            if not self._wait(lambda: not _alive(pid), 30, None):
                _kill(pid, signal.SIGKILL)
        self._stop_edge()
        if self._netns_exists():
            self._kill_leftovers()
            self._run(["ip", "netns", "del", self.netns], check=False)
        self._remove_cgroup()
        shutil.rmtree(Path("/etc/netns") / self.netns, ignore_errors=True)
        with contextlib.suppress(OSError):
            Path("/etc/netns").rmdir()  # only when empty: other namespaces' files stay
        self.paths.supervisor_sock.unlink(missing_ok=True)

    def status(self) -> dict[str, Any]:
        programs: dict[str, Any] = {}
        alive = self.sup.alive()
        if alive:
            with contextlib.suppress(SupervisorError):
                programs = self.sup.programs()
        edge_pid = self._edge_pid()
        health = self.request("GET", HEALTH_PATH) if edge_pid else None
        if not self.topology.supervised:
            programs[SERVICE] = {"state": self.backend.state(), "pid": self.backend.pid(),
                                 "description": f"no service manager ({self.topology.manager})", "exitstatus": None,
                                 "spawnerr": ""}
        return {
            "dir": str(self.paths.root),
            "topology": self.topology.to_dict(),
            "netns": {"name": self.netns, "exists": self._netns_exists()},
            "supervisord": {"running": alive, "pid": self._read_pid(self.paths.supervisord_pid) if alive else None,
                            "config": str(self.paths.supervisord_conf)},
            "programs": programs,
            "edge": {"running": edge_pid is not None, "pid": edge_pid, "listen": f"{EDGE_HOST}:{self.edge_port}",
                     "mode": "cloudflare emulation" if self.cloudflare else "plain relay"},
            "health": None if health is None else {"status": health[0], "error": health[2] if health[0] is None
                                                   else None},
            "faults": self._load_state().get("faults", []),
            "toggles": self.toggles.active(),
            "targets": str(self.targets_path),
            "logs": {"app": str(self.paths.app_log), "nginx_error": str(self.paths.nginx_error_log),
                     "edge": str(self.paths.edge_log)},
        }

    def inject(self, name: str, settle_s: float | None = None) -> None:
        from lab.faults import FAULTS

        fault = FAULTS.get(name)
        if fault is None:
            raise LabError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}")
        self._require_up()
        from lab.cgroup import CgroupError

        try:
            fault.inject(self)
        except (CgroupError, SupervisorError, OSError, RuntimeError) as exc:
            raise LabError(f"cannot inject {name}: {exc}") from None
        state = self._load_state()
        state["faults"] = [*[f for f in state.get("faults", []) if f != name], name]
        self._save_state(state)
        timeout = fault.settle_s if settle_s is None else settle_s
        if not self._wait(lambda: fault.settled(self), timeout, None):
            raise LabError(f"fault {name} was injected but is not observable after {timeout:g} s")

    def heal(self, name: str | None = None, wait_s: float = 45.0) -> None:
        """Heal one fault, or (no name) everything back to the baseline; then wait until the site is healthy.

        A full heal also starts the logs afresh (the old text goes to ``<log>.prev``) so the next fault's evidence
        is its own.
        """
        from lab.faults import FAULTS

        self._require_up()
        state = self._load_state()
        if name is not None:
            fault = FAULTS.get(name)
            if fault is None:
                raise LabError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}")
            fault.heal(self)
            state["faults"] = [f for f in state.get("faults", []) if f != name]
        else:
            for injected in reversed(state.get("faults", [])):
                with contextlib.suppress(LabError, SupervisorError, OSError):
                    FAULTS[injected].heal(self)
            self._baseline()
            state["faults"] = []
        self._save_state(state)
        self.wait_healthy(wait_s)
        if name is None:
            self._fresh_logs()  # after the site answers again: lines from the heal itself are not the next fault's

    # ---- helpers the faults use --------------------------------------------------------------------------------
    def request(self, method: str, path: str, body: bytes | None = None,
                timeout_s: float = REQUEST_TIMEOUT_S) -> tuple[int | None, dict[str, str], str]:
        """One request through the edge, as the outside probe makes it: (status or None, headers, body or error)."""
        conn = http.client.HTTPConnection(EDGE_HOST, self.edge_port, timeout=timeout_s)
        try:
            headers = {"Host": SITE_HOST}
            if body is not None:
                headers["Content-Type"] = "application/json"
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            text = resp.read(MAX_RESPONSE_BYTES).decode("utf-8", "replace")
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, text
        except (OSError, http.client.HTTPException) as exc:
            return None, {}, f"{type(exc).__name__}: {exc}"
        finally:
            conn.close()

    def login_status(self, path: str = LOGIN_PATH) -> int | None:
        return self.request("POST", path, BAD_CREDENTIALS)[0]

    def health_status(self) -> int | None:
        return self.request("GET", HEALTH_PATH)[0]

    def healthy(self) -> bool:
        status, _, body = self.request("GET", HEALTH_PATH, timeout_s=5)
        if status != 200:
            return False
        try:
            doc = json.loads(body)
        except ValueError:
            return False
        return doc.get("status") == "healthy" and doc.get("database") == "connected" and self.login_status() == 401

    def wait_healthy(self, wait_s: float = 45.0) -> None:
        if not self._wait(self.healthy, wait_s, None):
            status, _, body = self.request("GET", HEALTH_PATH, timeout_s=5)
            raise LabError(
                f"the lab is not healthy after {wait_s:g} s (health: {status} {body[:200]!r}); "
                f"see `gatewatch lab status` and the logs in {self.paths.logs}"
            )

    def ns_run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
        """Run a fixed program inside the lab's namespace."""
        return self._run(["ip", "netns", "exec", self.netns, *argv], check=check)

    def nginx_files(self, site: NginxSite = NginxSite()) -> dict[Path, str]:  # noqa: B008 - frozen dataclass
        return nginx_files(self.paths, self.topology, site)

    def write_nginx(self, site: NginxSite = NginxSite()) -> None:  # noqa: B008 - frozen dataclass
        """Write the topology's nginx files (only those whose text changes: an mtime is evidence too)."""
        for path, text in self.nginx_files(site).items():
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists() or path.read_text() != text:
                path.write_text(text)
        if self.topology.nginx_layout == "sites":
            link = self.paths.nginx_site_enabled
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.is_symlink():
                link.unlink(missing_ok=True)
                link.symlink_to(Path("..") / "sites-available" / self.paths.nginx_site.name)

    def nginx_is_baseline(self) -> bool:
        return all(p.exists() and p.read_text() == text for p, text in self.nginx_files().items())

    def reload_nginx(self, wait_s: float = 10.0) -> None:
        """Like ``nginx -s reload``, then wait until every worker of the old configuration has left, so the next
        request is served by the new one (an old worker would answer a settle check with the old behaviour)."""
        master = self.sup.pid("nginx")
        old = _children(master) if master else set()
        self.sup.signal("nginx", "HUP")
        if master:
            self._wait(lambda: bool(_children(master)) and not (_children(master) & old), wait_s,
                       f"nginx did not replace its workers within {wait_s:g} s after a reload")

    def backend_pid(self) -> int | None:
        return self.backend.pid()

    def firewall_rules(self) -> list[str]:
        out = self.ns_run(["iptables", "-w", "5", "-S", "INPUT"]).stdout
        return [line for line in out.splitlines() if FIREWALL_TAG in line]

    def add_firewall_rule(self, port: int, action: str) -> None:
        self.ns_run(["iptables", "-w", "5", "-I", "INPUT", "-p", "tcp", "--dport", str(port),
                     "-m", "comment", "--comment", FIREWALL_TAG, "-j", action])

    def clear_firewall(self) -> None:
        """Delete only the rules the lab added (tagged), inside the lab's namespace."""
        for rule in self.firewall_rules():
            args = rule.split()
            if args[:2] == ["-A", "INPUT"]:
                self.ns_run(["iptables", "-w", "5", "-D", *args[1:]])

    def restart_backend(self, wait: bool = True) -> None:
        with contextlib.suppress(SupervisorError, OSError):
            self.backend.signal("CONT")
        self.backend.stop()
        self.backend.start(wait)

    # ---- internals ---------------------------------------------------------------------------------------------
    def _require_up(self) -> None:
        if not self.sup.alive():
            raise LabError(
                f"the lab is not up (no supervisord at {self.paths.supervisor_sock}); run `gatewatch lab up`"
            )

    def _make_dirs(self) -> None:
        p = self.paths
        for d in (p.root, p.run, p.logs, p.toggles, p.nginx_prefix / "conf", p.nginx_prefix / "logs",
                  p.nginx_prefix / "temp", p.stranger_dir, p.backend_socket_dir):
            d.mkdir(parents=True, exist_ok=True)
            d.chmod(0o755)  # postgres and nginx's nobody workers must traverse it
        owner = "mysql" if self.topology.database == "mariadb" else "postgres"
        db_dirs = ((p.mariadb_socket.parent, 0o755), (p.mariadb_data, 0o700)) if owner == "mysql" else \
            ((p.pg_socket_dir, 0o755), (p.pg_data, 0o700))
        user = pwd.getpwnam(owner)
        for d, mode in db_dirs:
            d.mkdir(exist_ok=True)
            os.chown(d, user.pw_uid, user.pw_gid)
            d.chmod(mode)
        if not p.app_dir.is_symlink():
            p.app_dir.unlink(missing_ok=True)
            p.app_dir.symlink_to(REPO_ROOT)
        p.app_socket_dir.mkdir(exist_ok=True)
        p.app_socket_dir.chmod(0o700)  # root only: the socket_permission_denied fault relies on it
        (p.stranger_dir / "index.html").write_text("not the bandarupay backend\n")

    def _write_baseline_files(self, tools: dict[str, str]) -> None:
        p = self.paths
        db_bin = Path(tools["mariadbd"] if self.topology.database == "mariadb" else tools["postgres"])
        p.supervisord_conf.write_text(
            supervisord_conf(p, Path(self.python).parent, db_bin, tools["nginx"], self.python, self.topology)
        )
        for stale in (p.nginx_site, p.nginx_site_enabled, p.nginx_confd_site):  # another topology's layout
            stale.unlink(missing_ok=True)
        self.write_nginx()
        if not self.topology.supervised:
            p.backend_launcher.write_text(backend_launcher(p, self.topology, self.python))
            p.backend_launcher.chmod(0o700)
        if self.topology.database == "mariadb":
            init = p.root / "mariadb-init.sql"
            init.write_text(mariadb_init_sql())
            init.chmod(0o644)
        p.targets.write_text(self.targets_text())
        load_config(p.targets)  # what we hand to gatewatch must be valid
        self.toggles.clear()

    def _init_database(self, tools: dict[str, str]) -> None:
        if self.topology.database == "mariadb":
            if (self.paths.mariadb_data / "mysql").exists():
                return
            self._run([tools["mariadb-install-db"], "--no-defaults", f"--datadir={self.paths.mariadb_data}",
                       "--user=mysql", "--auth-root-authentication-method=socket", "--skip-test-db",
                       "--skip-name-resolve"], timeout_s=180)
            return
        if (self.paths.pg_data / "PG_VERSION").exists():
            return
        pg_bin = Path(tools["postgres"]).parent
        self._run(["runuser", "-u", "postgres", "--", str(pg_bin / "initdb"), "-D", str(self.paths.pg_data),
                   "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"], timeout_s=120)

    def _remove_cgroup(self) -> None:
        from lab.cgroup import CgroupError, MemoryCgroup

        with contextlib.suppress(CgroupError, OSError):
            MemoryCgroup(f"gatewatch-lab-{self.netns}").remove()

    def _kill_leftovers(self) -> None:
        """SIGKILL every process inside the lab's own namespace (nothing else lives there)."""
        if not self._netns_exists():
            return
        out = self._run(["ip", "netns", "pids", self.netns], check=False).stdout
        pids = [int(line) for line in out.split() if line.isdigit()]
        for pid in pids:
            _kill(pid, signal.SIGKILL)
        self._wait(lambda: not any(_alive(pid) for pid in pids), 5, None)

    def _netns_exists(self) -> bool:
        return Path("/run/netns", self.netns).exists()

    def _ensure_netns(self, ip: str) -> None:
        if not self._netns_exists():
            self._run([ip, "netns", "add", self.netns])
        self._run([ip, "netns", "exec", self.netns, ip, "link", "set", "lo", "up"])
        hosts = Path("/etc/netns") / self.netns / "hosts"
        hosts.parent.mkdir(parents=True, exist_ok=True)
        hosts.write_text(NETNS_HOSTS)  # the lab's own /etc/hosts: localhost is both 127.0.0.1 and ::1

    def _edge_pid(self) -> int | None:
        pid = self._read_pid(self.paths.edge_pid)
        if pid and _alive(pid) and b"lab.edge" in _cmdline(pid):
            return pid
        return None

    def _ensure_edge(self) -> None:
        if self._edge_pid():
            return
        self.paths.edge_pid.unlink(missing_ok=True)
        argv = [self.python, "-m", "lab.edge", "--listen", f"{EDGE_HOST}:{self.edge_port}",
                "--netns", f"/run/netns/{self.netns}", "--origin", f"{ORIGIN_HOST}:{NGINX_PORT}",
                "--pidfile", str(self.paths.edge_pid)]
        if self.cloudflare:
            argv.append("--cloudflare")
        with open(self.paths.edge_log, "ab") as log:
            env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}  # `lab` is not installed: it lives in the checkout
            self._edge_proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                               env=env,
                                               start_new_session=True, cwd=str(self.paths.root))
        if not self._wait(lambda: self._edge_pid() is not None or self._edge_proc.poll() is not None, 10, None) \
                or self._edge_proc.poll() is not None:
            tail = self.paths.edge_log.read_text(errors="replace")[-400:]
            raise LabError(f"the edge did not start on {EDGE_HOST}:{self.edge_port}: {tail.strip()}")

    def _stop_edge(self) -> None:
        pid = self._edge_pid()
        if pid:
            _kill(pid, signal.SIGTERM)
            if not self._wait(lambda: not _alive(pid), 5, None):
                _kill(pid, signal.SIGKILL)
        if self._edge_proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._edge_proc.wait(timeout=5)
            self._edge_proc = None
        self.paths.edge_pid.unlink(missing_ok=True)

    def _baseline(self) -> None:
        """Put every part back as ``up`` made it, touching only what differs."""
        with contextlib.suppress(SupervisorError, OSError):
            self.backend.signal("CONT")
        restart_backend = bool({"crash_on_import", "fd_leak", "listen_unix", "listen_wrong_port", "memory_hog",
                                "listen_moved", "block_loop"} & set(self.toggles.active()))
        self.toggles.clear()
        self.paths.memory_cgroup_file.unlink(missing_ok=True)
        self.clear_firewall()
        if self.paths.targets.read_text() != self.targets_text():
            self.paths.targets.write_text(self.targets_text())
        self.sup.stop("stranger")
        self.sup.stop("dbhog")
        programs = self.sup.programs()
        self.sup.start(self.topology.db_program)
        pid = self.backend.pid()
        if pid and _nofile(pid) != _nofile(self._read_pid(self.paths.supervisord_pid) or os.getpid()):
            restart_backend = True
        if restart_backend or self.backend.state() != "RUNNING":
            self.restart_backend()
        conf_changed = not self.nginx_is_baseline()
        if conf_changed:
            self.write_nginx()
        if programs["nginx"]["state"] != "RUNNING":
            self.sup.stop("nginx")
            self.sup.start("nginx")
        elif conf_changed:
            self.reload_nginx()
        self._remove_cgroup()
        self._ensure_edge()

    def _fresh_logs(self) -> None:
        for log in (self.paths.app_log, self.paths.nginx_error_log, self.paths.logs / "supervisord.log"):
            if log.exists() and log.stat().st_size:
                shutil.copyfile(log, log.with_name(log.name + ".prev"))
                with open(log, "r+b") as fh:  # every writer appends (O_APPEND), so truncating in place is safe
                    fh.truncate(0)

    def _load_state(self) -> dict[str, Any]:
        try:
            return json.loads(self.paths.state.read_text())
        except (OSError, ValueError):
            return {"faults": []}

    def _save_state(self, state: dict[str, Any]) -> None:
        self.paths.state.write_text(json.dumps(state, indent=2) + "\n")

    @staticmethod
    def _read_pid(path: Path) -> int | None:
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError):
            return None

    @staticmethod
    def _wait(predicate: Callable[[], bool], timeout_s: float, error: str | None, every_s: float = 0.25) -> bool:
        deadline = time.monotonic() + timeout_s
        while True:
            if predicate():
                return True
            if time.monotonic() >= deadline:
                if error:
                    raise LabError(error)
                return False
            time.sleep(every_s)

    @staticmethod
    def _run(argv: list[str], check: bool = True, timeout_s: float = COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess:
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise LabError(f"`{' '.join(argv)}` did not finish in {timeout_s:g} s") from None
        except FileNotFoundError:
            raise LabPrerequisiteError(f"`{argv[0]}` is not installed") from None
        if check and result.returncode != 0:
            detail = (result.stderr or result.stdout).strip()
            raise LabError(f"`{' '.join(argv)}` failed ({result.returncode}): {detail}")
        return result


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _children(pid: int) -> set[int]:
    """Live child pids of ``pid`` (nginx's workers), from /proc."""
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == str(pid) and fields[0] not in ("Z", "X"):
            out.add(int(stat.parent.name))
    return out


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _nofile(pid: int) -> tuple[int, int] | None:
    try:
        return resource.prlimit(pid, resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return None


class SupervisedBackend:
    """The backend as supervisord's program (the supervisor topologies)."""

    def __init__(self, lab: Lab):
        self.sup = lab.sup

    def pid(self) -> int | None:
        return self.sup.pid(SERVICE)

    def state(self) -> str:
        return self.sup.state(SERVICE)

    def start(self, wait: bool = True) -> None:
        self.sup.start(SERVICE, wait)

    def stop(self) -> None:
        self.sup.stop(SERVICE)

    def signal(self, name: str) -> None:
        self.sup.signal(SERVICE, name)


class BareBackend:
    """The backend without a service manager: ``run-backend.sh`` (a shell restart loop, or ``exec`` of one plain
    process) started in its own session inside the namespace. The lab keeps the launcher's pid; gatewatch does not
    (the targets file says ``service_manager: command`` and finds the server by its command line)."""

    START_WAIT_S = 20.0

    def __init__(self, lab: Lab):
        self.lab = lab
        self._proc: subprocess.Popen | None = None

    def launcher_pid(self) -> int | None:
        pid = self.lab._read_pid(self.lab.paths.backend_launcher_pid)
        if pid and _alive(pid) and (b"run-backend.sh" in _cmdline(pid) or b"lab.backend" in _cmdline(pid)):
            return pid
        return None

    def pid(self) -> int | None:
        launcher = self.launcher_pid()
        if not launcher:
            return None
        if self.lab.topology.manager == "plain":
            return launcher  # the shell exec'd the server
        for child in sorted(_children(launcher)):
            if b"lab.backend" in _cmdline(child):
                return child
        return None

    def state(self) -> str:
        if self.pid():
            return "RUNNING"
        return "STARTING" if self.launcher_pid() else "STOPPED"

    def start(self, wait: bool = True) -> None:
        if self.launcher_pid():
            return
        argv = ["ip", "netns", "exec", self.lab.netns, "/bin/sh", str(self.lab.paths.backend_launcher)]
        self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,  # noqa: S603
                                      stderr=subprocess.DEVNULL, start_new_session=True,
                                      cwd=str(self.lab.paths.root))
        self.lab.paths.backend_launcher_pid.write_text(f"{self._proc.pid}\n")
        if wait:
            self.lab._wait(lambda: self.pid() is not None, self.START_WAIT_S,
                           f"the backend ({self.lab.topology.manager}) did not start; see {self.lab.paths.app_log}")

    def stop(self) -> None:
        launcher = self.launcher_pid()
        if launcher:
            for sig in (signal.SIGCONT, signal.SIGTERM):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(launcher, sig)  # the launcher leads its own session: the loop and the server
            if not self.lab._wait(lambda: not _group_alive(launcher), 10, None):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(launcher, signal.SIGKILL)
                self.lab._wait(lambda: not _group_alive(launcher), 5, None)
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)
            self._proc = None
        self.lab.paths.backend_launcher_pid.unlink(missing_ok=True)

    def signal(self, name: str) -> None:
        pid = self.pid()
        if pid:
            _kill(pid, getattr(signal, f"SIG{name}"))


def _group_alive(pgid: int) -> bool:
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False
