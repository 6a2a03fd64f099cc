"""``gatewatch run --every N --metrics-port P``: a real pipeline probing a loopback HTTPS server, scraped over HTTP
while it runs. Names follow blackbox_exporter where they overlap (probe_success, probe_duration_seconds,
probe_http_duration_seconds{phase}, probe_http_status_code, probe_ssl_earliest_cert_expiry)."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from gatewatch.cli import main
from tests.servers import CertFactory, Reply, http_server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def test_run_exposes_blackbox_style_metrics_while_probing(tmp_path):
    certs = CertFactory(tmp_path / "pki")
    issued = certs.leaf(["127.0.0.1"], valid_to_days=30)
    answers = iter([Reply(401, {"detail": "no"})] * 2)

    def route(_req):
        return next(answers, Reply(502, "<html>502 Bad Gateway</html>", {"Server": "nginx"}))

    with http_server({"/login": route}, tls=issued.server_context()) as server:
        config = tmp_path / "targets.yaml"
        config.write_text(f"""
targets:
  - name: api
    url: {server.url("/login")}
    tls_ca_file: {certs.ca_file}
    timeout_s: 3
    expect: {{status: [200, 401]}}
    confirm: {{retries: 0}}
    alerting: {{failure_threshold: 1, success_threshold: 1}}
    remediation: {{mode: "off"}}
""")
        port = free_port()
        argv = ["run", "--config", str(config), "--db", str(tmp_path / "g.db"), "--every", "0.4", "--rounds", "8",
                "--metrics-port", str(port)]
        done: list[int] = []
        runner = threading.Thread(target=lambda: done.append(main(argv)), daemon=True)
        runner.start()
        samples: dict = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not done:
            try:
                samples = scrape(port)
            except OSError:
                time.sleep(0.1)
                continue
            if samples.get(("gatewatch_rounds_total", ()), 0) >= 3:
                break
            time.sleep(0.1)
        runner.join(timeout=60)
    api = (("target", "api"),)
    assert samples.get(("gatewatch_rounds_total", ()), 0) >= 3, samples
    assert samples[("probe_success", api)] == 0.0  # the server answers 502 from the third request on
    assert samples[("probe_http_status_code", api)] == 502
    assert samples[("gatewatch_target_up", api)] == 0.0
    assert samples[("gatewatch_open_incidents", ())] == 1.0
    assert samples[("gatewatch_incidents_total", (("event", "opened"), ("target", "api")))] == 1.0
    assert samples[("gatewatch_remediations_total", (("action", "none"), ("result", "none")))] == 1.0
    assert 0 < samples[("probe_duration_seconds", api)] < 3
    for phase in ("resolve", "connect", "tls", "processing", "transfer"):
        assert (("phase", phase), ("target", "api")) in {k[1] for k in samples if k[0] == "probe_http_duration_seconds"}
    expiry = samples[("probe_ssl_earliest_cert_expiry", api)]
    assert abs(expiry - issued.cert.not_valid_after_utc.timestamp()) < 1.0
    assert samples[("gatewatch_round_duration_seconds_count", ())] >= 3
    assert done == [1]  # the last round was down
    # the endpoint stops with the run
    try:
        scrape(port)
        raise AssertionError("metrics still served after the run ended")
    except OSError:
        pass
