"""The one home of UTC day and month boundaries and of the written forms of a time
(:mod:`probe.timeutil`), and the one default port (:func:`probe.addr.port_of_scheme`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from probe import timeutil
from probe.addr import port_of_scheme
from probe.round import new_measurement_id
from probe.round.budget import Budget, Usage, check
from tests.strategies import junk


@pytest.mark.parametrize(
    ("t", "day", "next_day", "month", "next_month"),
    [
        (
            datetime(2026, 12, 31, 23, 0, tzinfo=UTC),
            datetime(2026, 12, 31, tzinfo=UTC),
            datetime(2027, 1, 1, tzinfo=UTC),
            datetime(2026, 12, 1, tzinfo=UTC),
            datetime(2027, 1, 1, tzinfo=UTC),
        ),
        (  # 01:30 in UTC+7 is still the 28th of February in UTC
            datetime(2028, 2, 29, 1, 30, tzinfo=timezone(timedelta(hours=7))),
            datetime(2028, 2, 28, tzinfo=UTC),
            datetime(2028, 2, 29, tzinfo=UTC),
            datetime(2028, 2, 1, tzinfo=UTC),
            datetime(2028, 3, 1, tzinfo=UTC),
        ),
        (  # naive means UTC
            datetime(2026, 11, 29, 0, 0),
            datetime(2026, 11, 29, tzinfo=UTC),
            datetime(2026, 11, 30, tzinfo=UTC),
            datetime(2026, 11, 1, tzinfo=UTC),
            datetime(2026, 12, 1, tzinfo=UTC),
        ),
    ],
)
def test_day_and_month_boundaries_are_utc(
    t: datetime, day: datetime, next_day: datetime, month: datetime, next_month: datetime
) -> None:
    assert timeutil.day_floor(t) == day and timeutil.next_day(t) == next_day
    assert timeutil.month_floor(t) == month and timeutil.next_month(t) == next_month
    assert timeutil.day_start(t) == timeutil.iso(day)
    assert timeutil.month_start(t) == timeutil.iso(month)


def test_the_budget_resets_on_timeutil_s_boundaries() -> None:
    now = datetime(2026, 12, 31, 23, 0, tzinfo=UTC)
    why = check(Budget(daily=10), Usage(10, 10), 1, now)
    assert why is not None and why.endswith(f"resets {timeutil.minutes(timeutil.next_day(now))}")
    why = check(Budget(monthly=10), Usage(0, 10), 1, now)
    assert why is not None and why.endswith("resets 2027-01-01T00:00Z")


def test_the_written_forms_of_a_time() -> None:
    t = datetime(2026, 11, 29, 9, 5, 7, 250_000, tzinfo=timezone(timedelta(hours=7)))
    assert timeutil.iso(t) == "2026-11-29T02:05:07.250Z"
    assert timeutil.compact(t) == "20261129T020507Z"
    assert timeutil.minutes(t) == "2026-11-29T02:05Z"
    assert timeutil.from_stored(timeutil.iso(t)) == t
    assert new_measurement_id(t).startswith("20261129T020507Z_")


def test_default_ports() -> None:
    assert (port_of_scheme("https"), port_of_scheme("http")) == (443, 80)


# -- timestamps ---------------------------------------------------------------------------------
def test_iso_forms() -> None:
    t = datetime(2026, 11, 29, 2, 3, 4, 567_890)
    assert timeutil.iso(t) == "2026-11-29T02:03:04.567Z"  # naive is UTC
    hanoi = timezone(timedelta(hours=7))
    assert timeutil.iso(t.replace(tzinfo=hanoi)) == "2026-11-28T19:03:04.567Z"
    assert timeutil.parse_iso("2026-11-29") == datetime(2026, 11, 29, tzinfo=UTC)
    assert timeutil.parse_iso(" 2026-11-29T09:00+07:00 ") == datetime(2026, 11, 29, 2, tzinfo=UTC)
    assert timeutil.day_start(datetime(2026, 11, 29, 23, 59, tzinfo=UTC)) == (
        "2026-11-29T00:00:00.000Z"
    )
    assert timeutil.month_start(datetime(2026, 11, 29, 23, 59, tzinfo=hanoi)) == (
        "2026-11-01T00:00:00.000Z"
    )
    now = timeutil.utc_now()
    assert now.endswith("Z") and abs(timeutil.from_stored(now) - datetime.now(UTC)).seconds < 60
    with pytest.raises(ValueError):
        timeutil.parse_iso("yesterday")


# -- timestamps --------------------------------------------------------------------------------
moments = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)


@given(moments, st.integers(-14 * 60, 14 * 60))
def test_stored_form_round_trips_from_any_zone(t: datetime, offset_min: int) -> None:
    from datetime import timezone

    local = t.astimezone(timezone(timedelta(minutes=offset_min)))
    stored = timeutil.iso(local)
    assert stored.endswith("Z") and len(stored) == 24
    back = timeutil.from_stored(stored)
    assert back == t.replace(microsecond=t.microsecond // 1000 * 1000)


@given(moments, moments)
def test_stored_form_sorts_as_time(a: datetime, b: datetime) -> None:
    assume(a.replace(microsecond=0) != b.replace(microsecond=0))
    assert (timeutil.iso(a) < timeutil.iso(b)) is (a < b)


@given(junk)
def test_parse_iso_raises_only_value_error(text: str) -> None:
    try:
        t = timeutil.parse_iso(text)
    except ValueError:
        return
    assert t.tzinfo is not None and t.utcoffset() == timedelta(0)
