"""The lab's topology: how the origin is put together, along four axes (plus the nginx config layout).

- app server: ``uvicorn`` (one process) or ``gunicorn`` (a master with uvicorn workers);
- bind: ``tcp`` (127.0.0.1:8000) or ``unix`` (a socket file nginx proxies to);
- manager: ``supervisor`` (supervisord runs the backend), ``loop`` (a shell ``while true`` loop restarts it, no
  service manager) or ``plain`` (started once in the background; nothing restarts it);
- database: ``postgresql`` or ``mariadb`` (``mariadbd`` run by hand under the lab's own directory);
- nginx layout: ``single`` (one nginx.conf), ``sites`` (Debian's sites-available with a symlink in sites-enabled)
  or ``confd`` (a file in conf.d).

supervisord still runs nginx and the database in every topology: they are the lab's infrastructure. With the
``loop`` and ``plain`` managers the backend is not supervisord's program and the targets file says
``service_manager: command``, so gatewatch sees a host without a service manager for the backend.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

APP_SERVERS = ("uvicorn", "gunicorn")
BINDS = ("tcp", "unix")
MANAGERS = ("supervisor", "loop", "plain")
DATABASES = ("postgresql", "mariadb")
NGINX_LAYOUTS = ("single", "sites", "confd")
DEFAULT = "classic"


@dataclass(frozen=True)
class Topology:
    name: str
    app_server: str
    bind: str
    manager: str
    database: str
    nginx_layout: str
    description: str

    def __post_init__(self) -> None:
        for axis, allowed in (("app_server", APP_SERVERS), ("bind", BINDS), ("manager", MANAGERS),
                              ("database", DATABASES), ("nginx_layout", NGINX_LAYOUTS)):
            if getattr(self, axis) not in allowed:
                raise ValueError(f"topology {self.name}: {axis} must be one of {', '.join(allowed)}")

    @property
    def supervised(self) -> bool:
        return self.manager == "supervisor"

    @property
    def unix(self) -> bool:
        return self.bind == "unix"

    @property
    def db_program(self) -> str:
        """The supervisord program that runs the database."""
        return "mariadb" if self.database == "mariadb" else "postgres"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


TOPOLOGIES: dict[str, Topology] = {t.name: t for t in (
    Topology("classic", "uvicorn", "tcp", "supervisor", "postgresql", "single",
             "uvicorn on 127.0.0.1:8000 under supervisord, PostgreSQL, one nginx.conf (the lab's first topology)"),
    Topology("gunicorn-socket-mariadb", "gunicorn", "unix", "supervisor", "mariadb", "sites",
             "gunicorn with uvicorn workers on a unix socket under supervisord, MariaDB, Debian's "
             "sites-available/sites-enabled"),
    Topology("bare-loop", "uvicorn", "tcp", "loop", "postgresql", "confd",
             "uvicorn on 127.0.0.1:8000 restarted by a shell `while true` loop (no service manager), PostgreSQL, "
             "a site in conf.d"),
    Topology("bare-plain", "uvicorn", "unix", "plain", "postgresql", "sites",
             "uvicorn on a unix socket started once in the background (nothing restarts it), PostgreSQL, "
             "sites-available/sites-enabled"),
)}


def get(name: str | None) -> Topology:
    if name is None:
        return TOPOLOGIES[DEFAULT]
    try:
        return TOPOLOGIES[name]
    except KeyError:
        raise ValueError(f"unknown topology {name!r}; known: {', '.join(TOPOLOGIES)}") from None


def coverage() -> dict[str, set[str]]:
    """Which value of every axis some topology uses (a test demands every value is covered)."""
    out: dict[str, set[str]] = {}
    for t in TOPOLOGIES.values():
        for axis in ("app_server", "bind", "manager", "database", "nginx_layout"):
            out.setdefault(axis, set()).add(getattr(t, axis))
    return out
