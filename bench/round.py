"""Benchmark one round over loopback-hosted targets: throughput, CPU per measurement, peak RSS.

    python bench/round.py [--targets 400] [--concurrency 32]

A child process hosts everything the probe talks to (``bench/world.py``); this process runs
``run_round`` exactly as ``probe run`` does, storing every measurement in a temporary SQLite
database. Mix: 60% HTTP pages, 25% HTTPS pages, 10% DNS-blocked (NXDOMAIN at the resolver under
test), 5% reset. The goal from the issue: 400 targets in under 60 s at concurrency 32 on
2 cores, under 60 MB RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.world import bench_world


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--targets", type=int, default=400)
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args()

    from probe.classify.fingerprints import builtin
    from probe.measure.dns import parse_resolver
    from probe.measure.net import MeasureConfig
    from probe.round import run_round
    from probe.store import Store
    from probe.targets import Target

    with tempfile.TemporaryDirectory() as tmp, bench_world(args.targets, tmp) as w:
        targets = [Target(name=f"t{i}", url=u) for i, u in enumerate(w.urls)]
        cfg = MeasureConfig(
            resolver=parse_resolver(w.system_dns),
            control_resolver=parse_resolver("udp://" + w.honest_dns),
            ca_bundle=w.ca_pem,
            timeout=5,
            allow_loopback=True,
        )
        store = Store.open(Path(tmp) / "bench.db")
        cpu0, t0 = time.process_time(), time.perf_counter()
        result = asyncio.run(
            run_round(
                targets,
                [],
                cfg,
                fingerprints=builtin(),
                concurrency=args.concurrency,
                on_measurement=store.save,
            )
        )
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        stored = store.db.table("measurements").count
    n = result.count
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    verdicts: dict[str, int] = {}
    for (blocking, _), k in result.verdicts.items():
        verdicts[str(blocking)] = verdicts.get(str(blocking), 0) + k
    print(f"targets           {n} (stored {stored}), concurrency {args.concurrency}")
    print(f"wall time         {wall:.2f} s")
    print(f"measurements/s    {n / wall:.1f}")
    print(f"CPU s/measurement {cpu / n * 1000:.2f} ms")
    print(f"peak RSS          {rss_mb:.1f} MB")
    print(f"bytes used        {result.bytes_used} ({result.bytes_used / n:.0f} per measurement)")
    print(f"verdicts          {verdicts}")
    print(f"goal (<60 s, <60 MB): {'met' if wall < 60 and rss_mb < 60 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
