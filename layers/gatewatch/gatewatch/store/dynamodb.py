"""DynamoDB results store: the AWS adapter, one table (item design in docs/dynamodb.md).

Items keep the dataclass fields as native attributes (readable in the console, usable by Step Functions'
DynamoDB tasks) next to their keys. Conditional writes carry the port's guarantees: ``put_state`` on the version,
``create_incident`` and ``claim`` on the key not existing, leases on expiry or owner. Every botocore error is
mapped to ``StoreError``/``ConflictError`` here, so callers never import botocore.
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import fields
from decimal import Decimal
from typing import Any

from gatewatch.clock import parse_iso
from gatewatch.store.base import (
    ATTRIBUTE_BUDGET_BYTES,
    ActionRecord,
    ClaimRecord,
    Incident,
    LockRecord,
    NotificationRecord,
    ProbeRecord,
    ResultsStore,
    TargetState,
    bounded,
)
from gatewatch.store.exceptions import ConflictError, StoreError

PROBE_TTL_DAYS = 30
RESOLVED_INCIDENT_TTL_DAYS = 180  # a resolved incident (with its verdict and facts) is kept this long
ACTION_TTL_DAYS = 180  # remediation audit records; cooldown and daily caps look back a day at most
LOCK_TTL_GRACE_S = 86_400  # an expired lease item stays a day for the audit, then TTL removes it
GSI_BY_TARGET, GSI_BY_KIND = "GSI1", "GSI2"
OPEN_INCIDENTS = "INCIDENT#open"  # GSI2 partition holding only the open incidents (moved out on resolve)


def _incident_partition(status: str | None) -> str:
    return OPEN_INCIDENTS if status == "open" else "INCIDENT"


# -- the one place where Python values become DynamoDB values and back -----------------------------------------
def to_dynamo(value: Any) -> Any:
    """Floats become Decimal (exactly as ``repr`` prints them); NaN and infinities, which DynamoDB rejects, None."""
    if isinstance(value, bool) or value is None or isinstance(value, str | int | Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): to_dynamo(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_dynamo(v) for v in value]
    return str(value)  # the same fallback as base.dumps(default=str)


def from_dynamo(value: Any) -> Any:
    """Decimal becomes int when integral, else float (DynamoDB does not keep 1.0 apart from 1)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_dynamo(v) for v in value]
    if isinstance(value, set):
        return sorted(from_dynamo(v) for v in value)
    return value


def _fields_of(cls: type, item: dict[str, Any], renames: dict[str, str] | None = None) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    out = {}
    for key, value in item.items():
        key = (renames or {}).get(key, key)
        if key in names:
            out[key] = from_dynamo(value)
    return out


