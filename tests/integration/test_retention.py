"""Retention on DynamoDB: probes (30 days), resolved incidents and remediation actions (180 days) carry the table's
TTL attribute ``expires_at``; an open incident has none, so it is never expired while it matters."""

from __future__ import annotations

import time

from gatewatch.store.base import ActionRecord, Incident, ProbeRecord


def _raw(aws, table, pk, sk_prefix):
    out = aws.client("dynamodb").query(
        TableName=table, KeyConditionExpression="PK = :pk AND begins_with(SK, :sk)",
        ExpressionAttributeValues={":pk": {"S": pk}, ":sk": {"S": sk_prefix}})
    return out["Items"]


def test_probes_resolved_incidents_and_actions_expire_open_incidents_do_not(dynamo_store, aws, table):
    now = time.time()
    dynamo_store.record_probe(ProbeRecord(target="api", at="2026-11-28T10:00:00.000Z", status="up", reason=None,
                                          total_ms=3.0, result={"status": "up"}))
    dynamo_store.create_incident(Incident(id="api-1", target="api", opened_at="2026-11-28T10:00:00.000Z"))
    dynamo_store.record_action(ActionRecord(incident_id="api-1", target="api", action="restart_backend",
                                            decision="allowed", guard="", at="2026-11-28T10:00:01.000Z"))
    [probe] = _raw(aws, table, "TARGET#api", "PROBE#")
    [incident] = _raw(aws, table, "INCIDENT#api-1", "INCIDENT")
    [action] = _raw(aws, table, "INCIDENT#api-1", "ACTION#")
    days = {name: (int(item["expires_at"]["N"]) - now) / 86_400 for name, item in
            (("probe", probe), ("action", action))}
    assert round(days["probe"]) == 30 and round(days["action"]) == 180
    assert "expires_at" not in incident  # open: kept
    dynamo_store.update_incident("api-1", status="resolved", resolved_at="2026-11-28T10:05:00.000Z")
    [incident] = _raw(aws, table, "INCIDENT#api-1", "INCIDENT")
    assert round((int(incident["expires_at"]["N"]) - now) / 86_400) == 180
