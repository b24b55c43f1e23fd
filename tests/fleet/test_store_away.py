"""The store goes away (SeaweedFS killed) in the middle of a probe's uploads and comes back on
the same data: the batches made meanwhile wait, then every measurement is there once."""

from __future__ import annotations

from pathlib import Path

from probe import failures
from probe.fleet import upload as up
from tests.fleet.test_upload import chain_order, opened, plan, probe_db, stored_rows, writer
from tests.servers import s3 as S


def test_the_store_going_away_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    with S.seaweedfs(tmp_path / "seaweedfs") as server:
        db = tmp_path / "p.db"
        store = probe_db(db, 2)
        device = store.device_key().public
        assert up.upload(store, plan(writer(server))).sent == 1
        server.stop()
        store.close()
        store = probe_db(db, 3, start=2)
        r = up.upload(store, plan(writer(server), limit=2))
        assert (r.made, r.sent, r.waiting) == (2, 0, 2)
        assert r.failure == failures.CONNECTION_REFUSED
        server.start()
        r = up.upload(store, plan(writer(server), limit=2))
        assert (r.made, r.sent, r.measurements, r.waiting, r.failure) == (0, 2, 3, 0, None)
        batches = chain_order(opened(server, device))
        assert [rec["id"] for b in batches for rec in b.records] == [
            row["id"] for row in stored_rows(db)
        ]
        store.close()
