"""Every export format carries the HTTP/3 results (issue 24): a store holding the QUIC goldens
(recorded in the loopback HTTP/3 world), exported as JSON Lines, CSV, OONI's format and Parquet."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from probe.analyst.export import export
from probe.classify import classify
from probe.model import Measurement, control_from_json, observations_from_json
from probe.store import RowFilter, Store

GOLDEN = Path(__file__).parents[2] / "classify" / "quic_golden"
NAMES = ("quic_sni_blocked", "h3_ok", "h3_not_advertised")


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("quic-export")
    store = Store.open(tmp / "q.db")
    try:
        for i, name in enumerate(NAMES):
            doc = json.loads((GOLDEN / f"{name}.json").read_text(encoding="utf-8"))
            obs = observations_from_json(doc["observations"])
            control = control_from_json(doc["control"])
            store.save(
                Measurement(
                    id=f"20261201T000000Z_{i:032x}",
                    target=name,
                    url=doc["url"],
                    started_at="2026-12-01T00:00:00.000Z",
                    observations=obs,
                    verdict=classify(obs, control=control, network_ok=True),
                    network_ok=True,
                    control=control,
                    device_id="dev-1",
                )
            )
        for fmt in ("jsonl", "csv", "ooni", "parquet"):
            export(store, RowFilter(), fmt, str(tmp / f"export.{fmt}"))
    finally:
        store.close()
    return tmp


def test_jsonl_has_the_quic_verdict_and_steps(out: Path) -> None:
    recs = {
        r["target"]: r for r in map(json.loads, (out / "export.jsonl").read_text().splitlines())
    }
    sni = recs["quic_sni_blocked"]
    assert (sni["quic"], sni["quic_rule"]) == ("sni_blocked", "quic.sni_blocked")
    roles = [h["role"] for h in sni["http3"]["handshakes"]]
    assert roles == ["system", "neutral_sni"]
    assert recs["h3_ok"]["http3"]["http"][0]["status_code"] == 200
    assert recs["h3_not_advertised"]["quic"] is None
    assert recs["h3_not_advertised"]["http3"]["skipped"] == "not_advertised"


def test_csv_has_the_quic_columns(out: Path) -> None:
    rows = {r["target"]: r for r in csv.DictReader(io.StringIO((out / "export.csv").read_text()))}
    assert (rows["quic_sni_blocked"]["quic"], rows["h3_ok"]["quic"]) == ("sni_blocked", "ok")
    assert rows["h3_not_advertised"]["quic"] == ""
    assert json.loads(rows["h3_ok"]["http3"])["handshakes"][0]["negotiated_protocol"] == "h3"


def test_ooni_format_has_quic_handshakes_and_http3_requests(out: Path) -> None:
    docs = {
        d["annotations"]["probe_measurement_id"][-1]: d
        for d in map(json.loads, (out / "export.ooni").read_text().splitlines())
    }
    sni, ok, none = docs["0"], docs["1"], docs["2"]
    hs = sni["test_keys"]["quic_handshakes"]
    assert [(h["network"], h["failure"], h["no_tls_verify"]) for h in hs] == [
        ("udp", "generic_timeout_error", False),
        ("udp", None, True),
    ]
    assert sni["annotations"]["probe_quic"] == "sni_blocked"
    (h3,) = [r for r in ok["test_keys"]["requests"] if r["network"] == "udp"]
    assert (h3["alpn"], h3["response"]["code"]) == ("h3", 200)
    assert "quic_handshakes" not in none["test_keys"] and "probe_quic" not in none["annotations"]


def test_parquet_has_the_quic_columns(out: Path) -> None:
    table = ds.dataset(out / "export.parquet", format="parquet", partitioning="hive").to_table()
    rows = {r["target"]: r for r in table.to_pylist()}
    assert rows["quic_sni_blocked"]["quic_rule"] == "quic.sni_blocked"
    assert json.loads(rows["h3_ok"]["http3"])["http"][0]["title"] == "Independent News Today"
    assert rows["h3_not_advertised"]["quic"] is None


def test_a_merge_keeps_the_quic_verdict(out: Path) -> None:
    from probe.analyst.merge import merge

    merge([str(out / "q.db")], str(out / "fleet.db"))
    store = Store.open(out / "fleet.db")
    try:
        got = {m.target: (m.verdict.quic, m.verdict.quic_rule) for m in store.stored(RowFilter())}
    finally:
        store.close()
    assert got["quic_sni_blocked"] == ("sni_blocked", "quic.sni_blocked")
    assert got["h3_not_advertised"] == (None, None)
