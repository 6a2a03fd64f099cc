"""The newcomer's papercuts (issue 14), one test each: flags honoured or refused, never ignored."""

import os
import re
from pathlib import Path

import pytest

from gatewatch.cli import main
from gatewatch.probe.demo import DemoSite
from gatewatch.store import SQLiteStore


@pytest.fixture
def site():
    with DemoSite() as s:
        yield f"http://127.0.0.1:{s.port}"


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    monkeypatch.delenv("GATEWATCH_DB", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("NO_COLOR", raising=False)


def write_config(path: Path, base: str, db_path: str | None = None, down: bool = False) -> Path:
    settings = f"settings: {{db_path: {db_path}}}\n" if db_path else ""
    route = "/api/v1/checkout" if down else "/api/v1/orders"
    path.write_text(settings + "targets:\n"
                    f"  - {{name: api, url: '{base}{route}', confirm: {{retries: 0}}, "
                    "alerting: {failure_threshold: 1, success_threshold: 1}}\n")
    return path


def test_db_path_precedence_flag_then_env_then_config_then_default(site, tmp_path, monkeypatch, clean_env):
    conf = tmp_path / "conf"
    conf.mkdir()
    cfg = write_config(conf / "t.yaml", site, db_path="from-config.db")
    monkeypatch.chdir(tmp_path)  # the relative db_path is found next to the config file, not in the cwd
    assert main(["run", "--config", "conf/t.yaml"]) == 0
    assert (conf / "from-config.db").exists() and not (tmp_path / "from-config.db").exists()

    monkeypatch.setenv("GATEWATCH_DB", str(tmp_path / "from-env.db"))
    assert main(["run", "--config", str(cfg)]) == 0
    assert (tmp_path / "from-env.db").exists()

    assert main(["run", "--config", str(cfg), "--db", str(tmp_path / "from-flag.db")]) == 0
    assert (tmp_path / "from-flag.db").exists()

    monkeypatch.delenv("GATEWATCH_DB")
    write_config(cfg, site)
    assert main(["run", "--config", str(cfg)]) == 0
    assert (tmp_path / "home" / ".local" / "state" / "gatewatch" / "gatewatch.db").exists()  # the default is made
    # each run went to exactly one store
    assert [len(SQLiteStore(p).history()) for p in (conf / "from-config.db", tmp_path / "from-env.db",
                                                      tmp_path / "from-flag.db")] == [1, 1, 1]


def test_incidents_and_history_read_the_configs_db_path(site, tmp_path, clean_env, capsys):
    cfg = write_config(tmp_path / "t.yaml", site, db_path="gw.db")
    assert main(["run", "--config", str(cfg)]) == 0
    capsys.readouterr()
    assert main(["history", "--config", str(cfg)]) == 0
    assert "api" in capsys.readouterr().out


def test_missing_directories_are_an_error_not_created(site, tmp_path, clean_env, capsys):
    cfg = write_config(tmp_path / "t.yaml", site)
    db = tmp_path / "no" / "such" / "dir" / "x.db"
    assert main(["run", "--config", str(cfg), "--db", str(db)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"gatewatch: error: directory {db.parent} does not exist (for the results store {db}); "
                   f"create it first (mkdir -p {db.parent}) or choose another --db")
    assert not (tmp_path / "no").exists()
    write_config(cfg, site, db_path="missing/x.db")
    assert main(["incidents", "--config", str(cfg)]) == 2
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("value", ["0", "-1", "nan", "soon"])
def test_run_every_must_be_positive(value, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["run", "--config", str(tmp_path / "t.yaml"), "--every", value])
    assert info.value.code == 2
    assert "--every: must be" in capsys.readouterr().err


def test_rounds_without_every_is_refused(site, tmp_path, clean_env, capsys):
    cfg = write_config(tmp_path / "t.yaml", site)
    assert main(["run", "--config", str(cfg), "--rounds", "2", "--db", str(tmp_path / "x.db")]) == 2
    assert "--rounds needs --every" in capsys.readouterr().err


def test_run_every_lines_carry_a_utc_timestamp(site, tmp_path, clean_env, capsys):
    cfg = write_config(tmp_path / "t.yaml", site)
    assert main(["run", "--config", str(cfg), "--every", "0.05", "--rounds", "2", "--db", str(tmp_path / "x.db")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    for line in lines:
        stamp, rest = line.split(" ", 1)
        assert len(stamp) == 20 and stamp.endswith("Z") and "T" in stamp, line
        assert rest.startswith("api ")
    assert "\033[" not in "".join(lines)  # not a terminal: no colour


def test_run_every_notifications_start_with_the_timestamp_too(site, tmp_path, clean_env, capsys):
    cfg = write_config(tmp_path / "t.yaml", site, down=True)
    assert main(["run", "--config", str(cfg), "--every", "0.05", "--rounds", "1", "--db", str(tmp_path / "x.db")]) == 1
    out = capsys.readouterr().out
    heads = [line for line in out.splitlines() if "== [gatewatch]" in line or line.split(" ", 1)[-1].startswith("api ")]
    assert len(heads) == 2, out
    assert all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ", line) for line in heads), heads


def test_probe_config_refuses_url_mode_flags(site, tmp_path, capsys):
    cfg = write_config(tmp_path / "t.yaml", site)
    assert main(["probe", "--config", str(cfg), "--timeout", "1"]) == 2
    assert capsys.readouterr().err.strip() == (
        "gatewatch probe: error: --timeout applies to URL mode only; set them per target in the file "
        "(timeout_s, method, headers, verify_tls, tls_ca_file, resolve_to)")
    assert main(["probe", "--demo", "--insecure", "--method", "post"]) == 2
    assert "--method, --insecure apply to URL mode only" in capsys.readouterr().err


def test_probe_url_mode_honours_timeout_and_a_relative_ca_file(site, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("ca.pem").write_text("not used for http\n")
    assert main(["probe", f"{site}/health", "--timeout", "2", "--ca-file", "ca.pem", "--json"]) == 0
    assert main(["probe", f"{site}/health", "--timeout", "0"]) == 2
    assert "--timeout: " in capsys.readouterr().err


def test_incidents_open_exits_1_while_any_is_open_and_show_gives_the_verdict(site, tmp_path, clean_env, capsys):
    db = str(tmp_path / "x.db")
    cfg = write_config(tmp_path / "t.yaml", site)
    assert main(["run", "--config", str(cfg), "--db", db]) == 0
    assert main(["incidents", "--open", "--db", db]) == 0
    assert "no open incidents" in capsys.readouterr().out
    write_config(cfg, site, down=True)
    assert main(["run", "--config", str(cfg), "--db", db]) == 1
    capsys.readouterr()
    assert main(["incidents", "--open", "--db", db]) == 1
    incident_id = capsys.readouterr().out.split()[0]
    assert incident_id.startswith("api-")
    assert main(["incidents", "--db", db]) == 0  # listing everything is not a check
    capsys.readouterr()
    assert main(["incidents", "show", incident_id, "--db", db]) == 0
    out = capsys.readouterr().out
    assert f"incident:   {incident_id}" in out and "verdict:    unknown" in out and "path:       retry_cleared=" in out
    assert "next 1:" in out
    assert main(["incidents", "--db", db, "show", incident_id, "--json"]) == 0
    import json

    doc = json.loads(capsys.readouterr().out)
    assert doc["id"] == incident_id and doc["verdict"]["category"] == "unknown" and "actions" in doc
    assert main(["incidents", "show", "nope", "--db", db]) == 2
    assert capsys.readouterr().err.strip() == "gatewatch: error: no incident nope; list them with gatewatch incidents"


def test_check_on_an_instance_host_says_to_add_ssm(tmp_path, capsys):
    cfg = tmp_path / "t.yaml"
    cfg.write_text("targets: [{name: api, url: 'https://api.example.com/', "
                   "host: {instance_id: i-0123456789abcdef0}}]\n")
    assert main(["check", "--config", str(cfg), "--target", "api"]) == 2
    assert "add --ssm" in capsys.readouterr().err
    cfg.write_text("targets: [{name: api, url: 'https://api.example.com/', host: {local: true}}]\n")
    assert main(["check", "--config", str(cfg), "--target", "api", "--ssm"]) == 2
    assert "has no host.instance_id or host.instance_tags" in capsys.readouterr().err


def test_lab_without_a_checkout_says_how_to_get_it(monkeypatch, capsys):
    from gatewatch.cli import lab_cmd

    monkeypatch.setattr(lab_cmd, "lab_available", lambda: False)
    assert main(["lab", "status"]) == 2
    err = capsys.readouterr().err
    assert "the lab is not part of the installed package" in err and "make demo" in err


def test_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch):
    from gatewatch.cli import output

    class Tty:
        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert output.paint("down", "down", Tty()) == "\033[1;31mdown\033[0m"
    assert output.status("up", 4, Tty()) == "\033[32mup\033[0m  "
    monkeypatch.setenv("NO_COLOR", "1")
    assert output.paint("down", "down", Tty()) == "down"
    monkeypatch.delenv("NO_COLOR")
    assert output.paint("down", "down", open(os.devnull, "w")) == "down"  # noqa: SIM115


def test_tables_align_with_a_header_on_a_terminal_and_are_plain_when_piped(monkeypatch):
    from gatewatch.cli import output

    class Tty:
        def isatty(self):
            return True

    monkeypatch.setenv("NO_COLOR", "1")
    rows = [["api", "up", "200"], ["checkout-service", "down", "502"]]
    assert output.table(rows, ["TARGET", "STATUS", "CODE"], status_column=1, stream=Tty()).splitlines() == [
        "TARGET            STATUS  CODE", "api               up      200", "checkout-service  down    502"]
    assert output.table(rows, ["TARGET", "STATUS", "CODE"], stream=open(os.devnull, "w")).splitlines()[0] == (  # noqa: SIM115
        "api               up    200")
