"""The outbox batches a measurement once it is final. A throughput round stores each measurement
when its page test ends and adds its throughput test to the stored row later
(:meth:`Store.save_throughput`); a batch made meanwhile would carry the row without it, and the
collective would never get it (a later batch starts after it; ingest keeps the first copy of
an id). So the measurements of a round still being written (its writer alive), and every later
one, wait for its end; a round whose writer is gone is final as it stands."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from probe.model import ThroughputRecord
from probe.store import RoundRecord, Store
from probe.store.outbox import Outbox
from tests.dbs import measurement

TP = ThroughputRecord(skipped="data_cap")


@dataclass
class Sealed:
    key: str
    data: bytes
    digest: str
    count: int
    records: list[dict[str, Any]]


def seal(records: list[dict[str, Any]], bodies: Any, heads: Any, prev: str | None) -> Sealed:
    data = json.dumps([records, prev], sort_keys=True, default=str).encode()
    digest = hashlib.sha256(data).hexdigest()
    return Sealed(f"{digest}.pbatch", data, digest, len(records), records)


def make(store: Store) -> Sealed | None:
    out = Outbox(store).make(
        store.device_key().public, seal, limit=100, bodies=False, at="2026-11-29T01:00:00.000Z"
    )
    assert out is None or isinstance(out, Sealed)
    return out


def a_round(store: Store, rid: str, pid: int | None, *, finished: bool) -> None:
    store.save_round(
        RoundRecord(
            id=rid,
            device_id=store.device_id,
            started_at="2026-11-29T00:00:00.000Z",
            kind="throughput",
            finished_at="2026-11-29T00:30:00.000Z" if finished else None,
            pid=pid,
        )
    )


def dead_pid() -> int:
    p = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                       capture_output=True, text=True, check=True)  # fmt: skip
    return int(p.stdout)


def test_a_running_rounds_measurements_wait_for_its_end(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "p.db")
    a_round(store, "r1", os.getpid(), finished=True)
    store.save(measurement("success_https", "m0", round_id="r1"))
    a_round(store, "r2", os.getpid(), finished=False)  # this process writes it, still
    m1 = measurement("success_https", "m1", round_id="r2", started_at="2026-11-29T00:10:00.000Z")
    store.save(m1)
    store.save(measurement("dns_nxdomain", "m2", round_id="r2"))
    first = make(store)
    assert first is not None and [r["id"] for r in first.records] == ["m0"]
    assert make(store) is None  # nothing final since
    store.save_throughput(replace(m1, throughput=TP, bytes_used=99_999))
    a_round(store, "r2", os.getpid(), finished=True)
    second = make(store)
    assert second is not None and [r["id"] for r in second.records] == ["m1", "m2"]
    assert second.records[0]["bytes_used"] == 99_999
    assert json.loads(second.records[0]["throughput"])["skipped"] == "data_cap"
    store.close()


def test_an_open_round_whose_writer_is_gone_is_final_as_it_stands(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "p.db")
    a_round(store, "r1", dead_pid(), finished=False)  # a daemon killed mid-round
    store.save(measurement("success_https", "m0", round_id="r1"))
    a_round(store, "r2", None, finished=False)  # no writer named (before m006): not held
    store.save(measurement("success_https", "m1", round_id="r2"))
    store.save(measurement("success_https", "m2", round_id="no-such-round"))
    made = make(store)
    assert made is not None and [r["id"] for r in made.records] == ["m0", "m1", "m2"]
    store.close()
