"""The catalogue's rules, each with the reason a human reads; the argv it builds; hostile config rejected at load."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from gatewatch.clock import FakeClock
from gatewatch.config import ConfigError, load_config_text
from gatewatch.config.models import Host
from gatewatch.remediation import CATALOGUE, CatalogueError, CommandError, commands_for, plan, remediation_params
from gatewatch.remediation.catalogue import CATALOGUE_PATH, load_catalogue
from gatewatch.store import SQLiteStore

LAB_HOST = {
    "local": True,
    "netns": "gwlab",
    "service": "bandarupay-backend",
    "service_manager": "supervisor",
    "supervisor_config": "/tmp/gatewatch-lab/supervisord.conf",
}


def make_target(host=None, mode="auto", **extra):
    doc = {"name": "lab-api", "url": "http://127.0.0.1:18080/api/v1/health", "remediation": {"mode": mode}}
    doc["host"] = LAB_HOST if host is None else host
    doc.update(extra)
    return load_config_text(yaml.safe_dump({"targets": [doc]})).targets[0]


def facts(test_ok=True, newer=None, signatures=(), targets=(("127.0.0.1", 8000),), crash_loop=False,
          listening=False, owned=None, process=None):
    return {
        "schema": 1,
        "onbox": {
            "service": {"status": "ok", "value": {"crash_loop": crash_loop, "restarts_recent": 0}},
            "port": {"status": "ok", "value": {"listening": listening, "owned_by_service": owned, "process": process}},
            "nginx": {
                "status": "ok",
                "value": {
                    "config_test_ok": test_ok,
                    "config_test_output": "nginx: configuration file test is successful" if test_ok else "emerg",
                    "config_newer_than_master": newer,
                    "targets": [{"host": h, "port": p, "unix": None} for h, p in targets],
                },
                "error_signatures": [
                    {"signature": "connection_refused", "count": 3, "upstream": u} for u in signatures
                ],
            },
        },
    }


@pytest.fixture()
def store(tmp_path):
    s = SQLiteStore(tmp_path / "gw.db")
    yield s
    s.close()


@pytest.fixture()
def clock():
    return FakeClock(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))


def decide(store, clock, category, action, fx=None, target=None, incident="inc-1"):
    verdict = {"category": category, "remediation": action, "evidence": [{"fact": "x", "value": 1, "quote": None}]}
    return plan(verdict, facts() if fx is None else fx, target or make_target(), store=store, clock=clock,
                incident_id=incident)


# restart_backend


@pytest.mark.parametrize("category", ["backend_down", "backend_hung", "out_of_memory"])
def test_restart_backend_is_allowed_for_a_dead_hung_or_oom_killed_backend(store, clock, category):
    d = decide(store, clock, category, "restart_backend")
    assert d.allowed and d.guard == "all"
    assert d.commands == [
        "supervisorctl", "-c", "/tmp/gatewatch-lab/supervisord.conf", "restart", "bandarupay-backend"
    ]


@pytest.mark.parametrize(
    ("category", "words"),
    [
        ("backend_crash_loop", "restarting it again will not heal it"),
        ("port_conflict", "gatewatch never kills a process it does not own"),
        ("proxy_config_invalid", "the fault is in nginx or its configuration"),
        ("proxy_upstream_mismatch", "the fault is in nginx or its configuration"),
        ("database_unavailable", "will not bring the database back"),
        ("route_not_found", "restart_backend is catalogued for backend_down, backend_hung, out_of_memory only, "
                            "not for route_not_found"),
    ],
)
def test_restart_backend_is_refused_with_the_reason_in_words(store, clock, category, words):
    d = decide(store, clock, category, "restart_backend")
    assert not d.allowed and not d.would_run
    assert d.guard == "catalogue"
    assert words in d.reason


def test_restart_is_refused_when_the_facts_show_a_crash_loop_even_if_the_category_says_down(store, clock):
    d = decide(store, clock, "backend_down", "restart_backend", facts(crash_loop=True))
    assert (d.allowed, d.guard) == (False, "precondition:not_crash_looping")
    assert "crash loop" in d.reason


def test_restart_is_refused_when_a_stranger_holds_the_port(store, clock):
    fx = facts(listening=True, owned=False, process="python3 -m http.server 8000")
    d = decide(store, clock, "backend_hung", "restart_backend", fx)
    assert (d.allowed, d.guard) == (False, "precondition:port_not_held_by_stranger")
    assert "python3 -m http.server 8000" in d.reason


# start_proxy


def test_start_proxy_is_allowed_when_nginx_t_passes(store, clock):
    d = decide(store, clock, "proxy_down", "start_proxy", facts(test_ok=True))
    assert d.allowed
    assert d.commands[-2:] == ["start", "nginx"]
    assert {"guard": "precondition:nginx_config_test_ok"}.items() <= d.passed[2].items()


@pytest.mark.parametrize(("test_ok", "words"), [(False, "nginx -t fails"), (None, "nginx -t result unknown")])
def test_start_proxy_is_refused_unless_nginx_t_is_known_to_pass(store, clock, test_ok, words):
    d = decide(store, clock, "proxy_down", "start_proxy", facts(test_ok=test_ok))
    assert (d.allowed, d.guard) == (False, "precondition:nginx_config_test_ok")
    assert words in d.reason


def test_start_proxy_without_any_onbox_facts_fails_closed(store, clock):
    d = decide(store, clock, "proxy_down", "start_proxy", {"schema": 1, "onbox": None})
    assert not d.allowed and "unknown" in d.reason


def test_start_proxy_is_not_for_a_broken_config(store, clock):
    d = decide(store, clock, "proxy_config_invalid", "start_proxy")
    assert (d.allowed, d.guard) == (False, "catalogue")
    assert "gatewatch never edits configuration" in d.reason


# reload_proxy


def test_reload_is_allowed_when_the_file_is_newer_than_the_running_master(store, clock):
    d = decide(store, clock, "proxy_upstream_mismatch", "reload_proxy", facts(newer=True))
    assert d.allowed
    assert d.commands == ["supervisorctl", "-c", "/tmp/gatewatch-lab/supervisord.conf", "signal", "HUP", "nginx"]
    assert any("newer than the running nginx master" in p["reason"] for p in d.passed)


def test_reload_is_allowed_when_the_error_log_upstream_differs_from_nginx_T(store, clock):
    fx = facts(newer=None, signatures=["http://127.0.0.1:8001/api/v1/auth/demo-login"])
    d = decide(store, clock, "proxy_upstream_mismatch", "reload_proxy", fx)
    assert d.allowed
    assert any("127.0.0.1:8001" in p["reason"] and "127.0.0.1:8000" in p["reason"] for p in d.passed)


@pytest.mark.parametrize(
    ("logged", "on_disk"),
    [
        ("http://127.0.0.1:8000/health", ("localhost", 8000)),  # nginx logs the resolved address
        ("http://[::1]:8000/health", ("[::1]", 8000)),
        ("http://[::1]:8000/health", ("::1", 8000)),
        ("http://unix:/run/app.sock:/health", (None, None)),
    ],
)
def test_the_same_upstream_written_differently_is_not_a_stale_config(store, clock, logged, on_disk):
    fx = facts(newer=None, signatures=[logged], targets=[on_disk])
    if on_disk == (None, None):
        fx["onbox"]["nginx"]["value"]["targets"] = [{"host": None, "port": None, "unix": "/run/app.sock"}]
    d = decide(store, clock, "proxy_upstream_mismatch", "reload_proxy", fx)
    assert (d.allowed, d.guard) == (False, "precondition:running_config_stale")


@pytest.mark.parametrize(
    ("fx", "words"),
    [
        (facts(newer=False), "already uses the configuration on disk"),
        (facts(newer=None, signatures=["http://127.0.0.1:8000/health"]), "no evidence"),
        (facts(newer=None), "no evidence"),
        (facts(test_ok=False, newer=True), "nginx -t fails"),
    ],
)
def test_reload_is_refused_without_a_tested_newer_config(store, clock, fx, words):
    d = decide(store, clock, "proxy_upstream_mismatch", "reload_proxy", fx)
    assert not d.allowed and d.guard.startswith("precondition:")
    assert words in d.reason


# verdicts without a safe fix, and unknown actions


def test_a_verdict_without_a_fix_tells_the_human_what_gatewatch_will_not_do(store, clock):
    d = decide(store, clock, "port_conflict", None)
    assert d.action is None and not d.allowed
    assert "kill -9 $(lsof -t -i:8000)" in d.reason and "gatewatch will not" in d.reason
    [rec] = store.list_actions(incident_id="inc-1")
    assert (rec.decision, rec.action) == ("no_action", "none")


@pytest.mark.parametrize(
    ("category", "words"),
    [("firewall_blocked", "ufw allow 8000"), ("out_of_memory", "drop_caches"), ("host_unreachable", "reboots"),
     ("backend_hung", "pkill -9 -f")],
)
def test_never_automate_explains_the_runbooks_unsafe_fixes(category, words):
    assert words in CATALOGUE.warning(category)


def test_an_uncatalogued_action_is_refused(store, clock):
    d = decide(store, clock, "host_unreachable", "reboot")
    assert (d.allowed, d.guard) == (False, "catalogue")
    assert "'reboot' is not a catalogued action" in d.reason


# argv


def test_systemd_commands():
    host = Host(service="api.service", proxy_service="nginx")
    assert commands_for("restart_backend", host) == ["systemctl", "restart", "api.service"]
    assert commands_for("start_proxy", host) == ["systemctl", "start", "nginx"]
    assert commands_for("reload_proxy", host) == ["systemctl", "reload", "nginx"]


def test_supervisor_without_a_config_path_drops_the_optional_group():
    host = Host(service="app", service_manager="supervisor")
    assert commands_for("restart_backend", host) == ["supervisorctl", "restart", "app"]


def test_command_templates_fill_placeholders_as_whole_argv_elements():
    host = make_target(host={
        "local": True, "service": "app", "service_manager": "command",
        "allowed_programs": ["/usr/local/bin/appctl"],
        "commands": {"restart_backend": ["/usr/local/bin/appctl", "restart", "{service}", "--port={backend_port}"]},
    }).host
    assert commands_for("restart_backend", host) == ["/usr/local/bin/appctl", "restart", "app", "--port=8000"]
    with pytest.raises(CommandError, match="host.commands has no start_proxy template"):
        commands_for("start_proxy", host)


def test_commands_need_the_service_name_and_a_host():
    with pytest.raises(CommandError, match="host.service is not set"):
        commands_for("restart_backend", Host())
    with pytest.raises(CommandError, match="no host section"):
        commands_for("restart_backend", None)
    with pytest.raises(CommandError, match="unknown action 'reboot'"):
        commands_for("reboot", Host(service="app"))


def test_a_host_built_in_code_around_validation_is_still_refused():
    hostile = Host.model_construct(**{**Host().model_dump(), "service": "app;reboot"})
    with pytest.raises(CommandError, match="not a safe service name"):
        commands_for("restart_backend", hostile)


def test_a_missing_service_is_refused_by_the_host_guard(store, clock):
    target = make_target(host={"local": True})
    d = decide(store, clock, "backend_down", "restart_backend", target=target)
    assert (d.allowed, d.guard) == (False, "host")
    assert "host.service is not set" in d.reason


def test_command_templates_only_run_through_the_local_runner(store, clock):
    target = make_target(host={
        "instance_id": "i-0123456789abcdef0", "service": "app", "service_manager": "command",
        "allowed_programs": ["appctl"], "commands": {"restart_backend": ["appctl", "restart"]},
    })
    d = decide(store, clock, "backend_down", "restart_backend", target=target)
    assert (d.allowed, d.guard) == (False, "runner")


def test_params_for_the_ssm_document_are_fixed_fields():
    host = Host(instance_id="i-0123456789abcdef0", service="app")
    assert remediation_params("start_proxy", host) == {
        "action": "start_proxy", "argv": ["systemctl", "start", "nginx"], "service_manager": "systemd",
        "service": "app", "proxy_service": "nginx", "supervisor_config": None,
        "nginx_bin": "nginx", "nginx_conf": None, "nginx_prefix": None,
    }


# hostile configuration is rejected when the file is loaded, naming the field

HOSTILE = [
    ({"service": "backend; rm -rf /"},
     "targets[0].host.service: must be a service name of letters, digits and . _ @ : - not starting with '-' "
     "(got 'backend; rm -rf /')"),
    ({"service": "app", "proxy_service": "--now"},
     "targets[0].host.proxy_service: must be a service name of letters, digits and . _ @ : - not starting with "
     "'-' (got '--now')"),
    ({"service": "app", "proxy_service": "nginx$(reboot)"},
     "targets[0].host.proxy_service: must be a service name of letters, digits and . _ @ : - not starting with "
     "'-' (got 'nginx$(reboot)')"),
    ({"service": "app", "service_manager": "supervisor", "supervisor_config": "/etc/../root/x.conf"},
     "targets[0].host.supervisor_config: must be an absolute path of letters, digits and . _ / + - with no '..' "
     "(got '/etc/../root/x.conf')"),
    ({"service_manager": "command", "commands": {"restart_backend": ["sh", "-c", "reboot"]}},
     "targets[0].host.commands: restart_backend: 'sh' would bring a shell back; name the program to run directly"),
    ({"service_manager": "command", "commands": {"restart_backend": ["systemctl", "restart; reboot"]}},
     "targets[0].host.commands: restart_backend: argument 'restart; reboot' has characters outside letters, "
     "digits and _ . / : = @ % + , - (no spaces, quotes or shell syntax: each argv element is passed as is, "
     "without a shell)"),
    ({"service_manager": "command", "commands": {"restart_backend": ["systemctl", "{home}"]}},
     "targets[0].host.commands: restart_backend: unknown placeholder {home} in '{home}'; allowed: {service}, "
     "{proxy_service}, {supervisor_config}, {backend_port}, {nginx_port}"),
    ({"service_manager": "command", "commands": {"restart_backend": ["-rf"]}},
     "targets[0].host.commands: restart_backend: the program must be a bare name or an absolute path of letters, "
     "digits and . _ / + - (got '-rf')"),
    ({"service": "app", "commands": {"restart_backend": ["systemctl"]}},
     "targets[0].host: commands applies to service_manager: command only"),
]


@pytest.mark.parametrize(("host", "message"), HOSTILE)
def test_hostile_host_values_are_rejected_at_load(host, message):
    with pytest.raises(ConfigError) as err:
        make_target(host={"local": True, **host})
    assert message in [str(p) for p in err.value.problems]


def test_remediation_config_fields_have_defaults_and_bounds():
    t = make_target()
    assert (t.remediation.cooldown_minutes, t.remediation.max_per_day, t.host.proxy_service) == (15, 3, "nginx")
    with pytest.raises(ConfigError) as err:
        make_target(remediation={"mode": "auto", "max_per_day": 0})
    assert "targets[0].remediation.max_per_day: must be from 1 to 100 (got 0)" in str(err.value)


# the catalogue file itself is validated at load


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda c: c["actions"]["restart_backend"]["allow"].append("backend_dwon"), "unknown categories"),
        (lambda c: c["actions"]["start_proxy"]["preconditions"].append("feels_ok"), "unknown preconditions"),
        (lambda c: c["actions"]["restart_backend"]["allow"].append("port_conflict"), "both allowed and refused"),
        (lambda c: c["actions"]["start_proxy"]["commands"]["systemd"].append("{root}"), "unknown placeholder"),
        (lambda c: c["actions"].pop("reload_proxy"), "must define exactly"),
        (lambda c: c["actions"]["reload_proxy"]["commands"].pop("supervisor"), "commands must give exactly"),
        (lambda c: c["actions"]["reload_proxy"]["check_first"].append("looks_fine"), "unknown check_first"),
    ],
)
def test_a_broken_catalogue_fails_at_load_naming_the_entry(tmp_path: Path, edit, words):
    raw = yaml.safe_load(CATALOGUE_PATH.read_text())
    edit(raw)
    path = tmp_path / "catalogue.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(CatalogueError, match=words):
        load_catalogue(path)


def test_the_shipped_catalogue_loads_and_never_offers_a_forbidden_verb():
    forbidden = {"kill", "pkill", "killall", "reboot", "ufw", "iptables", "sysctl", "sed", "tee", "rm"}
    for action in CATALOGUE.actions.values():
        for argv in action.commands.values():
            flat = [e for part in argv for e in (part if isinstance(part, list) else [part])]
            assert not forbidden & set(flat)


def test_params_feed_the_ssm_remediation_document_unchanged():
    from gatewatch.runner.ssm import SSMRunner

    host = make_target(host={"instance_id": "i-0123456789abcdef0", "service": "bandarupay-backend",
                             "service_manager": "supervisor", "supervisor_config": "/etc/supervisor/gw.conf",
                             "nginx_conf": "/etc/nginx/nginx.conf"}).host
    for action in CATALOGUE.actions:
        document = SSMRunner.remediation_parameters(host, action, remediation_params(action, host))
        assert document == {
            "Action": [action], "ServiceManager": ["supervisor"], "Service": ["bandarupay-backend"],
            "ProxyService": ["nginx"], "SupervisorConfig": ["/etc/supervisor/gw.conf"], "NginxBin": ["nginx"],
            "NginxConf": ["/etc/nginx/nginx.conf"], "NginxPrefix": [""],
        }
