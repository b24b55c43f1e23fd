"""Exports read typed records (``Store.stored``) and their bytes stay put.

The JSON Lines, OONI and CSV exports of a small fixed, varied database (:mod:`tests.typed_db`:
every golden scenario, helpers that answered and helpers that were down, controls, analysed,
throttled and skipped throughput tests, imported rows with OONI's verdict, the network columns)
are pinned by their SHA-256 in ``tests/fixtures/export-pin.json``. A change to any exported
byte fails here; when the change is meant (new rules, a new field), rerun with
``PROBE_REPIN=1`` and say why in the commit.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import msgspec
import pytest

from probe.analyst.export import export, records
from probe.analyst.export.records import record
from probe.model import ControlEvidence, DNSQuery, HTTPTransaction, TCPConnect, TLSHandshake
from probe.store import RowFilter, Store
from tests.paths import FIXTURES
from tests.typed_db import varied_db

PIN = FIXTURES / "export-pin.json"
FORMATS = ("jsonl", "ooni", "csv")


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return varied_db(tmp_path_factory.mktemp("pin") / "varied.db", n_days=1)


def _exports(db: Path, out: Path) -> dict[str, bytes]:
    store = Store.open(db)
    try:
        for fmt in FORMATS:
            export(store, RowFilter(), fmt, str(out / f"export.{fmt}"))
    finally:
        store.close()
    return {fmt: (out / f"export.{fmt}").read_bytes() for fmt in FORMATS}


def test_exports_of_the_fixed_database_are_pinned(db: Path, tmp_path: Path) -> None:
    got = {fmt: hashlib.sha256(data).hexdigest() for fmt, data in _exports(db, tmp_path).items()}
    if os.environ.get("PROBE_REPIN"):
        PIN.write_text(json.dumps(got, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    want = json.loads(PIN.read_text(encoding="utf-8"))
    changed = [fmt for fmt in FORMATS if got[fmt] != want.get(fmt)]
    assert not changed, f"exported bytes changed for {changed}: see {tmp_path} (PROBE_REPIN=1)"


def test_the_fixed_database_has_every_kind_of_row(db: Path) -> None:
    recs = list(records(Store.open(db)))
    assert len(recs) == 51  # one day: every golden scenario, with and without helpers
    words = {r["verdict"] for r in recs}
    assert {"offline", "throttled", "blockpage", "blocked (dns)", "accessible"} <= words
    assert any(r["control"] and r["control"]["failure"] for r in recs)
    assert any(r["control"] and not r["control"]["failure"] for r in recs)
    assert any(r["throughput"] and r["throughput"]["samples"] for r in recs)
    assert any(r["throughput"] and r["throughput"]["skipped"] for r in recs)
    assert any("ooni_verdict" in r for r in recs)
    assert any(r["is_control"] for r in recs) and any(r["network_name"] for r in recs)


def test_a_record_gives_back_the_stored_steps(db: Path) -> None:
    """The record's steps are the typed record's, field for field (bodies kept apart)."""
    for m in Store.open(db).stored(RowFilter()):
        rec = record(m)
        obs = m.observations
        for section, typ in (("dns", DNSQuery), ("tcp", TCPConnect), ("tls", TLSHandshake)):
            assert msgspec.convert(rec[section], tuple[typ, ...]) == getattr(obs, section)
        assert all("body" not in h for h in rec["http"])
        assert msgspec.convert(rec["http"], tuple[HTTPTransaction, ...]) == obs.http
        assert msgspec.convert(rec["control"], ControlEvidence | None) == m.control


def test_the_records_for_an_encoder_encode_as_the_plain_ones(db: Path) -> None:
    for m in Store.open(db).stored(RowFilter()):
        assert msgspec.json.encode(record(m, for_json=True)) == msgspec.json.encode(record(m))
