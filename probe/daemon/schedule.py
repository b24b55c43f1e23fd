"""The daemon's schedule: when the next round runs, and which targets it measures.

Contract: everything here but :class:`RandomGapTrigger` is pure; time and randomness are
parameters. ``next_gap(mean, rng)`` draws the gap before the next round: a floor of
``FLOOR`` x mean plus an exponential part truncated at ``CAP`` x mean, whose scale is solved
so the gaps average ``mean``. An observer cannot predict the next round (the exponential part
is all but memoryless), rounds never bunch closer than the floor, and no gap is unbounded.
``backoff`` says how much longer the gaps grow while the link is down or the database refuses
writes. ``due`` picks the targets
a round measures when targets.yaml gives some of them their own ``interval``;
``throughput_rotation`` the targets a capped throughput round tests, in turn;
``RandomGapTrigger`` is the APScheduler 3.x trigger that draws its gaps with ``next_gap``.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from apscheduler.triggers.base import BaseTrigger

from probe.config.targets import Target
from probe.round.throughput import NOTHING_TO_TEST, rotation_key
from probe.store.reads import ThroughputAttempt
from probe.timeutil import from_stored

FLOOR = 0.2  # the shortest gap, as a fraction of the mean
CAP = 3.0  # the longest gap, as a multiple of the mean
MAX_BACKOFF = 8.0  # gaps grow at most this much while offline
# APScheduler job options: a round missed while the machine slept runs once when it wakes,
# however late (no misfire limit), never as a burst (coalesce), never beside itself.
JOB_DEFAULTS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": None}


@functools.cache
def _scale(floor: float, cap: float) -> float:
    """The scale (in units of the mean) of the exponential, truncated to [0, cap - floor],
    whose mean is ``1 - floor``: then the gaps average the mean. Bisection: the truncated
    mean grows with the scale, from 0 towards half the span."""
    span, want = cap - floor, 1 - floor
    lo, hi = 1e-6, 1e6
    for _ in range(200):
        m = (lo + hi) / 2
        q = math.exp(-span / m)
        if m - span * q / (1 - q) < want:
            lo = m
        else:
            hi = m
    return (lo + hi) / 2


def next_gap(mean: float, rng: random.Random, *, floor: float = FLOOR, cap: float = CAP) -> float:
    """Seconds until the next round, within [floor x mean, cap x mean] and averaging ``mean``:
    the floor plus an exponential truncated at the cap (drawn by inverting its distribution,
    one draw of ``rng``: no pile of gaps at the cap)."""
    if not 0 <= floor < 1 or not cap > 2 - floor:
        raise ValueError("need 0 <= floor < 1 and cap > 2 - floor")
    m, span = _scale(floor, cap), cap - floor
    part = -m * math.log(1 - rng.random() * (1 - math.exp(-span / m)))
    return mean * (floor + part)


def backoff(failed_rounds: int) -> float:
    """Factor on the mean gap after ``failed_rounds`` offline (or unwritable) rounds in a row:
    1, 2, 4, ... up to MAX_BACKOFF; back to 1 with the first good round."""
    return float(min(2 ** max(0, failed_rounds), MAX_BACKOFF))


def page_mean(targets: Sequence[Target], default: float) -> float:
    """The mean gap between page rounds: the default, or the shortest target interval."""
    return min([default, *(t.interval_seconds or default for t in targets)])


def needs_history(targets: Sequence[Target], default: float) -> list[str]:
    """The names whose last measurement ``due`` needs: those slower than the rounds."""
    mean = page_mean(targets, default)
    return [t.name for t in targets if (t.interval_seconds or default) > mean]


def due(
    targets: Sequence[Target],
    last_measured: Mapping[str, str],
    now: datetime,
    default: float,
) -> list[Target]:
    """The targets a page round measures now. A target at the round's own pace (no interval of
    its own, or one no longer than the round's mean gap) is measured every round; a slower one
    when its interval, less half a round gap, has passed since it was last measured, so that on
    average it is measured once per interval."""
    mean = page_mean(targets, default)
    out = []
    for t in targets:
        interval = t.interval_seconds or default
        last = last_measured.get(t.name)
        if interval <= mean or last is None:
            out.append(t)
            continue
        if (now - from_stored(last)).total_seconds() >= interval - mean / 2:
            out.append(t)
    return out


def nothing_to_test(t: Target, last: ThroughputAttempt | None, *, helper: bool) -> bool:
    """True if ``t``'s last attempt found nothing it could test and nothing since would let it:
    no address; or no object (or none for the control) with no object pinned and no helper,
    whose SNI A/B needs none. Its test is expected to move no more than discovery's checks."""
    if last is None or last.skipped not in NOTHING_TO_TEST:
        return False
    return last.skipped == "no_address" or not (helper or t.throughput_url)


@dataclass(frozen=True, slots=True)
class Rotation:
    """The targets a throughput round tests, in order, and the bytes their tests may take."""

    targets: list[Target]
    bytes: float


def throughput_rotation(
    targets: Sequence[Target],
    attempts: Mapping[str, ThroughputAttempt],
    *,
    helper: bool,
    room: float | None,
    per: float,
    bare: float,
) -> Rotation:
    """The targets a throughput round tests within ``room`` bytes (None: no cap, all of them):
    in the rotation's order (:func:`~probe.round.throughput.rotation_key`: least recently
    attempted first; a skipped test is an attempt, so a target that cannot be tested goes to
    the back like a tested one), taken in that order while they fit. A target costs a slot,
    ``per`` (its page and a test's worst case), unless :func:`nothing_to_test` says its test
    moves nothing: then ``bare`` (its page and discovery's checks), so targets that cannot be
    tested never take the slots of those that can, and are looked at again once a rotation.
    None fits: the first alone, so that the budget's check names the cap."""
    key = rotation_key(attempts)
    ordered = sorted(targets, key=lambda t: key(t.name))

    def cost(t: Target) -> float:
        return bare if nothing_to_test(t, attempts.get(t.name), helper=helper) else per

    if room is None:
        return Rotation(ordered, sum(map(cost, ordered)))
    out: list[Target] = []
    left = room
    for t in ordered:
        if cost(t) > left:
            break
        out.append(t)
        left -= cost(t)
    if not out:
        out = ordered[:1]
    return Rotation(out, sum(map(cost, out)))


class RandomGapTrigger(BaseTrigger):  # type: ignore[misc]  # APScheduler 3.x has no types
    """Fires ``next_gap(mean(), rng)`` after it is asked (at a round's start, or when the
    daemon resumes the job at a round's end). ``mean`` is read each time, so a reload or a
    back-off changes the next gap without rebuilding the job."""

    __slots__ = ("mean", "rng")

    def __init__(self, mean: Callable[[], float], rng: random.Random) -> None:
        self.mean = mean
        self.rng = rng

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime:
        return now + timedelta(seconds=next_gap(self.mean(), self.rng))

    def __str__(self) -> str:
        return f"random gaps around {self.mean():g} s"
