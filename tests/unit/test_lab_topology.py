"""The lab's topologies as data (no root, no servers): every value of every axis is covered, each topology renders
a valid gatewatch targets file and the nginx layout it names, and the backend starts the way it says."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatewatch.config import load_config
from lab.backend.serve import server_argv
from lab.faults import FAULTS, faults_for
from lab.layout import LabPaths
from lab.render import backend_launcher, nginx_files, supervisord_conf, targets_yaml
from lab.toggles import Toggles
from lab.topology import APP_SERVERS, BINDS, DATABASES, MANAGERS, NGINX_LAYOUTS, TOPOLOGIES, coverage, get

AXES = {"app_server": APP_SERVERS, "bind": BINDS, "manager": MANAGERS, "database": DATABASES,
        "nginx_layout": NGINX_LAYOUTS}


def test_the_topologies_cover_every_value_of_every_axis():
    assert len(TOPOLOGIES) >= 3
    covered = coverage()
    for axis, values in AXES.items():
        assert covered[axis] == set(values), f"no topology uses {set(values) - covered[axis]} for {axis}"


def test_unknown_topology_names_the_known_ones():
    with pytest.raises(ValueError, match="known: classic"):
        get("nope")
    assert get(None).name == "classic"


@pytest.mark.parametrize("name", list(TOPOLOGIES))
def test_targets_file_describes_the_topology(tmp_path, name):
    topo = TOPOLOGIES[name]
    paths = LabPaths(tmp_path)
    path = tmp_path / "targets.yaml"
    path.write_text(targets_yaml(paths, "gwlab", topo=topo))
    host = load_config(path).target("lab-api").host
    if topo.unix:
        assert host.backend_socket == str(paths.backend_socket)
    else:
        assert host.backend_socket is None and host.backend_port == 8000
    if topo.supervised:
        assert host.service_manager == "supervisor" and host.supervisor_config == str(paths.supervisord_conf)
    else:
        assert host.service_manager == "command" and host.process_match == str(paths.app_dir)
    expected = ("mysql", 3306) if topo.database == "mariadb" else ("postgresql", 5432)
    assert (host.database.kind, host.database.port) == expected


@pytest.mark.parametrize("name", list(TOPOLOGIES))
def test_nginx_layout_and_upstream(tmp_path, name):
    topo = TOPOLOGIES[name]
    paths = LabPaths(tmp_path)
    files = nginx_files(paths, topo)
    main = files[paths.nginx_conf]
    site = {"single": paths.nginx_conf, "sites": paths.nginx_site, "confd": paths.nginx_confd_site}[topo.nginx_layout]
    assert set(files) == {paths.nginx_conf, site}
    assert "server_name backend.lab.test" in files[site]
    if topo.nginx_layout == "sites":
        assert f"include {paths.nginx_site_enabled.parent}/*;" in main
    elif topo.nginx_layout == "confd":
        assert f"include {paths.nginx_confd_site.parent}/*.conf;" in main
    upstream = f"server unix:{paths.backend_socket};" if topo.unix else "server 127.0.0.1:8000;"
    assert upstream in files[site]


@pytest.mark.parametrize("name", list(TOPOLOGIES))
def test_supervisord_runs_the_backend_only_under_the_supervisor_manager(tmp_path, name):
    topo = TOPOLOGIES[name]
    paths = LabPaths(tmp_path)
    conf = supervisord_conf(paths, Path("/venv/bin"), Path("/usr/sbin/db"), "/usr/sbin/nginx", "/venv/bin/python",
                            topo)
    assert ("[program:bandarupay-backend]" in conf) == topo.supervised
    assert f"[program:{topo.db_program}]" in conf and "[program:dbhog]" in conf
    assert "max_connections=20" in conf.replace("-", "_")
    if not topo.supervised:
        script = backend_launcher(paths, topo, "/venv/bin/python")
        assert ("while true" in script) == (topo.manager == "loop")
        assert ("exec /venv/bin/python -m lab.backend.serve" in script) == (topo.manager == "plain")
        assert f"GATEWATCH_LAB_TOPOLOGY='{name}'" in script


@pytest.mark.parametrize("name", list(TOPOLOGIES))
def test_the_backend_starts_as_the_topology_says(tmp_path, name):
    topo = TOPOLOGIES[name]
    paths = LabPaths(tmp_path)
    paths.app_dir.parent.mkdir(parents=True, exist_ok=True)
    paths.app_dir.symlink_to(Path(__file__).resolve().parents[2])
    argv = server_argv(paths, topo, "python")
    assert argv[2] == topo.app_server
    assert str(paths.app_dir) in " ".join(argv)  # what process_match finds: this lab's backend, no other
    if topo.app_server == "gunicorn":
        assert "uvicorn.workers.UvicornWorker" in argv
    where = f"unix:{paths.backend_socket}" if topo.unix else "127.0.0.1:8000"
    text = " ".join(argv)
    assert (where in text) if topo.app_server == "gunicorn" else (
        str(paths.backend_socket) in text if topo.unix else "--port 8000" in text)
    Toggles(paths.toggles).set("listen_moved")
    moved = " ".join(server_argv(paths, topo, "python"))
    assert (str(paths.moved_socket) in moved) if topo.unix else ("8001" in moved)


def test_faults_apply_where_they_can_be_real():
    assert set(faults_for(TOPOLOGIES["classic"])) == set(FAULTS) - {"stale_socket"}
    sock = faults_for(TOPOLOGIES["gunicorn-socket-mariadb"])
    assert "stale_socket" in sock
    assert not {"port_conflict", "firewall_reject", "localhost_ipv6", "fd_exhaustion"} & set(sock)
    assert "crash_loop" in faults_for(TOPOLOGIES["bare-loop"])
    assert "crash_loop" not in faults_for(TOPOLOGIES["bare-plain"])  # nothing restarts it: no loop to see
    for name in ("stale_config", "database_connection_limit", "backend_stopped", "backend_hung"):
        assert all(name in faults_for(t) for t in TOPOLOGIES.values())
