"""The clock port: real time in production, a fake that tests advance by hand."""

from __future__ import annotations

import time
from datetime import UTC, datetime


class Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def iso(self) -> str:
        return iso(self.now())


class FakeClock(Clock):
    """Starts at a fixed instant; ``sleep`` advances it instead of waiting."""

    def __init__(self, start: datetime | None = None):
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self._now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        from datetime import timedelta

        self._now = self._now + timedelta(seconds=seconds)


def iso(moment: datetime) -> str:
    """ISO-8601 in UTC with a Z, to the millisecond: sortable as text, the same in every store."""
    m = moment if moment.tzinfo is UTC else moment.astimezone(UTC)  # formatted by hand: strftime is 4x slower
    return (f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}."
            f"{m.microsecond // 1000:03d}Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
