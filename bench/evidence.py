"""Benchmark the evidence chain (issue 22): what hashing, linking and signing add to each saved
measurement, and ``probe verify``'s time and memory over many measurements.

    python bench/evidence.py [--saves 2000] [--round-size 400] [--round-cpu-ms 4.0]
                             [--verify 1000000] [--small 100000] [--dir /tmp/probe-bench-evidence]

Part 1, the save path: ``--saves`` measurements built from the golden scenarios
(``tests/golden/scenarios``, their bodies included) saved one by one through ``Store.save``
into a fresh database, as a round saves them, and a round's end (``save_round``: two heads
signed) every ``--round-size``. This process's CPU time (user + system) is counted inside
``probe.store.chain``'s functions: ``link`` (the row read back, its record hashed with RFC 8785,
the tip read, the chain columns written), ``store_bodies`` (the bodies' rows, stored as before,
and their content hashes: an upper bound of what the chain adds there) and ``sign_heads``
(amortised over a round's measurements), beside the whole ``save``. With ``--round-cpu-ms``
(``bench/round.py``'s "CPU s/measurement" on this machine, in ms) it prints the chain's share
of a round's CPU (goal: under 5%).

Part 2, verification: databases of ``--small`` and ``--verify`` chained measurements (the
golden rows, each copy with its own id and time, hashed and linked as the store does, one
device, a signed round head every 100 and a day head each day; built once in ``--dir`` and
reused), then ``probe verify`` on each in a child process: wall time, CPU time and peak RSS
(goal: flat from the small to the large one).

On a shared machine wall times move with the load; CPU times much less.
"""

from __future__ import annotations

import argparse
import functools
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from probe.evidence import canonical, heads, keys  # noqa: E402
from probe.store import RoundRecord, Store, chain  # noqa: E402
from probe.timeutil import iso  # noqa: E402
from tests.dbs import SCENARIOS, measurement  # noqa: E402

START = datetime(2026, 9, 1, tzinfo=UTC)
ROUND = 100  # measurements between two round heads in the built databases


def cpu() -> float:
    return time.process_time()


