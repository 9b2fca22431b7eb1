"""The engine's notion of now.

Every timestamp the engine writes and every timer it evaluates comes from a `Clock`.
The command line's `--now` turns the system clock into a fixed one, which is how
deadlines and escalations are tested and demonstrated.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

from engine.errors import InputError


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


class FixedClock:
    """A clock that stands still at one instant until it is moved."""

    def __init__(self, at: datetime) -> None:
        self.at = ensure_utc(at)

    def now(self) -> datetime:
        return self.at

    def set(self, at: datetime) -> None:
        self.at = ensure_utc(at)

    def __repr__(self) -> str:
        return f"FixedClock({self.at.isoformat()})"


def ensure_utc(value: datetime) -> datetime:
    """Refuse naive datetimes; convert aware ones to UTC."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise InputError(
            f"time {value.isoformat()} has no timezone",
            "Write times in ISO 8601 with an offset, for example 2026-11-26T09:00:00Z.",
        )
    return value.astimezone(UTC)


def parse_time(text: str) -> datetime:
    """Parse ISO 8601 text into an aware UTC datetime.

    A date alone means midnight UTC; a time without an offset is taken as UTC, which is
    what an operator typing `--now 2026-12-01T09:00` on a server expects.
    """
    raw = text.strip()
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise InputError(
            f"'{text}' is not an ISO 8601 time",
            "Use for example 2026-11-26, 2026-11-26T09:00 or 2026-11-26T09:00:00+08:00.",
        ) from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
