"""Benchmark the fleet road's analyst side: ``probe fleet ingest`` and the dataset's queries.

    python bench/fleet.py [--probes 20] [--days 3] [--per-day 800] [--batch 400]
                          [--dir /tmp/probe-fleet-bench] [--keep]
    python bench/fleet.py --probes 1000 --days 30 --no-sqlite  # the issue's 24M measurements
    python bench/fleet.py --reuse --dir DIR     # ingest a --keep run's batches again

Simulates ``--probes`` probes measuring ``--per-day`` times a day (25 sites, 32 rounds) for
``--days`` days: each probe its own Ed25519 key and hash chain, its rows made from a real
probe database (the golden scenarios and throughput tests of ``tests/dbs.report_fleet``, as
the store writes them), each copy with its own id, time, site, network, step timings and place
in the chain;
sealed into batches of ``--batch`` records (``probe.fleet.batch``) in a folder, and the same
rows in one merged SQLite file (the store's schema and views). Then prints:

- ingest: ``probe fleet ingest`` in a child process: wall and CPU seconds, measurements per
  CPU second (per core: it runs on one), peak RSS (goal: flat, under 500 MB, whatever the size);
- the dataset's size, and its size per million measurements;
- "blocking per network per day" (the ``daily_blocking`` view) and "throttling events per
  target" (the ``throughput_tests`` view, then ``find_events``) in SQLite over the merged file,
  DuckDB and chdb over the dataset; each engine's row count, which must agree.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import resource
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from probe.evidence import canonical  # noqa: E402
from probe.evidence.keys import DeviceKey  # noqa: E402
from probe.fleet import batch  # noqa: E402
from probe.timeutil import iso  # noqa: E402
from tests.dbs import report_fleet  # noqa: E402

CHILD = (
    "import resource, sys\n"
    "from probe.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "r = resource.getrusage(resource.RUSAGE_SELF)\n"
    "print('rusage', r.ru_utime + r.ru_stime, r.ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)
START = datetime(2026, 9, 1, tzinfo=UTC)
ASNS = [f"AS{7552 + 1000 * i}" for i in range(20)]
_TIMES = re.compile(r'("t0?": )[0-9.e-]+')  # split: the text between, and each timing's key


def build(
    folder: Path, probes: int, days: int, per_day: int, per_batch: int, with_sqlite: bool = True
) -> int:
    """The bucket folder of sealed batches and (``with_sqlite``) the merged SQLite file;
    returns how many measurements."""
    tmpl_db = report_fleet(folder / "templates.db")
    con = sqlite3.connect(tmpl_db)
    con.row_factory = sqlite3.Row
    templates = [dict(r) for r in con.execute("SELECT * FROM measurements ORDER BY seq")]
    con.close()
    # Each template's observations cut at its step timings once: a copy's own timings are
    # put in by a join, not a regular expression over the text each time.
    pieces = [_TIMES.split(str(t["observations"])) for t in templates]
    cols = list(templates[0])
    merged: sqlite3.Connection | None = None
    if with_sqlite:
        shutil.copy(tmpl_db, folder / "merged.db")
        merged = sqlite3.connect(folder / "merged.db")
        merged.execute("PRAGMA synchronous = OFF")
        merged.execute("DELETE FROM measurements")
    insert = f"INSERT INTO measurements ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
    private, public = batch.collective_keypair()
    (folder / "collective.key").write_text(private)
    bucket = folder / "bucket"
    step = timedelta(days=1) / per_day
    rng = random.Random(23)
    n = 0
    for p in range(probes):
        key = DeviceKey.generate()
        prev_hash, prev_id, prev_batch, seq = canonical.GENESIS, None, None, 0
        rows: list[dict[str, object]] = []
        for d in range(days):
            for i in range(per_day):
                t = (i + p) % len(templates)
                row = dict(templates[t])
                # Each measurement's own step timings, as a real one has (else zstd would
                # find one record repeated and the sizes would flatter the format).
                cut = pieces[t][:]
                for j in range(1, len(cut), 2):
                    cut[j] = f"{cut[j]}{rng.random() * 0.5!r}"
                row["observations"] = "".join(cut)
                at = START + timedelta(days=d) + step * i
                seq += 1
                row.update(
                    id=f"{at:%Y%m%dT%H%M%S}Z_p{p:04d}_{seq:07d}",
                    started_at=iso(at),
                    target=f"site-{i % 25:02d}",
                    probe_asn=ASNS[p % len(ASNS)],
                    probe_cc="VN",
                    device_id=f"dev-{p}",
                    round_id=f"round-{p}-{d}-{i // 25}",
                    device_key=key.public,
                    seq=seq,
                    chain_prev=prev_id,
                )
                row["record_hash"] = canonical.record_hash(row)
                row["chain_hash"] = prev_hash = canonical.link(prev_hash, str(row["record_hash"]))
                prev_id = row["id"]
                rows.append(row)
                if len(rows) == per_batch:
                    prev_batch = _flush(bucket, rows, key, public, prev_batch, merged, insert, cols)
                    n += len(rows)
                    rows = []
        if rows:
            _flush(bucket, rows, key, public, prev_batch, merged, insert, cols)
            n += len(rows)
        if merged is not None:
            merged.commit()
    if merged is not None:
        merged.close()
    return n


def _flush(
    bucket: Path,
    rows: list[dict[str, object]],
    key: DeviceKey,
    public: str,
    prev: str | None,
    merged: sqlite3.Connection | None,
    insert: str,
    cols: list[str],
) -> str:
    sealed = batch.seal(rows, signing_key=key, collective_public_key=public, prev=prev)
    path = bucket / sealed.key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(sealed.data)
    if merged is not None:
        merged.executemany(insert, [tuple(r[c] for c in cols) for r in rows])
    return sealed.digest


def ingest(folder: Path, bucket: str = "bucket", ds: str = "ds") -> tuple[float, float, int, str]:
    args = ["fleet", "ingest", str(folder / bucket), str(folder / ds),
            "--key", str(folder / "collective.key")]  # fmt: skip
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True,
                       check=False, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"ingest failed: {r.stderr[-2000:]}")
    _, cpu, rss = r.stderr.strip().splitlines()[-1].split()
    return wall, float(cpu), int(rss), r.stdout


def timed(fn):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def queries(folder: Path, with_sqlite: bool = True) -> None:
    import chdb

    from probe.analyst.fleet import query
    from probe.classify.events import ThroughputTest, find_events

    ds = folder / "ds"
    table = f"file('{ds}/measurements/**/*.parquet', Parquet)"
    chdb_daily = query.DAILY_BLOCKING.format(table=table) + " SETTINGS use_hive_partitioning = 1"
    chdb_tp = (
        "SELECT target, network, started_at, throttled, ratio, label FROM ("
        + query.THROUGHPUT_TESTS.format(table=table)
        + ") SETTINGS use_hive_partitioning = 1"
    )

    def sqlite_daily() -> int:
        con = sqlite3.connect(folder / "merged.db")
        return len(con.execute("SELECT * FROM daily_blocking").fetchall())

    def duck_daily() -> int:
        return len(query.connect(ds).execute("SELECT * FROM daily_blocking").fetchall())

    def chdb_daily_rows() -> int:
        return len(str(chdb.query(chdb_daily, "CSV")).strip().splitlines())

    def events(rows: list[tuple[object, ...]]) -> int:
        tests = [
            ThroughputTest(
                str(r[0]), str(r[1]), str(r[2]), float(r[4]),  # type: ignore[arg-type]
                None if r[3] is None else bool(r[3]), None if r[5] is None else str(r[5]),
            )
            for r in rows
        ]  # fmt: skip
        return len(find_events(tests))

    def sqlite_events() -> int:
        con = sqlite3.connect(folder / "merged.db")
        rows = con.execute(
            "SELECT target, network, started_at, throttled, ratio, label FROM throughput_tests"
        ).fetchall()
        return events(rows)

    def duck_events() -> int:
        return events(
            query.connect(ds)
            .execute(
                "SELECT target, network, started_at, throttled, ratio, label "
                "FROM throughput_tests ORDER BY started_at"
            )
            .fetchall()
        )

    def chdb_events() -> int:
        import csv
        import io

        text = str(chdb.query(chdb_tp + "", "CSV"))
        rows = [
            (r[0], r[1], r[2], None if r[3] == "\\N" else int(r[3]), float(r[4]),
             None if r[5] == "\\N" else r[5])
            for r in csv.reader(io.StringIO(text))
        ]  # fmt: skip
        rows.sort(key=lambda r: str(r[2]))
        return events(rows)

    print(f"{'query':<34} {'engine':<8} {'seconds':>8} {'rows':>8}")
    for what, runs in (
        ("blocking per network per day", (("sqlite", sqlite_daily), ("duckdb", duck_daily),
                                          ("chdb", chdb_daily_rows))),
        ("throttling events per target", (("sqlite", sqlite_events), ("duckdb", duck_events),
                                          ("chdb", chdb_events))),
    ):  # fmt: skip
        for engine, fn in runs:
            if engine == "sqlite" and not with_sqlite:
                continue
            fn()  # warm: the page cache and the engine's first-call costs
            seconds, rows = timed(fn)
            print(f"{what:<34} {engine:<8} {seconds:>8.3f} {rows:>8}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--probes", type=int, default=20)
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--per-day", type=int, default=800)
    ap.add_argument("--batch", type=int, default=400)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/probe-fleet-bench"))
    ap.add_argument("--keep", action="store_true", help="Keep the folder (else removed).")
    ap.add_argument("--no-sqlite", action="store_true",
                    help="No merged SQLite file (4.4 kB a measurement) and no SQLite query: "
                         "for the largest runs.")  # fmt: skip
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="Ingest the batches a --keep run left in --dir again (no build).",
    )
    a = ap.parse_args()
    if a.reuse:
        n = int((a.dir / "measurements.count").read_text())
        for old in ("ds", "ds-empty", "empty"):
            shutil.rmtree(a.dir / old, ignore_errors=True)
    else:
        shutil.rmtree(a.dir, ignore_errors=True)
        a.dir.mkdir(parents=True)
    try:
        if not a.reuse:
            t0 = time.perf_counter()
            n = build(a.dir, a.probes, a.days, a.per_day, a.batch, not a.no_sqlite)
            (a.dir / "measurements.count").write_text(str(n))
            print(f"simulated {a.probes} probes x {a.days} days x {a.per_day}: {n} measurements "
                  f"in {time.perf_counter() - t0:.1f} s")  # fmt: skip
        (a.dir / "empty").mkdir()
        _, idle, idle_rss, _ = ingest(a.dir, "empty", "ds-empty")  # the process's own start
        wall, cpu, rss, out = ingest(a.dir)
        print(out.strip().splitlines()[0])
        rate = n / (cpu - idle)
        print(f"ingest: {wall:.1f} s wall, {cpu:.1f} s CPU ({idle:.1f} s of it starting: "
              f"imports), {rate:,.0f} measurements per CPU second past the start (one core), "
              f"peak RSS {rss / 1024:.0f} MB ({idle_rss / 1024:.0f} MB idle)")  # fmt: skip
        size = sum(p.stat().st_size for p in (a.dir / "ds").rglob("*.parquet"))
        files = len(list((a.dir / "ds").rglob("*.parquet")))
        bucket = sum(p.stat().st_size for p in (a.dir / "bucket").rglob("*.pbatch"))
        merged = a.dir / "merged.db"
        sqlite_size = f"{merged.stat().st_size / n:.0f}" if merged.is_file() else "(not made)"
        print(f"dataset: {size / 1e6:.1f} MB in {files} files, {size / n:.0f} bytes a measurement, "
              f"{size / n:.0f} MB per million; batches {bucket / n:.0f} B/measurement; "
              f"merged SQLite {sqlite_size} B/measurement")  # fmt: skip
        queries(a.dir, with_sqlite=merged.is_file())
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"bench peak RSS (this process, with the query engines) {rss / 1024:.0f} MB")
    finally:
        if not a.keep:
            shutil.rmtree(a.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
