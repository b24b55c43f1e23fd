"""The report's HTTP/3 evidence in words (probe.analyst.report.evidence), over the QUIC goldens
stored and read back as the report reads them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from probe.analyst.report.evidence import explain
from probe.classify import classify
from probe.model import Measurement, control_from_json, observations_from_json
from probe.store import RowFilter, Store, Stored

GOLDEN = Path(__file__).parents[2] / "classify" / "quic_golden"


def _stored(tmp_path: Path, name: str) -> Stored:
    doc = json.loads((GOLDEN / f"{name}.json").read_text(encoding="utf-8"))
    obs = observations_from_json(doc["observations"])
    control = control_from_json(doc["control"])
    store = Store.open(tmp_path / f"{name}.db")
    try:
        store.save(
            Measurement(
                id="m1",
                target=name,
                url=doc["url"],
                started_at="2026-12-01T00:00:00.000Z",
                observations=obs,
                verdict=classify(obs, control=control, network_ok=True),
                control=control,
            )
        )
        return next(store.stored(RowFilter()))
    finally:
        store.close()


def test_sni_blocking_over_quic_is_said_step_by_step(tmp_path: Path) -> None:
    out = explain(_stored(tmp_path, "quic_sni_blocked"))
    quic = [s for s in out if "QUIC" in s]
    assert quic[0].startswith("The QUIC handshake with sni.test at 127.0.24.7:")
    assert "no answer in time (timeout) (generic_timeout_error)" in quic[0]
    assert quic[1] == "With the neutral name www.example.com, the same address answered over QUIC."
    assert quic[2].startswith("Over QUIC (HTTP/3): QUIC with the site's name got no answer")
    assert quic[2].endswith("(rule quic.sni_blocked).")
    assert "Decided by rule https.success" in out[-1]  # the TCP verdict still ends it


@pytest.mark.parametrize("name", ["h3_ok", "udp_rejected_tcp_works", "quic_throttled"])
def test_every_quic_verdict_is_said_in_both_languages(tmp_path: Path, name: str) -> None:
    row = _stored(tmp_path, name)
    en, vi = explain(row, "en"), explain(row, "vi")
    assert any(f"(rule {row.verdict.quic_rule})" in s for s in en)
    assert any(f"{row.verdict.quic_rule}" in s and "QUIC" in s for s in vi)
    assert en != vi


def test_no_quic_no_sentence(tmp_path: Path) -> None:
    assert not [s for s in explain(_stored(tmp_path, "h3_not_advertised")) if "QUIC" in s]
