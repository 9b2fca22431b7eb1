"""What `artreturns watch` counts of the returns themselves, in plain SQL.

The engine counts running instances per process; the returns add how many of those in
flight stand at each ticket status (requested, open, approved, ...), read from the
ticket table over a DB-API connection (`engine.reading.Reader`), without SQLAlchemy.
"""

from __future__ import annotations

from engine.reading import Reader


def tickets_in_flight(reader: Reader) -> dict[str, int]:
    """Running returns per ticket status."""
    rows = reader.rows(
        "SELECT r.status, COUNT(*) FROM rma_number r "
        "JOIN instance i ON i.business_key = r.number "
        "WHERE i.status = 'running' GROUP BY r.status"
    )
    return {str(status): int(count) for status, count in rows}


#: The tallies `watch` adds to the engine's, by the name its --json gives them.
TALLIES = {"ticket": tickets_in_flight}

__all__ = ["TALLIES", "tickets_in_flight"]
