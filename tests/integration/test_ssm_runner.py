"""SSMRunner against moto's SSM API with the ssm_executor running the documents for real on this machine."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from botocore.exceptions import ClientError

from gatewatch.clock import FakeClock
from gatewatch.config.models import Target
from gatewatch.onbox.params import decode_params, encode_params, onbox_params
from gatewatch.runner import ERROR, FAILED, NOT_REGISTERED, SUCCESS, TIMED_OUT, RunResult
from gatewatch.runner.ssm import Backoff, SSMRunner, SSMRunResult

INSTANCE = "i-0123456789abcdef0"
FAST = Backoff(first_s=0.05, factor=2.0, max_s=0.2)


def tiny_document(*lines: str, timeout_s: int = 60, params: dict | None = None) -> dict:
    return {
        "schemaVersion": "2.2",
        "description": "test document",
        "parameters": params or {"Params": {"type": "String", "allowedPattern": r"^b64:[A-Za-z0-9+/=]{1,8000}$"}},
        "mainSteps": [{"action": "aws:runShellScript", "name": "run",
                       "inputs": {"timeoutSeconds": str(timeout_s), "runCommand": list(lines)}}],
    }


def host(**kw):
    return Target(name="api", url="https://api.example.test/", host={"instance_id": INSTANCE, **kw}).host


@pytest.fixture
def ssm(aws, ssm_executor):
    client = aws.client("ssm")
    ssm_executor.add_instance(INSTANCE)
    return client


def runner(ssm, document="gatewatch-onbox", **kw) -> SSMRunner:
    return SSMRunner(client=ssm, onbox_document=document, backoff=FAST, **kw)


@pytest.fixture
def health_server():
    class Health(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = json.dumps({"status": "say-fine", "database": "connected"}).encode()
            self.send_response(200 if self.path == "/health" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_the_generated_onbox_document_runs_the_real_checks_with_our_params(ssm, ssm_executor, health_server):
    onbox, _ = ssm_executor.create_gatewatch_documents(ssm)
    target = Target(name="api", url="https://api.example.test/health",
                    host={"instance_id": INSTANCE, "service": "api", "service_manager": "supervisor",
                          "backend_port": health_server, "nginx_port": 1,
                          "nginx_error_log": "/nonexistent/gatewatch/error.log", "log_roots": ["/nonexistent"]})
    result = runner(ssm, onbox).run_onbox(target.host, onbox_params(target), timeout_s=60)

    assert isinstance(result, SSMRunResult) and result.status == SUCCESS, (result.error, result.stderr)
    assert result.exit_code == 0 and result.truncated is False and result.command_id
    report = json.loads(result.stdout)
    assert report["schema"] == 1
    assert report["port"]["value"]["listening"] is True  # the port it was told about, through base64 and SSM
    assert report["local_health"]["value"]["status"] == 200
    assert report["local_health"]["value"]["url"].endswith(f":{health_server}/health")


def test_params_reach_the_script_as_one_base64_word_whatever_they_contain(ssm, ssm_executor):
    ssm_executor.create_document(ssm, "echo-params", tiny_document("printf '%s' '{{ Params }}'"))
    hostile = {"service": "api'; touch /tmp/pwned; echo '", "path": "$(id)", "quote": "\"`"}
    result = runner(ssm, "echo-params").run_onbox(host(), hostile)
    assert result.status == SUCCESS
    assert result.stdout == encode_params(hostile) and decode_params(result.stdout) == hostile


def test_ssm_rejects_anything_but_base64_for_the_onbox_params(ssm, ssm_executor):
    onbox, _ = ssm_executor.create_gatewatch_documents(ssm)
    with pytest.raises(ClientError, match="InvalidParameters"):
        ssm.send_command(DocumentName=onbox, InstanceIds=[INSTANCE], Parameters={"Params": ["'; reboot; '"]})
    assert ssm_executor.runs == []


def test_failure_keeps_exit_code_and_both_streams(ssm, ssm_executor):
    ssm_executor.create_document(ssm, "fails", tiny_document("echo partial", "echo 'no nginx' >&2", "exit 3"))
    result = runner(ssm, "fails").run_onbox(host(), {})
    assert (result.status, result.exit_code) == (FAILED, 3)
    assert result.stdout == "partial\n" and result.stderr == "no nginx\n"
    assert "exit 3" in result.error and not result.ok


def test_output_is_cut_at_ssm_limits_and_flagged(ssm, ssm_executor):
    ssm_executor.create_document(ssm, "chatty", tiny_document(
        "python3 -c 'import sys; sys.stdout.write(\"x\" * 30000); sys.stderr.write(\"e\" * 9000)'"))
    result = runner(ssm, "chatty").run_onbox(host(), {})
    assert result.status == SUCCESS
    assert len(result.stdout) == 24_000 and len(result.stderr) == 8_000 and result.truncated is True


def test_execution_timeout_of_the_document_is_timed_out(ssm, ssm_executor):
    ssm_executor.max_step_timeout_s = 1
    ssm_executor.create_document(ssm, "hangs", tiny_document("echo started", "sleep 30"))
    result = runner(ssm, "hangs").run_onbox(host(), {})
    assert result.status == TIMED_OUT and result.exit_code is None
    assert "ExecutionTimedOut" in result.error and result.stdout == "started\n"


def test_no_terminal_status_by_the_deadline_is_timed_out_on_the_injected_clock(ssm, ssm_executor):
    ssm_executor.create_document(ssm, "slow", tiny_document("sleep 5"))
    clock = FakeClock()
    result = SSMRunner(client=ssm, clock=clock, onbox_document="slow", poll_timeout_s=3,
                       backoff=Backoff(0.5, 2.0, 5.0)).run_onbox(host(), {})
    assert result.status == TIMED_OUT and "after 3 s" in result.error
    assert clock.slept == [0.5, 1.0, 1.5]  # backoff, cut to the deadline
    assert result.duration_ms == 3000.0


def test_invocation_not_yet_visible_is_retried(ssm, ssm_executor):
    ssm_executor.missing_polls = 3
    ssm_executor.create_document(ssm, "say-fine", tiny_document("echo fine"))
    assert runner(ssm, "say-fine").run_onbox(host(), {}).stdout == "fine\n"

    ssm_executor.missing_polls = 50
    result = runner(ssm, "say-fine", missing_invocation_retries=2).run_onbox(host(), {})
    assert result.status == ERROR and "InvocationDoesNotExist" in result.error


def test_unknown_or_offline_instance_is_not_registered(ssm, ssm_executor):
    ssm_executor.create_document(ssm, "say-fine", tiny_document("echo fine"))
    unknown = runner(ssm, "say-fine").run_onbox(host(instance_id="i-00000000000000bad"), {})
    assert unknown.status == NOT_REGISTERED and "InvalidInstanceId" in unknown.error

    ssm_executor.add_instance("i-0000000000000dead", online=False)
    offline = runner(ssm, "say-fine").run_onbox(host(instance_id="i-0000000000000dead"), {})
    assert offline.status == NOT_REGISTERED and isinstance(offline, RunResult)


def test_missing_document_is_an_error_result(ssm, ssm_executor):
    result = runner(ssm, "no-such-document").run_onbox(host(), {})
    assert result.status == ERROR and "InvalidDocument" in result.error


def test_instance_tags_resolve_to_exactly_one_running_instance(aws, ssm, ssm_executor):
    ec2 = aws.client("ec2")
    image = ec2.describe_images()["Images"][0]["ImageId"]

    def launch(role: str) -> str:
        tags = [{"ResourceType": "instance", "Tags": [{"Key": "gatewatch", "Value": role}]}]
        return ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, TagSpecifications=tags)["Instances"][0][
            "InstanceId"]

    api = launch("api")
    ssm_executor.add_instance(api)
    launch("web")
    launch("web")
    ssm_executor.create_document(ssm, "say-fine", tiny_document("echo fine"))
    tagged = SSMRunner(client=ssm, ec2_client=ec2, onbox_document="say-fine", backoff=FAST)

    def tags(value: str):
        return Target(name="api", url="https://a.example.test/", host={"instance_tags": {"gatewatch": value}}).host

    result = tagged.run_onbox(tags("api"), {})
    assert result.status == SUCCESS and result.instance_id == api
    none = tagged.run_onbox(tags("db"), {})
    assert none.status == NOT_REGISTERED and "no running instance has the tags gatewatch=db" in none.error
    many = tagged.run_onbox(tags("web"), {})
    assert many.status == NOT_REGISTERED and "more than one instance" in many.error


@pytest.fixture
def netns():
    """A network namespace of our own (root only): an "instance" whose network is nothing but its loopback."""
    import os
    import shutil
    import subprocess

    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("network namespaces need root and iproute2")
    name = f"gwssm{os.getpid() % 100000}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=10)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, timeout=10)


def test_an_instance_can_be_a_network_namespace(aws, ssm_executor, netns):
    ssm = aws.client("ssm")
    ssm_executor.add_instance("i-00000000000000a11", prefix=["ip", "netns", "exec", netns])
    ssm_executor.create_document(ssm, "list-links", tiny_document("cat /proc/net/dev"))
    result = runner(ssm, "list-links").run_onbox(host(instance_id="i-00000000000000a11"), {})
    assert result.status == SUCCESS
    interfaces = [line.split(":")[0].strip() for line in result.stdout.splitlines()[2:]]
    assert interfaces == ["lo"]  # inside the namespace, not this machine's network
