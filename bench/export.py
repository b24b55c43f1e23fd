"""Benchmark ``probe export`` (CSV, Parquet, JSON Lines, OONI) beside ``sqlite3 -csv`` on the same
database.

    python bench/export.py [--rows 1000000] [--small 100000] [--dir /tmp/probe-bench] [--keep]
                           [--formats csv,parquet,jsonl,ooni]

Builds (once; kept in ``--dir`` and reused) a database of ``--rows`` realistic measurements: the
rows the store writes for the golden scenarios (``tests/golden/scenarios``), each copy with its
own time-ordered id, time (spread over 60 days), target, network and device, inserted in bulk.
Then, in the same run and on the same database, for the first ``--small`` rows (``--until``)
and for all of them: ``sqlite3 -csv`` (Debian's sqlite3 command-line shell, installed here when
missing; the same rows in the same order: ``SELECT * ... ORDER BY started_at, id``), ``probe
export --format`` in each of ``--formats``, each in a child process. Prints
seconds, MB written, the ratio to sqlite3's time (goal: at most 2) and each export's peak RSS
(goal: flat from the small run to the large one).
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from probe.store import Store  # noqa: E402
from probe.timeutil import iso  # noqa: E402
from tests.dbs import SCENARIOS, measurement  # noqa: E402

# Runs an export in this child and prints its own peak RSS (KiB) as the last stderr line.
CHILD = (
    "import resource, sys\n"
    "from probe.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "print('maxrss', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)
START = datetime(2026, 9, 1, tzinfo=UTC)
SPAN = timedelta(days=60)


def build(path: Path, rows: int) -> None:
    """``rows`` measurements built from the golden scenarios, bulk-inserted."""
    tmp = path.with_suffix(".building")
    tmp.unlink(missing_ok=True)
    store = Store.open(tmp)
    for i, name in enumerate(SCENARIOS):  # the real store path once: bodies, schema
        store.save(measurement(name, f"seed{i:02d}", started_at="2026-08-31T00:00:00.000Z"))
    templates = list(store.rows())
    cols = list(templates[0])
    store.db.execute("DELETE FROM measurements")
    store.close()
    con = sqlite3.connect(tmp)
    con.execute("PRAGMA synchronous = OFF")
    insert = f"INSERT INTO measurements ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
    step = SPAN / rows
    batch = []
    for n in range(rows):
        row = dict(templates[n % len(templates)])
        at = START + step * n
        row["started_at"] = iso(at)
        row["id"] = f"{at:%Y%m%dT%H%M%S}Z_{n:09d}"
        row["target"] = f"site-{n % 97:02d}"
        row["probe_asn"] = ("AS7552", "AS45899", "AS18403")[n % 3]
        row["probe_cc"] = "VN"
        row["device_id"] = f"dev-{n % 5}"
        row["round_id"] = f"round-{n // 100}"
        batch.append(tuple(row[c] for c in cols))
        if len(batch) == 20000:
            con.executemany(insert, batch)
            con.commit()
            batch.clear()
    con.executemany(insert, batch)
    con.commit()
    con.close()
    tmp.rename(path)


def sqlite3_cli() -> str:
    found = shutil.which("sqlite3")
    if found:
        return found
    subprocess.run(["apt-get", "install", "-y", "-qq", "sqlite3"], check=True)
    return shutil.which("sqlite3") or "sqlite3"


def run_sqlite3(db: Path, out: Path, until: str | None) -> float:
    where = f"WHERE started_at < '{until}' " if until else ""
    sql = f"SELECT * FROM measurements {where}ORDER BY started_at, id"
    t0 = time.perf_counter()
    with out.open("wb") as fh:
        subprocess.run([sqlite3_cli(), "-csv", "-header", str(db), sql], stdout=fh, check=True)
    return time.perf_counter() - t0


def run_probe(db: Path, fmt: str, out: Path, until: str | None) -> tuple[float, int]:
    args = ["export", "--db", str(db), "--format", fmt, "-o", str(out)]
    if until:
        args += ["--until", until]
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-c", CHILD, *args], capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"probe export failed: {r.stderr}")
    rss = int(r.stderr.strip().splitlines()[-1].split()[1])
    return elapsed, rss


def size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--small", type=int, default=100_000)
    ap.add_argument("--dir", default="/tmp/probe-bench")
    ap.add_argument("--keep", action="store_true", help="keep the exported files")
    ap.add_argument("--formats", default="csv,parquet,jsonl,ooni", help="comma-separated")
    args = ap.parse_args()
    work = Path(args.dir)
    work.mkdir(parents=True, exist_ok=True)
    db = work / f"measurements-{args.rows}.db"
    if not db.exists():
        t0 = time.perf_counter()
        build(db, args.rows)
        print(f"built {db} ({args.rows} rows, {size(db) / 1e6:.0f} MB) in "
              f"{time.perf_counter() - t0:.0f} s")  # fmt: skip
    small_until = iso(START + SPAN / args.rows * args.small)
    print(f"{'rows':>9} {'tool':<22} {'seconds':>8} {'MB out':>8} {'x sqlite3':>9} {'peak RSS':>9}")
    for rows, until in ((args.small, small_until), (args.rows, None)):
        ref_out = work / "sqlite3.csv"
        ref = run_sqlite3(db, ref_out, until)
        print(f"{rows:>9} {'sqlite3 -csv':<22} {ref:>8.1f} {size(ref_out) / 1e6:>8.0f} {1:>9.2f}")
        ref_out.unlink()
        for fmt in args.formats.split(","):
            out = work / ("dataset" if fmt == "parquet" else f"probe.{fmt}")
            secs, rss = run_probe(db, fmt, out, until)
            print(
                f"{rows:>9} {'probe export ' + fmt:<22} {secs:>8.1f} {size(out) / 1e6:>8.0f} "
                f"{secs / ref:>9.2f} {rss / 1024:>7.0f} MB"
            )
            if not args.keep:
                shutil.rmtree(out) if out.is_dir() else out.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
