"""UTC timestamps: the one form the probe stores (``2026-11-29T02:00:00.000Z``) and its parsers.

Contract: every time the probe writes is UTC ISO-8601 with milliseconds and a ``Z``, so text
order is time order and SQLite, spreadsheets and DuckDB read it as a date. ``parse_iso`` reads
what a person types (a date, or a date-time with or without a zone; UTC when none) and raises
``ValueError`` otherwise. Days and months are UTC days and months: their boundaries
(``day_floor``, ``next_day``, ``month_floor``, ``next_month``) are computed here and nowhere
else. Two other forms are written, each for one purpose: ``compact`` (``20261129T020000Z``,
the time part of a measurement id) and ``minutes`` (``2026-11-29T02:00Z``, in a one-line
message for a person). A naive datetime means UTC everywhere.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def iso(t: datetime) -> str:
    """``t`` (naive means UTC) as the stored form."""
    return _utc(t).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def compact(t: datetime) -> str:
    """``t`` to the second in ISO-8601's basic form, ``20261129T020000Z``: sorts as time does
    and holds no ``:`` or ``-``, for identifiers (a measurement id starts with it)."""
    return _utc(t).strftime("%Y%m%dT%H%M%SZ")


def minutes(t: datetime) -> str:
    """``t`` to the minute, ``2026-11-29T02:00Z``: for a person, in a one-line message."""
    return _utc(t).strftime("%Y-%m-%dT%H:%MZ")


def utc_now() -> str:
    return iso(datetime.now(UTC))


def parse_iso(text: str) -> datetime:
    """An ISO-8601 date or date-time (UTC when no zone is given), as an aware datetime."""
    t = datetime.fromisoformat(text.strip())
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def from_stored(text: str) -> datetime:
    """The stored form back to an aware datetime."""
    return parse_iso(text)


def day_floor(t: datetime) -> datetime:
    """Midnight UTC of ``t``'s day."""
    return _utc(t).replace(hour=0, minute=0, second=0, microsecond=0)


def next_day(t: datetime) -> datetime:
    """The next midnight UTC after ``t``."""
    return day_floor(t) + timedelta(days=1)


def month_floor(t: datetime) -> datetime:
    """Midnight UTC of the first of ``t``'s month."""
    return day_floor(t).replace(day=1)


def next_month(t: datetime) -> datetime:
    """Midnight UTC on the first of the month after ``t``'s."""
    m = month_floor(t)
    return m.replace(year=m.year + (m.month == 12), month=m.month % 12 + 1)


def day_start(t: datetime) -> str:
    """Midnight UTC of ``t``'s day, stored form."""
    return iso(day_floor(t))


def month_start(t: datetime) -> str:
    """Midnight UTC of the first of ``t``'s month, stored form."""
    return iso(month_floor(t))
