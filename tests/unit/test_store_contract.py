"""One contract for every results-store adapter: SQLite (a temp file) and DynamoDB (moto in-process, and once more
through moto's HTTP server on loopback; the table is built from the template's own definition). An adapter that
drifts from the port fails here, not in production."""

from __future__ import annotations

import uuid

import boto3
import pytest
from moto import mock_aws

from gatewatch.aws.template_schema import create_table_from_template, load_template
from gatewatch.store import (
    ActionRecord,
    ConflictError,
    DynamoDBStore,
    Incident,
    ProbeRecord,
    SQLiteStore,
    StoreError,
    TargetState,
)
from gatewatch.store.dynamodb import from_dynamo, to_dynamo

NESTED = {
    "timings_ms": {"dns": 0.1, "connect": 1e-7, "tls": 12345.678, "ttfb": -3.5, "total": 250.0},
    "http": {"status": 502, "headers": {"server": "cloudflare", "cf-ray": "8a-LHR"}, "json": None},
    "ok": False,
    "degraded": True,
    "assertions": [{"name": "status", "expected": [200, 204], "actual": 502, "ok": False}],
    "remote": {"ip": "127.0.0.1", "port": 443, "family": "ipv4"},
    "body_excerpt": "<h1>502 Bad Gateway</h1> ünïcödé ✓",
    "empty": {},
    "nothing": [],
    "big": 2**53 + 1,
}


