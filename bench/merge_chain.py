"""Benchmark what checking a source's chain adds to ``probe merge`` (issue 22).

    python bench/merge_chain.py [--n 5000] [--dir /tmp/probe-bench-merge]

A source of ``--n`` chained measurements of one device (bench/evidence.py's ``build``: the
golden rows, each copy with its own id and time, hashed, linked and signed as the store does)
is merged into a fresh fleet database twice, in this process: once as ``probe merge`` does it
(the source's chains checked by ``probe.analyst.verify.check`` first, the chain columns, heads
and prune records carried), once with the check left out (``verify_chain`` returning None, as
for a source made before the chain). Prints the CPU time of each per measurement and the
check's share of the merge. On a shared machine CPU times move less than wall times.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.evidence import build  # noqa: E402
from probe.analyst import merge as merge_mod  # noqa: E402


def timed_merge(source: Path, fleet: Path, check: bool) -> float:
    for p in (fleet, fleet.with_name(fleet.name + "-wal"), fleet.with_name(fleet.name + "-shm")):
        p.unlink(missing_ok=True)
    original = merge_mod.verify_chain
    if not check:
        merge_mod.verify_chain = lambda source, caps=None: None  # type: ignore[assignment]
    try:
        t0 = time.process_time()
        lines = merge_mod.merge([str(source)], str(fleet))
        spent = time.process_time() - t0
    finally:
        merge_mod.verify_chain = original
    print(f"    {lines[0].split(': ', 1)[1][:110]}")
    return spent


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/probe-bench-merge"))
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    source = args.dir / f"source-{args.n}.db"
    build(source, args.n)
    fleet = args.dir / "fleet.db"
    print(f"merge of {args.n} chained measurements into a fresh fleet database:")
    with_check = timed_merge(source, fleet, check=True)
    without = timed_merge(source, fleet, check=False)
    n = args.n
    print(f"  with the chain checked   {with_check / n * 1e3:7.3f} ms CPU/measurement")
    print(f"  without (no check)       {without / n * 1e3:7.3f} ms CPU/measurement")
    print(f"  the check's share        {(with_check - without) / with_check:7.1%} of the merge")
    return 0


if __name__ == "__main__":
    sys.exit(main())
