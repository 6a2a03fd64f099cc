"""How long the results store keeps things, the same on both stores (docs/dynamodb.md "Retention").

DynamoDB: TTL on ``expires_at`` (probes and notifications ``PROBE_DAYS``; remediation actions and resolved
incidents ``RESOLVED_DAYS``; open incidents never). SQLite: ``SQLiteStore.prune`` deletes the same, run by
``gatewatch store prune`` and, at most once every ``AUTO_PRUNE_EVERY_S``, by ``gatewatch run``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from gatewatch.clock import iso

PROBE_DAYS = 30  # probe rounds (and notification records)
RESOLVED_DAYS = 180  # resolved incidents with their verdict and facts, and remediation actions
AUTO_PRUNE_EVERY_S = 86_400  # `gatewatch run` prunes a SQLite store at most once a day


def cutoffs(now: datetime, probes: timedelta | None = None, resolved: timedelta | None = None) -> tuple[str, str]:
    """(probes before, resolved before) as ``clock.iso`` text, the stores' sortable time form."""
    return (iso(now - (probes or timedelta(days=PROBE_DAYS))),
            iso(now - (resolved or timedelta(days=RESOLVED_DAYS))))


def auto_prune(store, now: datetime) -> dict[str, int] | None:
    """A SQLite store: prune with the default ages when the last prune is a day old (the claim is kept in the
    store, so two `gatewatch run` processes never both prune). Other stores (DynamoDB: TTL): None."""
    if not hasattr(store, "prune_due") or not store.prune_due(iso(now), AUTO_PRUNE_EVERY_S):
        return None
    return store.prune(*cutoffs(now))
