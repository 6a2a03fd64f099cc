"""The compact probe record (gatewatch.store.compact): a healthy round's DynamoDB item is at most 1 KB, attempts
are not duplicated, the body excerpt is kept only on failure, and the readers still find what they read."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from boto3.dynamodb.types import TypeSerializer
from moto import mock_aws

from benchmarks.round_bench import item_size
from gatewatch.aws.template_schema import create_table_from_template, load_template
from gatewatch.probe.result import HttpInfo, ProbeResult, Remote, TargetResult, Timings, TlsInfo
from gatewatch.store import DynamoDBStore, ProbeRecord, SQLiteStore, TargetState
from gatewatch.store.compact import compact_result
from gatewatch.store.dynamodb import to_dynamo
from gatewatch.views.fleet import _round_row, cert_days_left, phase_series

BODY = "<html>" + "x" * 2100


def probe_result(status: str = "up", http_status: int = 200) -> ProbeResult:
    result = ProbeResult(
        url="https://api.example.test/healthz", method="GET", started_at="2026-11-28T20:00:00.000Z",
        status=status, ok=status == "up", reason=None if status == "up" else "http_5xx",
        phase=None if status == "up" else "http", error=None if status == "up" else "HTTP 503",
        timings_ms=Timings(dns=0.4, connect=1.2, tls=6.8, ttfb=12.1, transfer=0.9, total=21.4, request=0.1,
                           starttransfer=20.5),
        remote=Remote("203.0.113.10", "ipv4", 443),
        tls=TlsInfo("TLSv1.3", "TLS_AES_256_GCM_SHA384", "CN=api.example.test", "CN=Example Issuing CA R3,O=Ex",
                    [f"san{i}.example.test" for i in range(12)], "2026-09-01T00:00:00Z", "2026-12-30T00:00:00Z",
                    31.2, False, True, None, True),
        http=HttpInfo(http_status, "OK" if http_status == 200 else "Service Unavailable", "HTTP/1.1",
                      {"content-type": "text/html", "server": "nginx/1.24", "date": "Sat, 28 Nov 2026 20:00:00",
                       "cache-control": "no-store", "x-request-id": "0f" * 16}, BODY, len(BODY), True),
    )
    return result


def target_result(*statuses: str) -> dict:
    attempts = [probe_result(s, 200 if s == "up" else 503) for s in statuses]
    return TargetResult("api", "2026-11-28T20:00:00.000Z", statuses[-1], confirmed=True,
                        transient=len(statuses) > 1 and statuses[-1] == "up", attempts=attempts,
                        probe=copy.deepcopy(attempts[-1])).to_dict()


def dynamo_item(result: dict) -> dict:
    record = ProbeRecord("api", "2026-11-28T20:00:00.000Z", result["status"], None, 21.4, result)
    item = to_dynamo({**record.to_dict(), "PK": "TARGET#api", "SK": "PROBE#2026-11-28T20:00:00.000Z#"
                      + "0" * 20 + "abcdef", "kind": "probe", "expires_at": 1_790_000_000})
    ser = TypeSerializer()
    return {k: ser.serialize(v) for k, v in item.items()}


def test_a_healthy_round_is_at_most_1_kb_and_was_much_larger():
    full = target_result("up")
    assert item_size(dynamo_item(full)) > 4_000  # the full record: attempts + probe, each with the body
    compact = compact_result(full)
    assert item_size(dynamo_item(compact)) <= 1_024
    assert "attempts" not in compact and "body_excerpt" not in str(compact)
    assert "headers" not in compact["probe"]["http"]
    assert compact["probe"]["http"]["status"] == 200 and compact["probe"]["timings_ms"]["total"] == 21.4
    assert compact["probe"]["tls"]["days_to_expiry"] == 31.2 and "sans" not in compact["probe"]["tls"]
    assert compact_result(compact) == compact


def test_a_failing_round_keeps_one_body_excerpt_and_each_attempts_outcome():
    full = target_result("down", "down")
    compact = compact_result(full)
    assert str(compact).count("<html>") == 1 and compact["probe"]["http"]["body_excerpt"] == BODY
    assert compact["probe"]["http"]["headers"]["server"] == "nginx/1.24" and compact["probe"]["tls"]["sans"]
    assert compact["attempts"] == [{"status": "down", "reason": "http_5xx", "phase": "http", "error": "HTTP 503",
                                    "http_status": 503, "total_ms": 21.4}] * 2
    transient = compact_result(target_result("down", "up"))  # a blip the retry cleared keeps both outcomes
    assert [a["status"] for a in transient["attempts"]] == ["down", "up"]
    assert "body_excerpt" in transient["probe"]["http"]  # not healthy: transient


def test_the_readers_find_what_they_read_in_a_compact_record(tmp_path):
    store = SQLiteStore(tmp_path / "gw.db")
    now = datetime(2026, 11, 28, 20, 0, tzinfo=UTC)
    for i, result in enumerate((target_result("up"), target_result("down"))):
        at = (now - timedelta(minutes=2 - i)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        store.record_probe(ProbeRecord("api", at, result["status"], result["probe"]["reason"], 21.4,
                                       compact_result(result)))
    records = store.history("api")
    assert cert_days_left(store, "api") == 31.2
    assert [_round_row(r)["http_status"] for r in records] == [503, 200]
    assert _round_row(records[0])["error"] == "HTTP 503"
    assert phase_series(records)["tls"] == [(records[1].at, 6.8), (records[0].at, 6.8)]


@pytest.fixture
def dynamo():
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table_from_template(client, load_template(), "gw")
        yield client, DynamoDBStore("gw", client=client)


def test_probes_are_not_copied_into_gsi2_and_history_across_targets_still_works(dynamo):
    client, store = dynamo
    for name in ("api", "web"):
        store.put_state(TargetState(target=name), 0)
    store.record_probe(ProbeRecord("api", "2026-11-28T20:00:00.000Z", "up", None, 1.0, {"n": 1}))
    store.record_probe(ProbeRecord("web", "2026-11-28T20:01:00.000Z", "up", None, 1.0, {"n": 2}))
    items = client.scan(TableName="gw")["Items"]
    probes = [i for i in items if i["kind"]["S"] == "probe"]
    assert len(probes) == 2 and not any("GSI2PK" in i or "GSI1PK" in i for i in probes)
    assert all(int(i["expires_at"]["N"]) > datetime.now(UTC).timestamp() + 29 * 86_400 for i in probes)
    gsi2 = client.query(TableName="gw", IndexName="GSI2", KeyConditionExpression="GSI2PK = :p",
                        ExpressionAttributeValues={":p": {"S": "PROBE"}})
    assert gsi2["Items"] == []
    assert [p.result["n"] for p in store.history()] == [2, 1]
    assert [p.result["n"] for p in store.history(limit=1)] == [2]


def test_open_incidents_live_in_a_sparse_partition_left_on_resolve(dynamo):
    """Only open incidents carry GSI2PK = INCIDENT#open; open_only reads just that partition (bounded by the open
    incidents, not the history), and resolving moves the incident out."""
    from gatewatch.store import Incident

    client, store = dynamo
    store.create_incident(Incident("api-0", "api", "2026-01-01T00:00:00.000Z"))
    for n in range(1, 6):
        store.create_incident(Incident(f"api-{n}", "api", f"2026-01-01T0{n}:00:00.000Z", status="resolved"))
    store.create_incident(Incident("web-1", "web", "2026-01-01T07:00:00.000Z"))

    def partition(status: str) -> list[str]:
        out = client.query(TableName="gw", IndexName="GSI2", KeyConditionExpression="GSI2PK = :p",
                           ExpressionAttributeValues={":p": {"S": status}})
        return sorted(i["id"]["S"] for i in out["Items"])

    assert partition("INCIDENT#open") == ["api-0", "web-1"]
    calls = []
    client.meta.events.register("provide-client-params.dynamodb.Query", lambda params, **_: calls.append(params))
    assert [i.id for i in store.list_incidents(target="api", open_only=True)] == ["api-0"]
    assert [c["ExpressionAttributeValues"][":pk"]["S"] for c in calls] == ["INCIDENT#open"]
    store.update_incident("web-1", status="resolved", resolved_at="2026-01-01T08:00:00.000Z")
    assert partition("INCIDENT#open") == ["api-0"] and "web-1" in partition("INCIDENT")
    assert [i.id for i in store.list_incidents(open_only=True)] == ["api-0"]
    assert [i.id for i in store.list_incidents(limit=3)] == ["web-1", "api-5", "api-4"]
