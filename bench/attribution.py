"""Benchmark the attribution of slowdowns (probe.classify.attribution) over a long history.

    .venv/bin/python bench/attribution.py [--targets 50] [--rounds 2000]

A network of ``--targets`` sites (a tenth domestic, a tenth served from an on-net cache, the
rest foreign origins), each tested once a round for ``--rounds`` rounds with ordinary variation,
and every 200 rounds a slowdown (the cache removed, the international link degraded, or the
access link congested, in turn). Prints the tests, the slowdowns found, their causes, the time
:func:`attribute` took and the peak memory it allocated (tracemalloc).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import tracemalloc
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from probe.classify.attribution import EdgeTest, attribute

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def history(targets: int, rounds: int, seed: int = 0) -> list[EdgeTest]:
    rng = random.Random(seed)
    kinds = [
        "domestic" if i % 10 == 0 else "foreign_on_net" if i % 10 == 1 else "foreign_origin"
        for i in range(targets)
    ]
    out = []
    for r in range(rounds):
        at = (T0 + timedelta(hours=r)).isoformat().replace("+00:00", "Z")
        phase = r % 200
        change = (
            ("cache", "international", "congestion")[(r // 200) % 3] if 100 <= phase < 104 else None
        )
        for i, kind in enumerate(kinds):
            bps, rtt, asn, on_net, cls = 20e6, 10.0, "AS7552", kind == "foreign_on_net", kind
            if kind == "foreign_origin":
                bps, rtt, asn = 6e6, 180.0, "AS15169"
            if change == "cache" and i == 1:
                bps, rtt, asn, on_net, cls = 2e6, 45.0, "AS32934", False, "foreign_origin"
            elif (change == "international" and kind == "foreign_origin") or change == "congestion":
                bps /= 5
            out.append(
                EdgeTest(
                    f"t{i:03d}",
                    "AS7552",
                    at,
                    bps * rng.uniform(0.75, 1.25),
                    cls,
                    asn,
                    on_net,
                    rtt * rng.uniform(0.9, 1.3),
                )
            )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--targets", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=2000)
    args = ap.parse_args()
    tests = history(args.targets, args.rounds)
    t0 = time.perf_counter()
    found = attribute(tests)
    seconds = time.perf_counter() - t0
    tracemalloc.start()  # a second run: tracemalloc slows what it watches
    attribute(tests)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"tests:      {len(tests)} ({args.targets} targets x {args.rounds} rounds)")
    print(f"slowdowns:  {len(found)}")
    for cause, n in sorted(Counter(e.cause for e in found).items()):
        print(f"  {cause}: {n}")
    print(f"time:       {seconds:.2f} s ({1e6 * seconds / len(tests):.1f} us per test)")
    print(f"peak alloc: {peak / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
