"""Synthetic download flows from a rate profile plus seeded noise (randomness is a parameter), so
each throughput case is exact and repeatable."""

from __future__ import annotations

import random
from collections.abc import Callable

from probe.model import Flow, Sample

Profile = Callable[[float], float]  # time -> bit/s


def flow(
    role: str,
    profile: Profile,
    *,
    seconds: float = 6.0,
    trial: int = 0,
    rng: random.Random | None = None,
    ttfb: float = 0.05,
    rtt: int = 20_000,
    min_rtt: int = 20_000,
    ooo: int = 0,
    stall: tuple[float, float] | None = None,
) -> Flow:
    rng = rng or random.Random(7)
    samples, got, t = [], 0.0, ttfb
    while t < seconds:
        t_next = round(t + 0.25, 4)
        if not (stall and stall[0] <= t < stall[1]):
            got += profile(t) * (t_next - t) / 8 * rng.uniform(0.9, 1.1)
        samples.append(Sample(t_next, int(got), rtt, rtt, min_rtt, ooo, 0))
        t = t_next
    return Flow(
        role,
        f"https://{role}.test/tp",
        "192.0.2.1",
        trial,
        0.0,
        ttfb,
        seconds,
        int(got),
        int(got),
        tuple(samples),
    )


def trials(target: Profile, control: Profile, n: int = 3, **kw: object) -> list[Flow]:
    rng = random.Random(42)
    out = []
    for i in range(n):
        out.append(flow("target", target, trial=i, rng=rng, **kw))  # type: ignore[arg-type]
        out.append(flow("control", control, trial=i, rng=rng))
    return out


def const(bps: float) -> Profile:
    return lambda t: bps
