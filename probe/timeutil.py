"""UTC timestamps: the one form the probe stores (``2026-11-29T02:00:00.000Z``) and its parsers.

Contract: every time the probe writes is UTC ISO-8601 with milliseconds and a ``Z``, so text
order is time order and SQLite, spreadsheets and DuckDB read it as a date. ``parse_iso`` reads
what a person types (a date, or a date-time with or without a zone; UTC when none) and raises
``ValueError`` otherwise.
"""

from __future__ import annotations

from datetime import UTC, datetime


def iso(t: datetime) -> str:
    """``t`` (naive means UTC) as the stored form."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_now() -> str:
    return iso(datetime.now(UTC))


def parse_iso(text: str) -> datetime:
    """An ISO-8601 date or date-time (UTC when no zone is given), as an aware datetime."""
    t = datetime.fromisoformat(text.strip())
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def from_stored(text: str) -> datetime:
    """The stored form back to an aware datetime."""
    return parse_iso(text)


def day_start(t: datetime) -> str:
    """Midnight UTC of ``t``'s day, stored form."""
    return iso(t.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0))


def month_start(t: datetime) -> str:
    """Midnight UTC of the first of ``t``'s month, stored form."""
    return iso(t.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0))
