"""SQLite results store: the embedded default for the local pipeline.

One file, WAL mode, every write in its own short transaction. Conditional writes use SQL predicates
(``WHERE version = ?``, ``INSERT`` on a primary key) so concurrent ``gatewatch run`` processes stay consistent.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

from gatewatch.clock import iso, parse_iso
from gatewatch.store.base import (
    ActionRecord,
    ClaimRecord,
    Incident,
    LockRecord,
    NotificationRecord,
    ProbeRecord,
    ResultsStore,
    TargetState,
    dumps,
)
from gatewatch.store.exceptions import ConflictError, StoreError

DEFAULT_DB_PATH = "~/.local/state/gatewatch/gatewatch.db"

SCHEMA = """
CREATE TABLE IF NOT EXISTS probes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    target TEXT NOT NULL, at TEXT NOT NULL, status TEXT NOT NULL, reason TEXT, total_ms REAL,
    result TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS probes_by_target ON probes (target, id);
CREATE INDEX IF NOT EXISTS probes_by_target_time ON probes (target, at);
CREATE TABLE IF NOT EXISTS target_state (
    target TEXT PRIMARY KEY, doc TEXT NOT NULL, version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS incidents (
    id TEXT PRIMARY KEY, target TEXT NOT NULL, opened_at TEXT NOT NULL, status TEXT NOT NULL, doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS incidents_by_target ON incidents (target, opened_at);
CREATE INDEX IF NOT EXISTS incidents_open ON incidents (opened_at) WHERE status = 'open';
CREATE TABLE IF NOT EXISTS actions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id TEXT NOT NULL, target TEXT NOT NULL, at TEXT NOT NULL, doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS actions_by_incident ON actions (incident_id, id);
CREATE TABLE IF NOT EXISTS locks (
    name TEXT PRIMARY KEY, owner TEXT NOT NULL, acquired_at TEXT NOT NULL, expires_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY, at TEXT NOT NULL, doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS notifications (
    id TEXT PRIMARY KEY, target TEXT NOT NULL, incident_id TEXT, first_at TEXT NOT NULL, status TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS notifications_by_target ON notifications (target, first_at);
CREATE INDEX IF NOT EXISTS notifications_pending ON notifications (status, first_at);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def default_db_path() -> Path:
    """``$GATEWATCH_DB`` when set, else the XDG-style state path."""
    return Path(os.environ.get("GATEWATCH_DB") or os.path.expanduser(DEFAULT_DB_PATH))


class SQLiteStore(ResultsStore):
    def __init__(self, path: str | os.PathLike[str] | None = None, clock: Any = None):
        self.path = Path(path) if path else default_db_path()
        self._clock = clock  # stands in for the database's own time (tests); None: SQLite's now
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(str(self.path), timeout=10, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the results store at {self.path}: {exc}") from exc

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        try:
            with self._lock:
                return self._db.execute(sql, args)
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            raise StoreError(f"results store {self.path}: {exc}") from exc

    # probes
    def record_probe(self, record: ProbeRecord) -> None:
        self._run(
            "INSERT INTO probes (target, at, status, reason, total_ms, result) VALUES (?, ?, ?, ?, ?, ?)",
            (record.target, record.at, record.status, record.reason, record.total_ms, dumps(record.result)),
        )

    def history(self, target: str | None = None, limit: int = 50) -> list[ProbeRecord]:
        where, args = ("WHERE target = ?", (target,)) if target else ("", ())
        rows = self._run(
            f"SELECT target, at, status, reason, total_ms, result FROM probes {where} "  # noqa: S608  # nosec B608 - fixed
            "ORDER BY id DESC LIMIT ?",
            (*args, limit),
        ).fetchall()
        return [ProbeRecord(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    def probes_between(self, target: str, since: str, until: str | None = None) -> list[ProbeRecord]:
        rows = self._run(
            "SELECT target, at, status, reason, total_ms FROM probes WHERE target = ? AND at >= ? AND at < ? "
            "ORDER BY at, id",
            (target, since, until or "~"),
        ).fetchall()
        return [ProbeRecord(r[0], r[1], r[2], r[3], r[4], {}) for r in rows]

    # target state
    def list_states(self) -> list[TargetState]:
        rows = self._run("SELECT doc, version FROM target_state ORDER BY target").fetchall()
        return [TargetState(**{**json.loads(r[0]), "version": r[1]}) for r in rows]

    def get_state(self, target: str) -> TargetState | None:
        row = self._run("SELECT doc, version FROM target_state WHERE target = ?", (target,)).fetchone()
        if not row:
            return None
        state = TargetState(**json.loads(row[0]))
        state.version = row[1]
        return state

    def put_state(self, state: TargetState, expected_version: int) -> TargetState:
        new = TargetState(**{**state.to_dict(), "version": expected_version + 1})
        doc = dumps(new.to_dict())
        if expected_version == 0:
            try:
                self._run(
                    "INSERT INTO target_state (target, doc, version) VALUES (?, ?, 1)", (state.target, doc)
                )
            except sqlite3.IntegrityError:
                raise ConflictError(f"state of {state.target} was created by someone else") from None
            return new
        cur = self._run(
            "UPDATE target_state SET doc = ?, version = ? WHERE target = ? AND version = ?",
            (doc, new.version, state.target, expected_version),
        )
        if cur.rowcount != 1:
            raise ConflictError(f"state of {state.target} changed since version {expected_version}")
        return new

    def open_incident(self, state: TargetState, expected_version: int, incident: Incident) -> TargetState:
        """The DOWN state and the incident in one SQLite transaction (see ResultsStore.open_incident)."""
        new = TargetState(**{**state.to_dict(), "version": expected_version + 1})
        doc = dumps(new.to_dict())
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    if expected_version == 0:
                        cur = self._db.execute("INSERT OR IGNORE INTO target_state (target, doc, version) "
                                               "VALUES (?, ?, 1)", (state.target, doc))
                    else:
                        cur = self._db.execute("UPDATE target_state SET doc = ?, version = ? WHERE target = ? "
                                               "AND version = ?", (doc, new.version, state.target, expected_version))
                    if cur.rowcount != 1:
                        raise ConflictError(f"state of {state.target} changed since version {expected_version}")
                    self._db.execute(
                        "INSERT INTO incidents (id, target, opened_at, status, doc) VALUES (?, ?, ?, ?, ?)",
                        (incident.id, incident.target, incident.opened_at, incident.status,
                         dumps(incident.to_dict())))
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
        except sqlite3.IntegrityError:
            raise ConflictError(f"incident {incident.id} exists already") from None
        except sqlite3.Error as exc:
            raise StoreError(f"results store {self.path}: {exc}") from exc
        return new

    # incidents
    def create_incident(self, incident: Incident) -> bool:
        try:
            self._run(
                "INSERT INTO incidents (id, target, opened_at, status, doc) VALUES (?, ?, ?, ?, ?)",
                (incident.id, incident.target, incident.opened_at, incident.status, dumps(incident.to_dict())),
            )
        except sqlite3.IntegrityError:
            return False
        return True

    def get_incident(self, incident_id: str) -> Incident | None:
        row = self._run("SELECT doc FROM incidents WHERE id = ?", (incident_id,)).fetchone()
        return Incident(**json.loads(row[0])) if row else None

    def update_incident(self, incident_id: str, **changes: Any) -> Incident:
        current = self.get_incident(incident_id)
        if current is None:
            raise StoreError(f"no incident {incident_id}")
        # read-modify-write in one transaction: only the given fields change, concurrent writers cannot interleave
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    row = self._db.execute("SELECT doc FROM incidents WHERE id = ?", (incident_id,)).fetchone()
                    if row is None:
                        raise StoreError(f"no incident {incident_id}")
                    updated = Incident(**{**json.loads(row[0]), **changes})
                    self._db.execute("UPDATE incidents SET status = ?, doc = ? WHERE id = ?",
                                     (updated.status, dumps(updated.to_dict()), incident_id))
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"results store {self.path}: {exc}") from exc
        return updated

    def list_incidents(self, target: str | None = None, open_only: bool = False, limit: int = 50) -> list[Incident]:
        clauses, args = [], []
        if target:
            clauses.append("target = ?")
            args.append(target)
        if open_only:
            clauses.append("status = 'open'")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._run(
            f"SELECT doc FROM incidents {where} ORDER BY opened_at DESC, id DESC LIMIT ?",  # noqa: S608  # nosec B608 - fixed
            (*args, limit),
        ).fetchall()
        return [Incident(**json.loads(r[0])) for r in rows]

    # remediation audit
    def record_action(self, record: ActionRecord) -> None:
        self._run(
            "INSERT INTO actions (incident_id, target, at, doc) VALUES (?, ?, ?, ?)",
            (record.incident_id, record.target, record.at, dumps(record.to_dict())),
        )

    def list_actions(
        self, incident_id: str | None = None, target: str | None = None, since: str | None = None
    ) -> list[ActionRecord]:
        clauses, args = [], []
        if since:
            clauses.append("at >= ?")
            args.append(since)
        if incident_id:
            clauses.append("incident_id = ?")
            args.append(incident_id)
        if target:
            clauses.append("target = ?")
            args.append(target)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT doc FROM actions {where} ORDER BY id"  # noqa: S608  # nosec B608 - fixed clauses, bound values
        rows = self._run(sql, tuple(args)).fetchall()
        return [ActionRecord(**json.loads(r[0])) for r in rows]

    # leases and claims (remediation): each is one SQL statement, so it is atomic across connections and processes
    def acquire_lock(self, name: str, owner: str, now: str, expires_at: str) -> bool:
        cur = self._run(
            "INSERT INTO locks (name, owner, acquired_at, expires_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, acquired_at = excluded.acquired_at, "
            "expires_at = excluded.expires_at WHERE locks.expires_at <= excluded.acquired_at "
            "OR locks.owner = excluded.owner",
            (name, owner, now, expires_at),
        )
        return cur.rowcount == 1

    def store_now(self) -> str:
        if self._clock is not None:
            return self._clock.iso()
        return self._run("SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now')").fetchone()[0]

    def release_lock(self, name: str, owner: str) -> bool:
        return self._run("DELETE FROM locks WHERE name = ? AND owner = ?", (name, owner)).rowcount == 1

    def get_lock(self, name: str) -> LockRecord | None:
        row = self._run(
            "SELECT name, owner, acquired_at, expires_at FROM locks WHERE name = ?", (name,)
        ).fetchone()
        return LockRecord(*row) if row else None

    def claim(self, key: str, at: str, detail: dict[str, Any] | None = None) -> bool:
        try:
            self._run("INSERT INTO claims (key, at, doc) VALUES (?, ?, ?)", (key, at, dumps(detail or {})))
        except sqlite3.IntegrityError:
            return False
        return True

    def get_claim(self, key: str) -> ClaimRecord | None:
        row = self._run("SELECT key, at, doc FROM claims WHERE key = ?", (key,)).fetchone()
        return ClaimRecord(row[0], row[1], json.loads(row[2])) if row else None

    def update_claim(self, key: str, detail: dict[str, Any]) -> None:
        if self._run("UPDATE claims SET doc = ? WHERE key = ?", (dumps(detail), key)).rowcount != 1:
            raise StoreError(f"no claim {key}")

    def put_notification(self, record: NotificationRecord) -> None:
        self._run(
            "INSERT OR REPLACE INTO notifications (id, target, incident_id, first_at, status, doc) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (record.id, record.target, record.incident_id, record.first_at, record.status, dumps(record.to_dict())),
        )

    def list_notifications(self, target: str | None = None, incident_id: str | None = None,
                           pending_only: bool = False, limit: int = 50) -> list[NotificationRecord]:
        rows = self._run(
            "SELECT doc FROM notifications WHERE (? IS NULL OR target = ?) AND (? IS NULL OR incident_id = ?) "
            "AND (? = 0 OR status = 'pending') ORDER BY first_at DESC, id DESC LIMIT ?",
            (target, target, incident_id, incident_id, int(pending_only), limit),
        ).fetchall()
        return [NotificationRecord(**json.loads(r[0])) for r in rows]

    # retention (gatewatch.store.retention; DynamoDB does the same with TTL)
    def prune(self, probes_before: str, resolved_before: str) -> dict[str, int]:
        """Delete probes and notifications from before ``probes_before``, remediation actions from before
        ``resolved_before`` and incidents resolved before it (open incidents stay). Returns the counts."""
        deletes = {
            "probes": ("DELETE FROM probes WHERE at < ?", probes_before),
            "notifications": ("DELETE FROM notifications WHERE first_at < ? AND status != 'pending'", probes_before),
            "actions": ("DELETE FROM actions WHERE at < ?", resolved_before),
            "incidents": ("DELETE FROM incidents WHERE status = 'resolved' "
                          "AND COALESCE(json_extract(doc, '$.resolved_at'), opened_at) < ?", resolved_before),
        }
        return {name: self._run(sql, (before,)).rowcount for name, (sql, before) in deletes.items()}

    def prune_due(self, now: str, every_s: float) -> bool:
        """Claim the periodic prune: True (and ``now`` recorded) when the last one is ``every_s`` old or absent."""
        due = iso(parse_iso(now) - timedelta(seconds=every_s))
        return self._run(
            "INSERT INTO meta (key, value) VALUES ('pruned_at', ?) ON CONFLICT(key) DO UPDATE "
            "SET value = excluded.value WHERE meta.value <= ?", (now, due),
        ).rowcount == 1

    def close(self) -> None:
        with self._lock:
            self._db.close()
