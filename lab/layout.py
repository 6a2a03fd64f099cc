"""Where every lab file lives, derived from one directory so the lab, its backend and its tests agree."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DIR = "/tmp/gatewatch-lab"  # noqa: S108 - a lab scratch directory, owned and removed by the lab
DIR_ENV = "GATEWATCH_LAB_DIR"
NETNS = "gwlab"
EDGE_HOST, EDGE_PORT = "127.0.0.1", 18080
ORIGIN_HOST, NGINX_PORT = "127.0.0.1", 80
BACKEND_PORT, WRONG_PORT = 8000, 8001
DB_PORT = 5432
MARIADB_PORT = 3306
DB_USER, DB_PASSWORD, DB_NAME = "bandarupay", "lab-only-password", "bandarupay"  # MariaDB
SITE_HOST = "backend.lab.test"
SERVICE = "bandarupay-backend"
LOGIN_PATH = "/api/v1/auth/demo-login"
WRONG_LOGIN_PATH = "/api/v1/demo-login"  # the runbook's own mistake: the router is mounted at /api/v1/auth
HEALTH_PATH = "/api/v1/health"


def lab_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """An explicit argument beats the environment, which beats the default."""
    return Path(explicit or os.environ.get(DIR_ENV) or DEFAULT_DIR).absolute()


@dataclass(frozen=True)
class LabPaths:
    root: Path

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def toggles(self) -> Path:
        return self.root / "toggles"

    @property
    def state(self) -> Path:
        return self.root / "state.json"

    @property
    def pg_data(self) -> Path:
        return self.root / "pg"

    @property
    def pg_socket_dir(self) -> Path:
        return self.root / "pgrun"

    @property
    def nginx_prefix(self) -> Path:
        return self.root / "nginx"

    @property
    def nginx_conf(self) -> Path:
        return self.nginx_prefix / "conf" / "nginx.conf"

    @property
    def nginx_error_log(self) -> Path:
        return self.nginx_prefix / "logs" / "error.log"

    @property
    def app_log(self) -> Path:
        return self.logs / "app.log"

    @property
    def supervisord_conf(self) -> Path:
        return self.root / "supervisord.conf"

    @property
    def supervisor_sock(self) -> Path:
        return self.run / "supervisor.sock"

    @property
    def supervisord_pid(self) -> Path:
        return self.run / "supervisord.pid"

    @property
    def edge_pid(self) -> Path:
        return self.run / "edge.pid"

    @property
    def edge_log(self) -> Path:
        return self.logs / "edge.log"

    @property
    def targets(self) -> Path:
        return self.root / "targets.yaml"

    @property
    def app_socket_dir(self) -> Path:
        """Holds the backend's unix socket; mode 0700 so nginx's ``nobody`` workers cannot reach it."""
        return self.run / "app"

    @property
    def app_socket(self) -> Path:
        return self.app_socket_dir / "backend.sock"

    @property
    def backend_socket_dir(self) -> Path:
        """Holds the backend's unix socket in the unix topologies (0755: nginx's workers reach the socket)."""
        return self.run / "sock"

    @property
    def backend_socket(self) -> Path:
        return self.backend_socket_dir / "backend.sock"

    @property
    def moved_socket(self) -> Path:
        """Where the backend moves to in the stale_config fault (unix topologies)."""
        return self.backend_socket_dir / "backend-v2.sock"

    @property
    def app_dir(self) -> Path:
        """A symlink to the checkout that the backend runs from (--app-dir / --chdir): the lab's own directory in the
        server's command line, so ``process_match`` finds this lab's backend and never another lab's on the host."""
        return self.root / "app"

    @property
    def backend_launcher(self) -> Path:
        """The shell script that starts the backend without supervisord (loop and plain managers)."""
        return self.root / "run-backend.sh"

    @property
    def backend_launcher_pid(self) -> Path:
        return self.run / "backend-launcher.pid"

    @property
    def mariadb_data(self) -> Path:
        return self.root / "mariadb"

    @property
    def mariadb_socket(self) -> Path:
        return self.root / "mariadbrun" / "mysqld.sock"

    @property
    def nginx_site(self) -> Path:
        """The file that holds the site's server block (nginx.conf itself in the single layout)."""
        return self.nginx_prefix / "conf" / "sites-available" / "backend.lab.test"

    @property
    def nginx_site_enabled(self) -> Path:
        return self.nginx_prefix / "conf" / "sites-enabled" / "backend.lab.test"

    @property
    def nginx_confd_site(self) -> Path:
        return self.nginx_prefix / "conf" / "conf.d" / "backend.lab.test.conf"

    @property
    def stranger_dir(self) -> Path:
        return self.root / "stranger"

    @property
    def memory_cgroup_file(self) -> Path:
        """Names the lab's memory cgroup while the oom_kill fault is in (read by lab.backend.serve)."""
        return self.run / "memory-cgroup"
