"""Benchmark the daemon's upload cost (issue 23): bytes sent per measurement and CPU per batch.

    python bench/upload.py [--measurements 3000] [--sizes 100,500,1000] [--levels 3,10,19]
                           [--copies]

A database of ``--measurements`` measurements built from the golden scenarios
(``tests/golden/scenarios``, their bodies included; each copy with its own id and time, and
unless ``--copies`` its own step times, byte counts, runtime and body text, so no row repeats
another, as real ones do not (copies compress several times better); saved
through ``Store.save``, so hashed and linked as the store does, a round's heads signed every
100), then, for each batch size and zstd level, with and without bodies: the batches made as
``probe upload`` makes them (``probe.store.outbox.Outbox.make``: the rows read, sealed by
``probe.fleet.batch.seal``, recorded) on a fresh copy of that database. Printed: objects'
bytes per measurement, and with each PUT's overhead (``probe.fleet.s3.OVERHEAD``: request line,
SigV4 headers and the answer) amortised over the batch (goal: under 2 KB without bodies); CPU
ms per batch to make it (this process's user + system time) and to open it on the analyst's
side (``open_batch``: unseal, verify, inflate, decode).

The golden scenarios are small sites and a few blockpages: real pages' observations (more
redirects, more addresses) are larger, their bodies much larger. On a shared machine CPU times
move a little with the load; a Raspberry Pi 4 is about 3 to 5 times slower per core.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from probe.fleet import batch, s3  # noqa: E402
from probe.model import Measurement, observations_from_json  # noqa: E402
from probe.store import RoundRecord, Store  # noqa: E402
from probe.store.outbox import Outbox  # noqa: E402
from probe.timeutil import iso  # noqa: E402
from tests.dbs import SCENARIOS, measurement, scenario  # noqa: E402

START = datetime(2026, 9, 1, tzinfo=UTC)


def varied(name: str, rng: random.Random) -> Measurement:
    """A golden scenario with every time, byte count and body its own, as no two real
    measurements repeat them: a copy of a row compresses far better than a new one."""
    doc = scenario(name)

    def vary(v: Any, key: str = "") -> Any:
        if isinstance(v, dict):
            out = {k: vary(x, k) for k, x in v.items()}
            if isinstance(out.get("body"), str) and out.get("body_sha256"):
                out["body_sha256"] = hashlib.sha256(out["body"].encode()).hexdigest()
            return out
        if isinstance(v, list):
            return [vary(x, key) for x in v]
        if isinstance(v, float) and key in ("t0", "t"):
            return round(v * rng.uniform(0.5, 2.0), 6)
        if isinstance(v, int) and not isinstance(v, bool) and key == "bytes":
            return v + rng.randrange(100)
        if isinstance(v, str) and key == "body":
            return v + f"<!-- {rng.getrandbits(128):032x} -->"
        return v

    obs = observations_from_json(vary(doc["observations"]))
    m = measurement(name, name)
    return replace(m, observations=obs, runtime=rng.uniform(0.1, 20.0))


def build(path: Path, n: int, *, distinct: bool) -> None:
    store = Store.open(path)
    rng = random.Random(23)
    base = [measurement(name, name) for name in SCENARIOS]
    for i in range(n):
        at = START + timedelta(seconds=30 * i)
        name = SCENARIOS[i % len(SCENARIOS)]
        m = varied(name, rng) if distinct else base[i % len(base)]
        store.save(replace(m, id=f"m{i:07d}", started_at=iso(at)))
        if i % 100 == 99:
            store.save_round(
                RoundRecord(
                    id=f"r{i}",
                    device_id=store.device_id,
                    started_at=iso(at),
                    kind="pages",
                    finished_at=iso(at),
                    targets=100,
                    network_ok=True,
                )
            )
    store.close()


def one(
    source: Path, work: Path, size: int, level: int, bodies: bool, private: str, public: str
) -> tuple[int, int, int, float, float]:
    db = work / f"b-{size}-{level}-{int(bodies)}.db"
    shutil.copy(source, db)
    shutil.copy(source.with_name(source.name + ".key"), db.with_name(db.name + ".key"))
    batch.ZSTD_LEVEL = level
    store = Store.open(db)
    key = store.device_key()
    outbox = Outbox(store)

    def seal(records, held, heads, prev):  # type: ignore[no-untyped-def]
        return batch.seal(
            records,
            signing_key=key,
            collective_public_key=public,
            prev=prev,
            bodies=held,
            heads=heads,
        )

    made = measured = total = 0
    make_cpu = open_cpu = 0.0
    while True:
        t = time.process_time()
        sealed = outbox.make(key.public, seal, limit=size, bodies=bodies, at=iso(START))
        make_cpu += time.process_time() - t
        if sealed is None:
            break
        made += 1
        measured += sealed.count
        total += len(sealed.data)
        t = time.process_time()
        opened = batch.open_batch(sealed.data, collective_private_key=private, max_bytes=1 << 28)
        open_cpu += time.process_time() - t
        assert isinstance(opened, batch.Batch) and len(opened.records) == sealed.count
    store.close()
    db.unlink()
    return made, measured, total, make_cpu / made, open_cpu / made


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--measurements", type=int, default=3000)
    ap.add_argument("--sizes", default="100,500,1000")
    ap.add_argument("--levels", default="3,10,19")
    ap.add_argument(
        "--copies", action="store_true", help="the golden rows as they are (compress too well)"
    )
    args = ap.parse_args()
    private, public = batch.collective_keypair()
    with tempfile.TemporaryDirectory(prefix="probe-bench-upload-") as tmp:
        work = Path(tmp)
        source = work / "source.db"
        t = time.monotonic()
        build(source, args.measurements, distinct=not args.copies)
        kind = "copies of the golden rows" if args.copies else "varied golden rows"
        print(f"built {args.measurements} measurements ({kind}) in {time.monotonic() - t:.1f} s")
        print(
            f"{'batch':>6} {'zstd':>4} {'bodies':>6} {'batches':>7} "
            f"{'B/meas':>8} {'B/meas+PUT':>10} {'make ms':>8} {'open ms':>8}"
        )
        for size in (int(x) for x in args.sizes.split(",")):
            for level in (int(x) for x in args.levels.split(",")):
                for bodies in (False, True):
                    made, n, total, make_ms, open_ms = one(
                        source, work, size, level, bodies, private, public
                    )
                    print(
                        f"{size:>6} {level:>4} {'yes' if bodies else 'no':>6} {made:>7} "
                        f"{total / n:>8.0f} {(total + made * s3.OVERHEAD) / n:>10.0f} "
                        f"{make_ms * 1000:>8.1f} {open_ms * 1000:>8.1f}"
                    )


if __name__ == "__main__":
    main()
