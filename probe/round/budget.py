"""The data budget: daily and monthly caps on the bytes the probe moves, and what a cap stops.

Contract: pure functions of the caps, the bytes actually used (the sum of the stored
measurements' ``bytes_used``, counted from the wire) and the clock. ``check`` says whether a
piece of work that may need ``need`` more bytes fits, and if not, why (a one-line reason naming
the cap, what was used and when it resets). Throughput tests give way first: they must leave
``reserve`` bytes (a page round's worth, and at least ``RESERVE_SHARE`` of the cap) for pages,
so a day that runs short loses its throughput tests before it loses any page round. An
:class:`Allowance` carries the caps and that reserve from the one who decides them (the daemon)
to the round, which asks ``check`` before each throughput test: no other code compares bytes
with a cap. Days and
months are UTC (:mod:`probe.timeutil`'s boundaries): the caps reset at midnight UTC and on
the first of the month.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from probe.timeutil import minutes, next_day, next_month

RESERVE_SHARE = 0.1


@dataclass(frozen=True, slots=True)
class Budget:
    daily: int | None = None
    monthly: int | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    today: int
    month: int


@dataclass(frozen=True, slots=True)
class Allowance:
    """What a round may spend: the caps, and the bytes its throughput tests must leave for
    page rounds (``reserve``, as :func:`check` takes it; none for a one-off ``probe run``)."""

    budget: Budget = field(default_factory=Budget)
    reserve: float = 0

    def check(self, used: Usage, need: float, now: datetime) -> str | None:
        return check(self.budget, used, need, now, reserve=self.reserve)


def mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def check(
    budget: Budget, used: Usage, need: float, now: datetime, *, reserve: float = 0
) -> str | None:
    """None if ``need`` more bytes (plus ``reserve`` left over) fit under both caps; else why
    not, e.g. "daily cap: 24.1 MB of 25.0 MB used, resets 2026-11-30T00:00Z"."""
    for name, cap, spent, reset in (
        ("daily", budget.daily, used.today, next_day(now)),
        ("monthly", budget.monthly, used.month, next_month(now)),
    ):
        if cap is None:
            continue
        keep = reserve and max(reserve, RESERVE_SHARE * cap)
        if spent + need + keep > cap:
            return f"{name} cap: {mb(spent)} of {mb(cap)} used, resets {minutes(reset)}"
    return None


def room(budget: Budget, used: Usage, *, fixed: float = 0, reserve: float = 0) -> int | None:
    """The most bytes of work that fit under both caps after ``fixed`` bytes, leaving
    ``reserve`` as ``check`` does: ``check`` lets ``fixed + n`` through exactly when ``n`` is
    at most this. None when there is no cap; negative when not even ``fixed`` fits."""
    left: int | None = None
    for cap, spent in ((budget.daily, used.today), (budget.monthly, used.month)):
        if cap is None:
            continue
        keep = reserve and max(reserve, RESERVE_SHARE * cap)
        here = math.floor(cap - spent - fixed - keep)
        left = here if left is None else min(left, here)
    return left
