"""The byte budget: its caps, what it lets a round run, and throughput giving way before pages."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from probe.round import budget


def test_budget_reasons_and_resets() -> None:
    now = datetime(2026, 12, 31, 23, 0, tzinfo=UTC)
    caps = budget.Budget(daily=25_000_000, monthly=500_000_000)
    assert budget.check(caps, budget.Usage(1_000_000, 1_000_000), 2_000_000, now) is None
    why = budget.check(caps, budget.Usage(24_000_000, 30_000_000), 2_000_000, now)
    assert why == "daily cap: 24.0 MB of 25.0 MB used, resets 2027-01-01T00:00Z"
    why = budget.check(caps, budget.Usage(0, 499_000_000), 2_000_000, now)
    assert why is not None and why.startswith("monthly cap: 499.0 MB of 500.0 MB")
    assert budget.check(budget.Budget(), budget.Usage(10**12, 10**12), 10**9, now) is None


@given(
    daily=st.none() | st.integers(0, 10**9),
    monthly=st.none() | st.integers(0, 10**10),
    today=st.integers(0, 10**9),
    extra=st.integers(0, 10**9),
    per=st.integers(1, 10**8),
    fixed=st.integers(0, 10**7),
    reserve=st.integers(0, 10**7),
)
def test_room_is_the_most_bytes_check_lets_run(
    daily: int | None,
    monthly: int | None,
    today: int,
    extra: int,
    per: int,
    fixed: int,
    reserve: int,
) -> None:
    """The daemon fits throughput tests into ``room``: exactly the bytes ``check`` lets
    through, no more (a cap overrun) and no fewer (tests lost)."""
    now = datetime(2026, 11, 29, tzinfo=UTC)
    caps, used = budget.Budget(daily, monthly), budget.Usage(today, today + extra)
    left = budget.room(caps, used, fixed=fixed, reserve=reserve)
    if daily is None and monthly is None:
        assert left is None
        return
    assert left is not None
    if left >= 0:
        assert budget.check(caps, used, fixed + left, now, reserve=reserve) is None
    assert budget.check(caps, used, fixed + max(left, -1) + 1, now, reserve=reserve) is not None
    n = left // per if left >= 0 else 0  # whole tests of ``per`` bytes
    assert budget.check(caps, used, fixed + (n + 1) * per, now, reserve=reserve) is not None


def test_throughput_gives_way_before_pages() -> None:
    """Between "throughput refused" and "pages refused" there is room: the reserve."""
    now = datetime(2026, 11, 29, tzinfo=UTC)
    caps = budget.Budget(daily=25_000_000)
    page_round, tp_test = 1_000_000, 1_700_000
    used = 0
    first_refused: dict[str, int] = {}
    while used < caps.daily:
        u = budget.Usage(used, used)
        if "throughput" not in first_refused and budget.check(
            caps, u, tp_test, now, reserve=page_round
        ):
            first_refused["throughput"] = used
        if budget.check(caps, u, page_round, now):
            first_refused["pages"] = used
            break
        used += 100_000
    assert first_refused["throughput"] < first_refused["pages"]
    # pages run while a round still fits under the cap, and not once it does not
    assert first_refused["pages"] + page_round > caps.daily >= first_refused["pages"]
