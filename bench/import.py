"""Benchmark ``probe import --format ooni`` on a large JSON Lines file: rows/s and peak RSS.

    python bench/import.py [--megabytes 100] [--gzip]

Builds a file of OONI Web Connectivity measurements (OONI's QA measurements from
``tests/fixtures/ooni-qa``, each copy given its own measurement_uid and input, so none is a
duplicate), then imports it in a child process exactly as the CLI does, and prints the child's
rows per second and peak RSS. Goal from the issue: a 100 MB file under 150 MB of RSS.
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QA = ROOT / "tests" / "fixtures" / "ooni-qa"


def build(path: Path, megabytes: float, gz: bool) -> int:
    bases = [json.loads(p.read_text()) for p in sorted(QA.glob("*/measurement.json"))]
    target = int(megabytes * 1024 * 1024)
    written = n = 0
    opener = gzip.open if gz else open
    with opener(path, "wt", encoding="utf-8") as fh:  # type: ignore[operator]
        while written < target:
            m = bases[n % len(bases)]
            m["measurement_uid"] = f"bench{n:08d}"
            line = json.dumps(m) + "\n"
            fh.write(line)
            written += len(line)
            n += 1
    return n


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--megabytes", type=float, default=100)
    ap.add_argument("--gzip", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / ("ooni.jsonl.gz" if args.gzip else "ooni.jsonl")
        n = build(src, args.megabytes, args.gzip)
        size = src.stat().st_size
        t0 = time.perf_counter()
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "probe",
                "import",
                "--format",
                "ooni",
                str(src),
                "--db",
                str(Path(tmp) / "o.db"),
            ],
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
        )
        wall = time.perf_counter() - t0
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        f"file              {size / 1e6:.1f} MB ({'gzip' if args.gzip else 'plain'}), "
        f"{n} measurements"
    )
    print(f"result            {r.stdout.strip() or r.stderr.strip()}")
    print(f"wall time         {wall:.1f} s")
    print(f"rows/s            {n / wall:.0f}")
    print(f"peak RSS (child)  {rss:.1f} MB")
    print(f"goal (<150 MB):   {'met' if rss < 150 else 'NOT met'}")
    return 0 if r.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
