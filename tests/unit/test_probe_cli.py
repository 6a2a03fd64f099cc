"""``gatewatch probe``: exit codes, the table, and the --json documents, against loopback servers."""

from __future__ import annotations

import json

import pytest

from gatewatch.cli import main
from tests.servers import Reply, closed_port, http_server

CF = {"Server": "cloudflare", "CF-RAY": "8f1c2d3e4a5b6c7d-AMS"}


@pytest.fixture(scope="module")
def site():
    routes = {"/ok": Reply(200, {"status": "ok"}), "/edge": Reply(521, "error code: 521", CF),
              "/echo": lambda req: Reply(200, {"x": req.headers.get("x-trace"), "method": req.method})}
    with http_server(routes) as s:
        yield s


def run(capsys, *argv):
    code = main(["probe", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_url_mode_up_exit_0_with_table(site, capsys):
    code, out, _ = run(capsys, site.url("/ok"))
    assert code == 0
    header, row = out.splitlines()[:2]
    assert header.split()[:4] == ["TARGET", "STATUS", "CODE", "REASON"]
    assert row.split()[:4] == [site.url("/ok"), "up", "200", "-"]


def test_url_mode_json_is_a_probe_result(site, capsys):
    code, out, _ = run(capsys, site.url("/echo"), "--json", "--method", "post", "--header", "X-Trace: abc")
    doc = json.loads(out)
    assert code == 0 and doc["status"] == "up" and doc["method"] == "POST"
    assert doc["http"]["json"] == {"x": "abc", "method": "POST"}
    assert set(doc) >= {"url", "timings_ms", "remote", "tls", "http", "cloudflare", "redirects", "assertions"}


def test_url_mode_down_exit_1_explains_the_edge_code(site, capsys):
    code, out, _ = run(capsys, site.url("/edge"))
    assert code == 1
    assert "http_5xx_edge" in out and "521/AMS" in out and "Web server is down" in out


def test_url_mode_refused_exit_1(capsys):
    code, out, _ = run(capsys, f"http://127.0.0.1:{closed_port()}/", "--timeout", "2")
    assert code == 1 and "connect_refused" in out


@pytest.mark.parametrize("argv,words", [
    ([], "exactly one of"),
    (["ftp://example.invalid/"], "URL: must be an http:// or https:// URL"),
    (["http://127.0.0.1/", "--timeout", "0"], "--timeout"),
    (["http://127.0.0.1/", "--header", "no-colon"], "--header"),
    (["http://127.0.0.1/", "--resolve-to", "not-an-ip"], "--resolve-to: must be an IP address"),
    (["http://127.0.0.1/", "--target", "api"], "--target needs --config"),
])
def test_bad_usage_exit_2(capsys, argv, words):
    code, out, err = run(capsys, *argv)
    assert code == 2 and words in err and out == ""


def write_config(tmp_path, site, edge_ok: bool):
    path = tmp_path / "targets.yaml"
    path.write_text(
        "settings: {concurrency: 4}\n"
        "targets:\n"
        f"  - name: api\n    url: {site.url('/ok')}\n    expect: {{json: {{status: ok}}}}\n"
        f"  - name: edge\n    url: {site.url('/edge')}\n    confirm: {{retries: {0 if edge_ok else 1}, delay_s: 0}}\n"
        + ("    expect: {status: [521]}\n" if edge_ok else "")
    )
    return path


def test_config_mode_exit_1_when_any_target_is_down_and_json_lists_target_results(site, tmp_path, capsys):
    path = write_config(tmp_path, site, edge_ok=False)
    code, out, _ = run(capsys, "--config", str(path), "--json")
    docs = json.loads(out)
    assert code == 1 and [d["target"] for d in docs] == ["api", "edge"]
    assert docs[0]["status"] == "up" and docs[1]["status"] == "down" and docs[1]["confirmed"] is True
    assert len(docs[1]["attempts"]) == 2 and docs[1]["probe"]["reason"] == "http_5xx_edge"


def test_config_mode_all_up_exit_0_and_target_filter(site, tmp_path, capsys):
    path = write_config(tmp_path, site, edge_ok=True)
    code, out, _ = run(capsys, "--config", str(path))
    assert code == 0 and "api" in out and "edge" in out
    code, out, _ = run(capsys, "--config", str(path), "--target", "edge", "--json")
    assert code == 0 and [d["target"] for d in json.loads(out)] == ["edge"]


def test_config_mode_unknown_target_and_bad_config_exit_2(site, tmp_path, capsys):
    path = write_config(tmp_path, site, edge_ok=True)
    code, _, err = run(capsys, "--config", str(path), "--target", "nope")
    assert code == 2 and "no target named 'nope'" in err and "api, edge" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("targets:\n  - name: Bad Name\n    url: http://127.0.0.1/\n")
    code, _, err = run(capsys, "--config", str(bad))
    assert code == 2 and "targets[0].name" in err


def test_demo_probes_a_healthy_and_a_failing_route(capsys):
    code, out, _ = run(capsys, "--demo")
    assert code == 0
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("demo-")}
    assert lines["demo-healthy"][1:3] == ["up", "200"]
    assert lines["demo-failing"][1:4] == ["down", "502", "http_5xx_origin"]
    assert "as expected" in out
    code, out, _ = run(capsys, "--demo", "--json")
    assert code == 0 and [d["status"] for d in json.loads(out)] == ["up", "down"]
