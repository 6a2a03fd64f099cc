"""The results store port and its adapters."""

from gatewatch.store.base import (
    ActionRecord,
    ClaimRecord,
    Incident,
    LockRecord,
    NotificationRecord,
    ProbeRecord,
    ResultsStore,
    TargetState,
)
from gatewatch.store.dynamodb import DynamoDBStore
from gatewatch.store.exceptions import ConflictError, StoreError
from gatewatch.store.sqlite import DEFAULT_DB_PATH, SQLiteStore, default_db_path

__all__ = [
    "DEFAULT_DB_PATH",
    "ActionRecord",
    "ClaimRecord",
    "ConflictError",
    "DynamoDBStore",
    "Incident",
    "LockRecord",
    "NotificationRecord",
    "ProbeRecord",
    "ResultsStore",
    "SQLiteStore",
    "StoreError",
    "TargetState",
    "default_db_path",
]