class _Sequence:
    """Sort-key suffixes that keep insertion order within one process and never collide across processes."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()
        self._suffix = os.urandom(3).hex()

    def next(self) -> str:
        with self._lock:
            self._last = max(self._last + 1, time.time_ns())
            return f"{self._last:020d}{self._suffix}"


def _default_client() -> Any:
    import boto3
    from botocore.config import Config

    # Every call bounded: 3 s to connect, 10 s to read, 3 attempts in all.
    return boto3.client(
        "dynamodb",
        config=Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 3, "mode": "standard"}),
    )


class DynamoDBStore(ResultsStore):
    def __init__(self, table_name: str, client: Any = None, probe_ttl_days: int = PROBE_TTL_DAYS,
                 clock: Any = None):
        if not table_name:
            raise StoreError("DynamoDBStore needs a table name (TABLE_NAME)")
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        self.table_name = table_name
        self.probe_ttl_days = probe_ttl_days
        self._client = client or _default_client()
        self._ser, self._de = TypeSerializer(), TypeDeserializer()
        self._seq = _Sequence()
        self._clock = clock  # stands in for the service's time (tests); None: DynamoDB's Date header

    # -- plumbing ----------------------------------------------------------------------------------------------
    def _call(self, op: str, **kwargs: Any) -> dict[str, Any]:
        """Run one API call; ConditionalCheckFailed becomes ConflictError, anything else StoreError."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self._client, op)(TableName=self.table_name, **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ConditionalCheckFailedException":
                raise ConflictError(f"{op} on {self.table_name}: condition not met") from None
            message = exc.response.get("Error", {}).get("Message", "")
            raise StoreError(f"DynamoDB {op} on {self.table_name} failed: {code}: {message}") from None
        except BotoCoreError as exc:
            raise StoreError(f"DynamoDB {op} on {self.table_name} failed: {exc}") from None

    def _encode(self, item: dict[str, Any]) -> dict[str, Any]:
        # an item that would exceed DynamoDB's 400 KB cannot be built: each attribute, then the whole, is bounded
        item = bounded({k: bounded(v, ATTRIBUTE_BUDGET_BYTES) for k, v in item.items()})
        return {k: self._ser.serialize(to_dynamo(v)) for k, v in item.items()}

    def _decode(self, item: dict[str, Any]) -> dict[str, Any]:
        return {k: self._de.deserialize(v) for k, v in item.items()}

    def _values(self, values: dict[str, Any]) -> dict[str, Any]:
        return {k: self._ser.serialize(to_dynamo(bounded(v, ATTRIBUTE_BUDGET_BYTES))) for k, v in values.items()}

    def _put(
        self,
        item: dict[str, Any],
        condition: str | None = None,
        values: dict[str, Any] | None = None,
        names: dict[str, str] | None = None,
    ) -> None:
        kwargs: dict[str, Any] = {"Item": self._encode(item)}
        if condition:
            kwargs["ConditionExpression"] = condition
        if values:
            kwargs["ExpressionAttributeValues"] = self._values(values)
        if names:
            kwargs["ExpressionAttributeNames"] = names
        self._call("put_item", **kwargs)

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        out = self._call("get_item", Key=self._encode({"PK": pk, "SK": sk}), ConsistentRead=True)
        return self._decode(out["Item"]) if "Item" in out else None

    def _query(
        self,
        key: str,
        value: str,
        prefix: str | None = None,
        index: str | None = None,
        newest_first: bool = False,
        limit: int | None = None,
        keep: Any = None,
        from_sk: str | None = None,
    ) -> list[dict[str, Any]]:
        """All items under one partition (optionally a sort-key prefix, and from ``prefix + from_sk`` on: a key
        condition, so only that window is read), paged until ``limit`` items are kept."""
        sort_key = "SK" if index is None else f"{index}SK"
        if prefix and from_sk:
            expr = "#pk = :pk AND #sk BETWEEN :lo AND :hi"
            values = {":pk": value, ":lo": prefix + from_sk, ":hi": prefix + "~"}
        else:
            expr = "#pk = :pk" + (" AND begins_with(#sk, :prefix)" if prefix else "")
            values = {":pk": value} | ({":prefix": prefix} if prefix else {})
        names = {"#pk": key} | ({"#sk": sort_key} if prefix else {})
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": expr,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": self._values(values),
            "ScanIndexForward": not newest_first,
        }
        if index:
            kwargs["IndexName"] = index
        else:
            kwargs["ConsistentRead"] = True
        items: list[dict[str, Any]] = []
        while True:
            if limit is not None:
                kwargs["Limit"] = max(limit - len(items), 1) if keep is None else max(limit, 25)
            out = self._call("query", **kwargs)
            for raw in out.get("Items", []):
                item = self._decode(raw)
                if keep is None or keep(item):
                    items.append(item)
                    if limit is not None and len(items) >= limit:
                        return items
            if "LastEvaluatedKey" not in out:
                return items
            kwargs["ExclusiveStartKey"] = out["LastEvaluatedKey"]

    # -- probes ------------------------------------------------------------------------------------------------
    def record_probe(self, record: ProbeRecord) -> None:
        when = f"{record.at}#{self._seq.next()}"
        self._put({
            **record.to_dict(),
            # no GSI2 copy: nothing queries probes across targets by index (it doubled every probe's write units)
            "PK": f"TARGET#{record.target}", "SK": f"PROBE#{when}", "kind": "probe",
            "expires_at": int(time.time()) + self.probe_ttl_days * 86_400,
        })

    def history(self, target: str | None = None, limit: int = 50) -> list[ProbeRecord]:
        if limit <= 0:
            return []
        if target:
            items = self._query("PK", f"TARGET#{target}", "PROBE#", newest_first=True, limit=limit)
        else:  # every target's newest `limit`, merged: one Query per target (CLI `history` without --target)
            items = [i for s in self.list_states()
                     for i in self._query("PK", f"TARGET#{s.target}", "PROBE#", newest_first=True, limit=limit)]
            items = sorted(items, key=lambda i: i.get("SK", ""), reverse=True)[:limit]
        return [ProbeRecord(**_fields_of(ProbeRecord, i)) for i in items]

    def probes_between(self, target: str, since: str, until: str | None = None) -> list[ProbeRecord]:
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "PK = :pk AND SK BETWEEN :lo AND :hi",
            "ExpressionAttributeValues": self._values(
                {":pk": f"TARGET#{target}", ":lo": f"PROBE#{since}", ":hi": f"PROBE#{until or '~'}"}
            ),
            "ProjectionExpression": "#t, #at, #s, #r, #ms",
            "ExpressionAttributeNames": {
                "#t": "target", "#at": "at", "#s": "status", "#r": "reason", "#ms": "total_ms",
            },
        }
        records = []
        while True:
            out = self._call("query", **kwargs)
            for raw in out.get("Items", []):
                item = self._decode(raw)
                if until is None or item.get("at", "") < until:
                    records.append(ProbeRecord(**_fields_of(ProbeRecord, item), result={}))
            if "LastEvaluatedKey" not in out:
                return records
            kwargs["ExclusiveStartKey"] = out["LastEvaluatedKey"]

    # -- target state ------------------------------------------------------------------------------------------
    def list_states(self) -> list[TargetState]:
        items = self._query("GSI2PK", "STATE", index=GSI_BY_KIND)
        return [TargetState(**_fields_of(TargetState, i)) for i in items]

    def get_state(self, target: str) -> TargetState | None:
        item = self._get(f"TARGET#{target}", "STATE")
        return TargetState(**_fields_of(TargetState, item)) if item else None

    def put_state(self, state: TargetState, expected_version: int) -> TargetState:
        new = TargetState(**{**state.to_dict(), "version": expected_version + 1})
        item = {**new.to_dict(), "PK": f"TARGET#{state.target}", "SK": "STATE", "kind": "state",
                "GSI2PK": "STATE", "GSI2SK": state.target}  # GSI2 "STATE": every target's state, for the views
        try:
            if expected_version == 0:
                self._put(item, "attribute_not_exists(PK)")
            else:
                self._put(item, "#v = :v", {":v": expected_version}, {"#v": "version"})
        except ConflictError:
            raise ConflictError(
                f"state of {state.target} was created by someone else" if expected_version == 0
                else f"state of {state.target} changed since version {expected_version}"
            ) from None
        return new

    def open_incident(self, state: TargetState, expected_version: int, incident: Incident) -> TargetState:
        """The DOWN state and the incident in one TransactWriteItems: both conditional, both or neither."""
        from botocore.exceptions import BotoCoreError, ClientError

        new = TargetState(**{**state.to_dict(), "version": expected_version + 1})
        state_put: dict[str, Any] = {
            "TableName": self.table_name,
            "Item": self._encode({**new.to_dict(), "PK": f"TARGET#{state.target}", "SK": "STATE", "kind": "state"}),
        }
        if expected_version == 0:
            state_put["ConditionExpression"] = "attribute_not_exists(PK)"
        else:
            state_put |= {"ConditionExpression": "#v = :v", "ExpressionAttributeNames": {"#v": "version"},
                          "ExpressionAttributeValues": self._values({":v": expected_version})}
        incident_put = {"TableName": self.table_name, "Item": self._encode(self._incident_item(incident)),
                        "ConditionExpression": "attribute_not_exists(PK)"}
        try:
            self._client.transact_write_items(TransactItems=[{"Put": state_put}, {"Put": incident_put}])
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "TransactionCanceledException":
                raise ConflictError(f"state of {state.target} changed since version {expected_version}, "
                                    f"or incident {incident.id} exists") from None
            raise StoreError(f"DynamoDB TransactWriteItems on {self.table_name} failed: {code}") from None
        except BotoCoreError as exc:
            raise StoreError(f"DynamoDB TransactWriteItems on {self.table_name} failed: {exc}") from None
        return new

    # -- incidents ---------------------------------------------------------------------------------------------
    @staticmethod
    def _incident_item(incident: Incident) -> dict[str, Any]:
        when = f"{incident.opened_at}#{incident.id}"
        return {
            **incident.to_dict(),
            "PK": f"INCIDENT#{incident.id}", "SK": "INCIDENT",
            "GSI1PK": f"TARGET#{incident.target}", "GSI1SK": f"INCIDENT#{when}",
            "GSI2PK": _incident_partition(incident.status), "GSI2SK": when, "kind": "incident",
        }

    def create_incident(self, incident: Incident) -> bool:
        try:
            self._put(self._incident_item(incident), "attribute_not_exists(PK)")
        except ConflictError:
            return False
        return True

    def get_incident(self, incident_id: str) -> Incident | None:
        item = self._get(f"INCIDENT#{incident_id}", "INCIDENT")
        return Incident(**_fields_of(Incident, item)) if item else None

    def update_incident(self, incident_id: str, **changes: Any) -> Incident:
        current = self.get_incident(incident_id)
        if current is None:
            raise StoreError(f"no incident {incident_id}")
        unknown = set(changes) - {f.name for f in fields(Incident)}
        if unknown:
            raise StoreError(f"incident has no field(s) {', '.join(sorted(unknown))}")
        if not changes:
            return current
        # Only the attributes this caller owns (SET), so a verdict and a resolve racing cannot overwrite each other.
        if changes.get("status") == "resolved":  # retention starts when the incident is over
            changes = {**changes, "expires_at": int(time.time()) + RESOLVED_INCIDENT_TTL_DAYS * 86_400}
        if "status" in changes:  # leaves (or enters) the sparse GSI2 partition of open incidents
            changes = {**changes, "GSI2PK": _incident_partition(changes["status"])}
        names = {f"#f{i}": name for i, name in enumerate(changes)}
        values = {f":v{i}": value for i, value in enumerate(changes.values())}
        try:
            out = self._call(
                "update_item", Key=self._encode({"PK": f"INCIDENT#{incident_id}", "SK": "INCIDENT"}),
                UpdateExpression="SET " + ", ".join(f"{n} = {v}" for n, v in zip(names, values, strict=True)),
                ConditionExpression="attribute_exists(PK)", ExpressionAttributeNames=names,
                ExpressionAttributeValues=self._values(values), ReturnValues="ALL_NEW")
        except ConflictError:
            raise StoreError(f"no incident {incident_id}") from None
        return Incident(**_fields_of(Incident, self._decode(out["Attributes"])))

    def list_incidents(self, target: str | None = None, open_only: bool = False, limit: int = 50) -> list[Incident]:
        if limit <= 0:
            return []
        if open_only:  # the sparse partition: only open incidents, however long the history (fleet-wide: few)
            keep = (lambda item: item.get("target") == target) if target else None
            items = self._query("GSI2PK", OPEN_INCIDENTS, index=GSI_BY_KIND, newest_first=True, limit=limit,
                                keep=keep)
        elif target:
            items = self._query("GSI1PK", f"TARGET#{target}", "INCIDENT#", index=GSI_BY_TARGET,
                                newest_first=True, limit=limit)
        else:
            items = [i for partition in ("INCIDENT", OPEN_INCIDENTS)
                     for i in self._query("GSI2PK", partition, index=GSI_BY_KIND, newest_first=True, limit=limit)]
            items = sorted(items, key=lambda i: i.get("GSI2SK", ""), reverse=True)[:limit]
        return [Incident(**_fields_of(Incident, i)) for i in items]

    # -- remediation audit -------------------------------------------------------------------------------------
    def record_action(self, record: ActionRecord) -> None:
        when = f"{record.at}#{self._seq.next()}"
        self._put({
            **record.to_dict(),
            "PK": f"INCIDENT#{record.incident_id}", "SK": f"ACTION#{when}",
            "GSI1PK": f"TARGET#{record.target}", "GSI1SK": f"ACTION#{when}",
            "GSI2PK": "ACTION", "GSI2SK": when, "kind": "action",
            "expires_at": int(time.time()) + ACTION_TTL_DAYS * 86_400,
        })

    def list_actions(
        self, incident_id: str | None = None, target: str | None = None, since: str | None = None
    ) -> list[ActionRecord]:
        if incident_id:
            items = self._query("PK", f"INCIDENT#{incident_id}", "ACTION#", from_sk=since)
            if target:
                items = [i for i in items if i.get("target") == target]
        elif target:
            items = self._query("GSI1PK", f"TARGET#{target}", "ACTION#", index=GSI_BY_TARGET, from_sk=since)
        else:
            items = self._query("GSI2PK", "ACTION", index=GSI_BY_KIND)
        if since:
            items = [i for i in items if i.get("at", "") >= since]
        return [ActionRecord(**_fields_of(ActionRecord, i)) for i in items]

    # -- leases and once-only claims (remediation) -------------------------------------------------------------
    # The lease's ISO expiry is stored as ``lease_expires_at``: ``expires_at`` is the table's TTL attribute.
    def acquire_lock(self, name: str, owner: str, now: str, expires_at: str) -> bool:
        item = {
            "PK": f"LOCK#{name}", "SK": "LOCK", "kind": "lock",
            "name": name, "owner": owner, "acquired_at": now, "lease_expires_at": expires_at,
            "expires_at": int(parse_iso(expires_at).timestamp()) + LOCK_TTL_GRACE_S,
        }
        try:
            self._put(
                item,
                "attribute_not_exists(PK) OR lease_expires_at <= :now OR #owner = :owner",
                {":now": now, ":owner": owner},
                {"#owner": "owner"},
            )
        except ConflictError:
            return False
        return True

    def store_now(self) -> str:
        """DynamoDB's own time: the Date header of a consistent read (one second resolution, never the caller's)."""
        if self._clock is not None:
            return self._clock.iso()
        from email.utils import parsedate_to_datetime

        from gatewatch.clock import iso

        out = self._call("get_item", Key=self._encode({"PK": "CLOCK", "SK": "CLOCK"}), ConsistentRead=True)
        date = (out.get("ResponseMetadata", {}).get("HTTPHeaders") or {}).get("date")
        if not date:
            raise StoreError(f"DynamoDB get_item on {self.table_name}: no Date header to take the time from")
        return iso(parsedate_to_datetime(date))

    def release_lock(self, name: str, owner: str) -> bool:
        try:
            self._call(
                "delete_item",
                Key=self._encode({"PK": f"LOCK#{name}", "SK": "LOCK"}),
                ConditionExpression="#owner = :owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues=self._values({":owner": owner}),
            )
        except ConflictError:
            return False
        return True

    def get_lock(self, name: str) -> LockRecord | None:
        item = self._get(f"LOCK#{name}", "LOCK")
        if not item:
            return None
        return LockRecord(**_fields_of(LockRecord, item, {"expires_at": "_ttl", "lease_expires_at": "expires_at"}))

    def claim(self, key: str, at: str, detail: dict[str, Any] | None = None) -> bool:
        item = {"PK": f"CLAIM#{key}", "SK": "CLAIM", "kind": "claim", "key": key, "at": at, "detail": detail or {}}
        try:
            self._put(item, "attribute_not_exists(PK)")
        except ConflictError:
            return False
        return True

    def get_claim(self, key: str) -> ClaimRecord | None:
        item = self._get(f"CLAIM#{key}", "CLAIM")
        return ClaimRecord(**_fields_of(ClaimRecord, item)) if item else None

    def update_claim(self, key: str, detail: dict[str, Any]) -> None:
        try:
            self._call(
                "update_item",
                Key=self._encode({"PK": f"CLAIM#{key}", "SK": "CLAIM"}),
                UpdateExpression="SET #d = :d",
                ConditionExpression="attribute_exists(PK)",
                ExpressionAttributeNames={"#d": "detail"},
                ExpressionAttributeValues=self._values({":d": detail}),
            )
        except ConflictError:
            raise StoreError(f"no claim {key}") from None

    # -- notification attempts (gatewatch.notify.dispatch) ---------------------------------------------------
    # GSI2 partition "NOTIFY#pending" holds only the deliveries still to retry, so a round reads just those.
    def put_notification(self, record: NotificationRecord) -> None:
        when = f"{record.first_at}#{record.id}"
        self._put({
            **record.to_dict(),
            "PK": f"NOTIFY#{record.id}", "SK": "NOTIFY",
            "GSI1PK": f"TARGET#{record.target}", "GSI1SK": f"NOTIFY#{when}",
            "GSI2PK": "NOTIFY#pending" if record.status == "pending" else "NOTIFY", "GSI2SK": when,
            "kind": "notification", "expires_at": int(time.time()) + self.probe_ttl_days * 86_400,
        })

    def list_notifications(self, target: str | None = None, incident_id: str | None = None,
                           pending_only: bool = False, limit: int = 50) -> list[NotificationRecord]:
        if limit <= 0:
            return []

        def keep(item: dict[str, Any]) -> bool:
            return ((incident_id is None or item.get("incident_id") == incident_id)
                    and (target is None or item.get("target") == target)
                    and (not pending_only or item.get("status") == "pending"))

        if pending_only:
            items = self._query("GSI2PK", "NOTIFY#pending", index=GSI_BY_KIND, newest_first=True, limit=limit,
                                keep=keep)
        elif target:
            items = self._query("GSI1PK", f"TARGET#{target}", "NOTIFY#", index=GSI_BY_TARGET, newest_first=True,
                                limit=limit, keep=keep)
        else:
            items = self._query("GSI2PK", "NOTIFY", index=GSI_BY_KIND, newest_first=True, limit=limit, keep=keep)
            items += self._query("GSI2PK", "NOTIFY#pending", index=GSI_BY_KIND, newest_first=True, limit=limit,
                                 keep=keep)
            items = sorted(items, key=lambda i: i.get("GSI2SK", ""), reverse=True)[:limit]
        return [NotificationRecord(**_fields_of(NotificationRecord, i)) for i in items]