FAKE_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def moto_http():
    """moto as a real HTTP server on loopback, shared by the module (each test gets its own table)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(params=["sqlite", "dynamodb", "dynamodb-over-http"])
def store(request, tmp_path, monkeypatch):
    if request.param == "sqlite":
        s = SQLiteStore(tmp_path / "gatewatch.db")
        yield s
        s.close()
        return
    for key, value in FAKE_ENV.items():
        monkeypatch.setenv(key, value)
    if request.param == "dynamodb-over-http":
        endpoint = request.getfixturevalue("moto_http")
        client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=endpoint)
        name = f"gatewatch-contract-{uuid.uuid4().hex[:12]}"
        create_table_from_template(client, load_template(), name)
        yield DynamoDBStore(name, client=client)
        client.delete_table(TableName=name)
        return
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table_from_template(client, load_template(), "gatewatch-contract")
        yield DynamoDBStore("gatewatch-contract", client=client)


def probe(target: str, at: str, status: str = "up", **result) -> ProbeRecord:
    return ProbeRecord(target, at, status, None if status == "up" else "connect_refused", 12.5, result)


def incident(id_: str, target: str, opened_at: str, **kw) -> Incident:
    return Incident(id=id_, target=target, opened_at=opened_at, **kw)


# -- probes -------------------------------------------------------------------------------------------------------
def test_history_is_newest_first_per_target_and_limited(store):
    for i in range(4):
        store.record_probe(probe("api", f"2026-01-01T00:0{i}:00.000Z", n=i))
    store.record_probe(probe("web", "2026-01-01T00:02:30.000Z", "down", n=99))

    api = store.history("api")
    assert [p.result["n"] for p in api] == [3, 2, 1, 0]
    assert all(p.target == "api" for p in api)
    assert [p.result["n"] for p in store.history("api", limit=2)] == [3, 2]
    web = store.history("web")
    assert len(web) == 1 and web[0].status == "down" and web[0].reason == "connect_refused"
    assert web[0].total_ms == 12.5
    assert store.history("nobody") == []


def test_history_across_targets_is_newest_first(store):
    for name in ("api", "web"):  # across targets = the targets the store knows (a round writes the state too)
        store.put_state(TargetState(target=name), 0)
    store.record_probe(probe("api", "2026-01-01T00:00:00.000Z", n=1))
    store.record_probe(probe("web", "2026-01-01T00:01:00.000Z", n=2))
    store.record_probe(probe("api", "2026-01-01T00:02:00.000Z", n=3))
    assert [(p.target, p.result["n"]) for p in store.history()] == [("api", 3), ("web", 2), ("api", 1)]
    assert [p.result["n"] for p in store.history(limit=1)] == [3]


def test_probes_recorded_in_the_same_millisecond_keep_their_order(store):
    for n in range(3):
        store.record_probe(probe("api", "2026-01-01T00:00:00.000Z", n=n))
    assert [p.result["n"] for p in store.history("api")] == [2, 1, 0]


def test_probes_between_is_oldest_first_in_the_window_without_results(store):
    for i in range(5):
        store.record_probe(probe("api", f"2026-01-01T00:0{i}:00.000Z", "up" if i != 2 else "down", n=i))
    store.record_probe(probe("web", "2026-01-01T00:02:00.000Z", n=99))
    window = store.probes_between("api", "2026-01-01T00:01:00.000Z", "2026-01-01T00:04:00.000Z")
    assert [p.at for p in window] == ["2026-01-01T00:01:00.000Z", "2026-01-01T00:02:00.000Z",
                                      "2026-01-01T00:03:00.000Z"]  # since inclusive, until exclusive
    assert [p.status for p in window] == ["up", "down", "up"] and window[1].reason == "connect_refused"
    assert all(p.target == "api" and p.result == {} and p.total_ms == 12.5 for p in window)
    assert len(store.probes_between("api", "2026-01-01T00:03:00.000Z")) == 2  # open-ended
    assert store.probes_between("nobody", "2026-01-01T00:00:00.000Z") == []


# -- target state -------------------------------------------------------------------------------------------------
def test_list_states_returns_every_target_by_name(store):
    assert store.list_states() == []
    store.put_state(TargetState("web", "DOWN", 2, 0, "web-1", "2026-01-01T00:01:00.000Z"), 0)
    store.put_state(TargetState("api", updated_at="2026-01-01T00:00:00.000Z"), 0)
    store.put_state(TargetState("api", consecutive_successes=3), 1)
    states = store.list_states()
    assert [(s.target, s.status, s.version) for s in states] == [("api", "UP", 2), ("web", "DOWN", 1)]
    assert states[0].consecutive_successes == 3 and states[1].incident_id == "web-1"


def test_state_create_update_and_conflicts(store):
    assert store.get_state("api") is None
    first = store.put_state(TargetState("api", consecutive_failures=1, updated_at="2026-01-01T00:00:00.000Z"), 0)
    assert first.version == 1
    with pytest.raises(ConflictError):
        store.put_state(TargetState("api"), 0)  # double create

    second = store.put_state(TargetState("api", "DOWN", 2, 0, "api-1", "2026-01-01T00:01:00.000Z"), 1)
    assert second.version == 2
    with pytest.raises(ConflictError):
        store.put_state(TargetState("api", "UP"), 1)  # stale version

    stored = store.get_state("api")
    assert stored == TargetState("api", "DOWN", 2, 0, "api-1", "2026-01-01T00:01:00.000Z", None, 2)
    assert isinstance(stored.version, int) and isinstance(stored.consecutive_failures, int)


# -- incidents ----------------------------------------------------------------------------------------------------
def test_incident_is_created_once_and_the_first_wins(store):
    assert store.create_incident(incident("api-1", "api", "2026-01-01T00:00:00.000Z", title="first")) is True
    assert store.create_incident(incident("api-1", "api", "2026-01-01T00:05:00.000Z", title="second")) is False
    got = store.get_incident("api-1")
    assert got.title == "first" and got.opened_at == "2026-01-01T00:00:00.000Z" and got.status == "open"
    assert store.get_incident("missing") is None


def test_incident_update_persists_and_unknown_incident_is_an_error(store):
    store.create_incident(incident("api-1", "api", "2026-01-01T00:00:00.000Z"))
    verdict = {"category": "backend_down", "confidence": "high", "path": [{"node": "n1", "answer": "yes"}]}
    updated = store.update_incident("api-1", status="resolved", resolved_at="2026-01-01T00:10:00.000Z",
                                    duration_s=600.5, category="backend_down", verdict=verdict)
    assert updated.status == "resolved" and updated.duration_s == 600.5
    again = store.get_incident("api-1")
    assert again == updated
    assert again.verdict == verdict
    with pytest.raises(StoreError):
        store.update_incident("nope", status="resolved")


def test_list_incidents_newest_first_open_only_per_target_and_limited(store):
    store.create_incident(incident("api-1", "api", "2026-01-01T00:00:00.000Z"))
    store.create_incident(incident("web-1", "web", "2026-01-01T01:00:00.000Z"))
    store.create_incident(incident("api-2", "api", "2026-01-01T02:00:00.000Z"))
    store.update_incident("api-1", status="resolved")

    assert [i.id for i in store.list_incidents()] == ["api-2", "web-1", "api-1"]
    assert [i.id for i in store.list_incidents(limit=2)] == ["api-2", "web-1"]
    assert [i.id for i in store.list_incidents(target="api")] == ["api-2", "api-1"]
    assert [i.id for i in store.list_incidents(open_only=True)] == ["api-2", "web-1"]
    assert [i.id for i in store.list_incidents(target="api", open_only=True)] == ["api-2"]
    assert [i.id for i in store.list_incidents(target="api", open_only=True, limit=1)] == ["api-2"]
    assert store.list_incidents(target="nobody") == []


def test_open_only_finds_open_incidents_behind_many_resolved_ones(store):
    store.create_incident(incident("api-0", "api", "2026-01-01T00:00:00.000Z"))
    for n in range(1, 8):
        store.create_incident(incident(f"api-{n}", "api", f"2026-01-01T0{n}:00:00.000Z", status="resolved"))
    assert [i.id for i in store.list_incidents(target="api", open_only=True, limit=1)] == ["api-0"]


# -- remediation audit --------------------------------------------------------------------------------------------
def test_actions_read_oldest_first_per_incident_and_target(store):
    steps = [("api-1", "api", "considered"), ("web-1", "web", "refused"), ("api-1", "api", "allowed"),
             ("api-1", "api", "ran"), ("api-2", "api", "considered")]
    for n, (inc, target, decision) in enumerate(steps):
        at = f"2026-01-01T00:0{n}:00.000Z"
        detail = {"step": n, "ms": n * 1.5}
        store.record_action(ActionRecord(inc, target, "restart_backend", decision, "mode", at, detail))

    assert [a.decision for a in store.list_actions("api-1")] == ["considered", "allowed", "ran"]
    assert [a.detail["step"] for a in store.list_actions(target="api")] == [0, 2, 3, 4]
    assert [a.detail["step"] for a in store.list_actions()] == [0, 1, 2, 3, 4]
    assert [a.detail["step"] for a in store.list_actions("api-1", target="web")] == []
    assert store.list_actions("api-1")[2].detail == {"step": 3, "ms": 4.5}
    # a window reads only what is at or after it (the guardrails' cooldown and daily cap)
    assert [a.detail["step"] for a in store.list_actions(target="api", since="2026-01-01T00:02:00.000Z")] == [2, 3, 4]
    assert [a.decision for a in store.list_actions("api-1", since="2026-01-01T00:03:00.000Z")] == ["ran"]
    assert store.list_actions(target="api", since="2026-01-01T00:05:00.000Z") == []


# -- documents ----------------------------------------------------------------------------------------------------
def test_nested_documents_round_trip_with_floats(store):
    store.record_probe(probe("api", "2026-01-01T00:00:00.000Z", **NESTED))
    assert store.history("api")[0].result == NESTED

    store.create_incident(incident("api-1", "api", "2026-01-01T00:00:00.000Z", facts={"outside": NESTED},
                                   outside=NESTED))
    got = store.get_incident("api-1")
    assert got.facts == {"outside": NESTED} and got.outside == NESTED
    assert got.outside["timings_ms"]["connect"] == 1e-7 and isinstance(got.outside["timings_ms"]["dns"], float)


# -- leases and claims (remediation) ------------------------------------------------------------------------------
def test_lease_is_exclusive_until_it_expires(store):
    t0, t1, t2 = "2026-01-01T00:00:00.000Z", "2026-01-01T00:05:00.000Z", "2026-01-01T00:10:00.000Z"
    assert store.acquire_lock("host:i-1", "run-a", t0, t1) is True
    assert store.acquire_lock("host:i-1", "run-b", t0, t1) is False
    assert store.acquire_lock("host:i-1", "run-a", t0, t1) is True  # the holder retrying
    lock = store.get_lock("host:i-1")
    assert (lock.name, lock.owner, lock.acquired_at, lock.expires_at) == ("host:i-1", "run-a", t0, t1)

    assert store.release_lock("host:i-1", "run-b") is False
    assert store.acquire_lock("host:i-1", "run-b", t1, t2) is True  # expired: taken over
    assert store.get_lock("host:i-1").owner == "run-b"
    assert store.release_lock("host:i-1", "run-b") is True
    assert store.get_lock("host:i-1") is None
    assert store.acquire_lock("host:i-1", "run-c", t1, t2) is True


def test_claims_are_once_only_and_their_detail_updates(store):
    assert store.claim("api-1:restart_backend", "2026-01-01T00:00:00.000Z", {"state": "running"}) is True
    assert store.claim("api-1:restart_backend", "2026-01-01T00:01:00.000Z") is False
    got = store.get_claim("api-1:restart_backend")
    assert got.at == "2026-01-01T00:00:00.000Z" and got.detail == {"state": "running"}
    store.update_claim("api-1:restart_backend", {"state": "verified", "took_s": 12.25})
    assert store.get_claim("api-1:restart_backend").detail == {"state": "verified", "took_s": 12.25}
    assert store.get_claim("other") is None
    with pytest.raises(StoreError):
        store.update_claim("other", {})


# -- the DynamoDB value conversion itself -------------------------------------------------------------------------
def test_dynamo_conversion_handles_non_finite_and_integral_numbers():
    assert to_dynamo({"a": float("nan"), "b": float("inf"), "c": [1.5, 2], "d": (1, 2)}) == {
        "a": None, "b": None, "c": [to_dynamo(1.5), 2], "d": [1, 2]}
    assert from_dynamo(to_dynamo(0.1)) == 0.1
    assert from_dynamo(to_dynamo(3)) == 3 and isinstance(from_dynamo(to_dynamo(3)), int)


def test_dynamodb_errors_become_store_errors(monkeypatch):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    with mock_aws():
        store = DynamoDBStore("no-such-table", client=boto3.client("dynamodb", region_name="us-east-1"))
        with pytest.raises(StoreError, match="no-such-table.*ResourceNotFoundException"):
            store.get_state("api")
    with pytest.raises(StoreError, match="table name"):
        DynamoDBStore("")


# -- notification attempts (alert) ------------------------------------------------------------------------------
def test_notifications_upsert_by_id_and_list_newest_first_pending_and_by_incident(store):
    from gatewatch.store import NotificationRecord

    def rec(id_, target, at, status, incident=None):
        return NotificationRecord(id=id_, target=target, channel="slack", event="diagnosed", first_at=at,
                                  incident_id=incident, subject="s", status=status, attempts=1,
                                  notification={"kind": "diagnosed", "data": {"n": 1.5}})

    store.put_notification(rec("n1", "api", "2026-01-01T00:00:01.000Z", "pending", "i1"))
    store.put_notification(rec("n2", "api", "2026-01-01T00:00:02.000Z", "delivered", "i1"))
    store.put_notification(rec("n3", "web", "2026-01-01T00:00:03.000Z", "pending"))
    assert [r.id for r in store.list_notifications()] == ["n3", "n2", "n1"]
    assert [r.id for r in store.list_notifications(target="api")] == ["n2", "n1"]
    assert [r.id for r in store.list_notifications(pending_only=True)] == ["n3", "n1"]
    assert [r.id for r in store.list_notifications(incident_id="i1", pending_only=True)] == ["n1"]
    done = rec("n1", "api", "2026-01-01T00:00:01.000Z", "delivered", "i1")
    done.attempts, done.detail = 2, "ok"
    store.put_notification(done)
    assert [r.id for r in store.list_notifications(pending_only=True)] == ["n3"]
    [again] = store.list_notifications(incident_id="i1", limit=1)
    assert again.id == "n2"
    got = {r.id: r for r in store.list_notifications(target="api")}
    assert got["n1"].attempts == 2 and got["n1"].notification == {"kind": "diagnosed", "data": {"n": 1.5}}
