"""Benchmark one round over loopback-hosted targets: throughput, CPU per measurement, peak RSS.

    python bench/round.py [--targets 400] [--concurrency 32]
    python bench/round.py --targets 100000          # memory: flat in the number of targets

A child process hosts everything the probe talks to (``bench/world.py``); this process writes
the targets to a YAML file and runs the round exactly as ``probe run`` does (settings ->
``prepare`` -> ``run_once``), storing every measurement in a temporary SQLite database. Mix:
60% HTTP pages, 25% HTTPS pages, 10% DNS-blocked (NXDOMAIN at the resolver under test), 5%
reset. Goals from the issues: 400 targets in under 60 s at concurrency 32 on 2 cores, under
60 MB RSS; 100,000 targets under 100 MB RSS (issue 10: 408 MB before).
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


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--targets", type=int, default=400)
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args()

    from probe.config import settings as settings_mod
    from probe.round import prepare, run_once
    from probe.store import Store

    with tempfile.TemporaryDirectory() as tmp, bench_world(args.targets, tmp) as w:
        tfile = Path(tmp) / "targets.yaml"
        with tfile.open("w", encoding="utf-8") as fh:
            fh.write("targets:\n")
            for i, u in enumerate(w.urls):
                fh.write(f"  - {{name: t{i}, url: '{u}', category: NEWS}}\n")
        list_mb = tfile.stat().st_size / 1e6
        rss_imports = rss_mb()
        settings = settings_mod.resolve(
            {
                "targets": str(tfile),
                "db": str(Path(tmp) / "bench.db"),
                "resolver": w.system_dns,
                "control_resolver": "udp://" + w.honest_dns,
                "ca_bundle": w.ca_pem,
                "timeout": "5",
                "concurrency": str(args.concurrency),
                "throughput": False,
                "allow_loopback": True,
            },
            env={},
        )
        t_load = time.perf_counter()
        setup = prepare(settings)
        load_s, rss_loaded = time.perf_counter() - t_load, rss_mb()
        store = Store.open(settings.db)
        cpu0, t0 = time.process_time(), time.perf_counter()
        result = asyncio.run(run_once(setup, store))
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        stored = store.db.table("measurements").count
    n = result.count
    rss = rss_mb()
    verdicts: dict[str, int] = {}
    for (blocking, _), k in result.verdicts.items():
        verdicts[str(blocking)] = verdicts.get(str(blocking), 0) + k
    print(f"targets           {n} (stored {stored}), concurrency {args.concurrency}")
    print(f"target list       {list_mb:.1f} MB read in {load_s:.1f} s")
    print(f"wall time         {wall:.2f} s")
    print(f"measurements/s    {n / wall:.1f}")
    print(f"CPU s/measurement {cpu / n * 1000:.2f} ms")
    print(
        f"RSS               {rss_imports:.1f} MB after imports, {rss_loaded:.1f} MB with the list"
    )
    print(f"peak RSS          {rss:.1f} MB")
    print(f"bytes used        {result.bytes_used} ({result.bytes_used / n:.0f} per measurement)")
    print(f"verdicts          {verdicts}")
    if args.targets >= 10_000:
        print(f"goal (<100 MB at {args.targets}): {'met' if rss < 100 else 'NOT met'}")
    else:
        print(f"goal (<60 s, <60 MB): {'met' if wall < 60 and rss < 60 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