class Meter:
    """CPU seconds spent inside wrapped functions."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = cpu()
            try:
                return fn(*args, **kwargs)
            finally:
                self.spent[name] = self.spent.get(name, 0.0) + cpu() - t0

        return timed


def save_path(saves: int, round_size: int, round_cpu_ms: float | None) -> None:
    meter = Meter()
    for name in ("link", "store_bodies", "sign_heads"):
        setattr(chain, name, meter.wrap(name, getattr(chain, name)))
    with tempfile.TemporaryDirectory(prefix="probe-bench-evidence-") as tmp:
        store = Store.open(Path(tmp) / "p.db")
        store.device_key()  # made once, as at probe init: not a per-measurement cost
        ms = [measurement(name, "x") for name in SCENARIOS]
        t0, rounds = cpu(), 0
        r = RoundRecord(id="r0", device_id=store.device_id, started_at=iso(START), kind="run")
        for i in range(saves):
            m = ms[i % len(ms)]
            store.save(replace(m, id=f"m{i:08d}", round_id=r.id))
            if (i + 1) % round_size == 0 or i + 1 == saves:
                store.save_round(replace(r, finished_at=iso(START), status="ok"))
                rounds += 1
                r = replace(r, id=f"r{rounds}")
        total = cpu() - t0
        store.close()
    per = {k: v / saves * 1e3 for k, v in meter.spent.items()}
    chain_ms = per["link"] + per["store_bodies"] + per["sign_heads"]
    print(f"save path: {saves} measurements, {rounds} rounds of up to {round_size}")
    print(f"  whole save (incl. round rows)   {total / saves * 1e3:8.3f} ms CPU/measurement")
    print(f"  link: read back, hash, link     {per['link']:8.3f} ms")
    print(f"  bodies: stored + content hashes {per['store_bodies']:8.3f} ms (upper bound)")
    sign = meter.spent["sign_heads"] / rounds * 1e3
    print(f"  heads: 2 signed per round       {sign:8.3f} ms/round = {per['sign_heads']:.4f} ms")
    print(f"  chain, at most                  {chain_ms:8.3f} ms CPU/measurement")
    rows = _template_rows()
    t0, n = cpu(), 0
    while cpu() - t0 < 1.0:
        for row in rows:
            canonical.record_hash(row)
        n += len(rows)
    print(f"  record hash alone (RFC 8785 + SHA-256) {(cpu() - t0) / n * 1e6:.1f} us")
    key = keys.DeviceKey.generate()
    t0 = cpu()
    for i in range(2000):
        heads.sign(key, i, "00" * 32, iso(START), heads.ROUND)
    print(f"  one head signed (Ed25519)       {(cpu() - t0) / 2000 * 1e6:8.1f} us")
    if round_cpu_ms:
        share = chain_ms / round_cpu_ms * 100
        print(f"  share of a round's CPU ({round_cpu_ms} ms/measurement): {share:.2f}% (goal < 5%)")


@functools.cache
def _template_rows() -> list[dict[str, Any]]:
    """The golden scenarios' rows as the store writes them, with their bodies' rows."""
    with tempfile.TemporaryDirectory(prefix="probe-bench-evidence-") as tmp:
        store = Store.open(Path(tmp) / "seed.db")
        for i, name in enumerate(SCENARIOS):
            store.save(measurement(name, f"seed{i:02d}", started_at=iso(START)))
        rows = [dict(r) for r in store.db.query("SELECT * FROM measurements ORDER BY seq")]
        store.close()
    return rows


def build(path: Path, n: int) -> None:
    """``n`` chained measurements of one device (see the module's contract)."""
    if path.exists():
        return
    tmp = path.with_suffix(".building")
    for p in (tmp, keys.key_path(tmp)):
        p.unlink(missing_ok=True)
    store = Store.open(tmp)
    for i, name in enumerate(SCENARIOS):  # the real save path once: bodies, schema, key
        store.save(measurement(name, f"seed{i:02d}", started_at=iso(START)))
    key = store.device_key()
    templates = [dict(r) for r in store.db.query("SELECT * FROM measurements ORDER BY seq")]
    cols = list(templates[0])
    store.db.execute("DELETE FROM measurements")
    store.close()
    con = sqlite3.connect(tmp)
    con.execute("PRAGMA synchronous = OFF")
    insert = f"INSERT INTO measurements ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
    sign = (
        "INSERT OR REPLACE INTO chain_heads (device_key, kind, label, seq, chain_hash, at, "
        "statement, signature) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    )
    step = timedelta(days=60) / n
    batch: list[tuple[Any, ...]] = []
    prev, prev_id = canonical.GENESIS, None
    t0 = time.perf_counter()
    for i in range(n):
        row = dict(templates[i % len(templates)])
        at = START + step * i
        row["started_at"] = iso(at)
        row["id"] = f"{at:%Y%m%dT%H%M%S}Z_{i:09d}"
        row["target"] = f"site-{i % 97:02d}"
        row["round_id"] = f"round-{i // ROUND}"
        row["seq"], row["chain_prev"] = i + 1, prev_id
        row["record_hash"] = canonical.record_hash(row)
        row["chain_hash"] = prev = canonical.link(prev, row["record_hash"])
        prev_id = row["id"]
        batch.append(tuple(row[c] for c in cols))
        last_of_day = i + 1 == n or (START + step * (i + 1)).date() != at.date()
        if (i + 1) % ROUND == 0 or last_of_day:
            kinds = [(heads.ROUND, row["round_id"])]
            if last_of_day:
                kinds.append((heads.DAY, row["started_at"][:10]))
            for kind, label in kinds:
                statement, sig = heads.sign(key, i + 1, prev, row["started_at"], kind)
                con.execute(
                    sign,
                    [
                        key.public,
                        kind,
                        label,
                        i + 1,
                        prev,
                        row["started_at"],
                        statement.decode(),
                        sig,
                    ],
                )
        if len(batch) == 20000:
            con.executemany(insert, batch)
            con.commit()
            batch.clear()
    con.executemany(insert, batch)
    con.commit()
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    print(f"  built {path.name}: {n} measurements in {time.perf_counter() - t0:.0f} s")
    keys.key_path(tmp).rename(keys.key_path(path))
    tmp.rename(path)


CHILD = (
    "import resource, sys, time\n"
    "from probe.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "u = resource.getrusage(resource.RUSAGE_SELF)\n"
    "print('usage', u.ru_maxrss, u.ru_utime + u.ru_stime, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def run_verify(db: Path) -> tuple[float, float, int, str]:
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-c", CHILD, "verify", str(db)],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"probe verify said {r.returncode}: {r.stdout[-2000:]} {r.stderr[-2000:]}")
    _, rss, cpu_s = r.stderr.strip().splitlines()[-1].split()
    return wall, float(cpu_s), int(rss), r.stdout.splitlines()[0]


def verification(folder: Path, sizes: list[int]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    print("verification (probe verify, a child process):")
    for n in sizes:
        db = folder / f"chain-{n}.db"
        build(db, n)
        wall, cpu_s, rss, said = run_verify(db)
        print(
            f"  {n:>9} measurements: {wall:7.1f} s wall, {cpu_s:7.1f} s CPU "
            f"({cpu_s / n * 1e6:.0f} us each), peak RSS {rss / 1024:.0f} MB, "
            f"{db.stat().st_size / 2**30:.2f} GiB"
        )
        print(f"    {said.split(': ', 1)[1]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--saves", type=int, default=2000)
    ap.add_argument("--round-size", type=int, default=400)
    ap.add_argument("--round-cpu-ms", type=float, help="bench/round.py's CPU per measurement")
    ap.add_argument("--verify", type=int, default=1_000_000, help="0: skip verification")
    ap.add_argument("--small", type=int, default=100_000)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/probe-bench-evidence"))
    a = ap.parse_args()
    save_path(a.saves, a.round_size, a.round_cpu_ms)
    if a.verify:
        verification(a.dir, sorted({a.small, a.verify}))
    print(
        f"this process's peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
