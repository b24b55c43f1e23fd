"""probe export: OONI's format (required fields, round trip), CSV for spreadsheets, JSON Lines,
and the filters every format takes. Databases are built from the golden scenarios."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from probe.analyst.export import FLAT
from probe.cli import main
from probe.ooni.importer import measurement_id
from probe.store import Store
from tests.dbs import HELPER_DOWN, SCENARIOS, golden_db, helper_saw_it_work, measurement
from tests.paths import FIXTURES

QA = FIXTURES / "ooni-qa"
# The goldens whose verdict is a block of some kind: what --blocked must keep.
BLOCKED = [n for n in SCENARIOS if measurement(n, "x").verdict.blocking not in (False, None)]
VERDICT = (
    "blocking",
    "accessible",
    "rule_id",
    "rules_version",
    "dns_consistency",
    "blockpage",
    "evidence",
    "offline",
    "body_proportion",
    "body_length_match",
    "status_code_match",
    "headers_match",
    "title_match",
)
# Where the recorded chain itself is at odds with OONI's model, with the reason; nothing else.
STEP_NOT_KEPT: set[str] = set()


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return golden_db(tmp_path_factory.mktemp("db") / "p.db", days=2)


def _variants(path: Path) -> Path:
    """Every golden scenario three times: no helper, a helper that saw the site work, and a
    helper that could not be reached."""
    store = Store.open(path)
    for i, name in enumerate(SCENARIOS):
        store.save(measurement(name, f"none-{i}"))
        store.save(measurement(name, f"ok-{i}", control=helper_saw_it_work(name)))
        store.save(measurement(name, f"down-{i}", control=HELPER_DOWN))
    store.close()
    return path


def _round_trip(
    src: Path, tmp: Path, capsys: pytest.CaptureFixture[str]
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    out = tmp / "export.jsonl"
    code, _, err = _run(["export", "--db", str(src), "--format", "ooni", "-o", str(out)], capsys)
    assert code == 0, err
    back = tmp / "back.db"
    code, text, err = _run(["import", "--format", "ooni", str(out), "--db", str(back)], capsys)
    assert code == 0 and "0 skipped" in text, err
    a, b = Store.open(src), Store.open(back)
    orig = {r["id"]: r for r in a.rows()}
    pairs = []
    for line in out.read_text(encoding="utf-8").splitlines():
        doc = json.loads(line)
        (row,) = b.rows("id = ?", [measurement_id(doc)])
        pairs.append((orig.pop(doc["annotations"]["probe_measurement_id"]), row))
    assert not orig, "measurements missing from the export"
    return pairs


def test_ooni_round_trip_of_every_golden_scenario(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pairs = _round_trip(_variants(tmp_path / "g.db"), tmp_path, capsys)
    assert len(pairs) == 3 * len(SCENARIOS)
    for before, after in pairs:
        name = before["target"]
        for key in VERDICT:
            assert after[key] == before[key], f"{before['id']} ({name}): {key}"
        if name not in STEP_NOT_KEPT:
            for key in ("failing_step", "failure"):
                assert after[key] == before[key], f"{before['id']} ({name}): {key}"
        assert after["network_ok"] == before["network_ok"]
    evidence = {b["evidence"] for b, _ in pairs}
    assert evidence == {"helper", "local", "no control", "none"}  # every kind went through


def test_ooni_round_trip_of_oonis_own_qa_measurements(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "qa.jsonl"
    docs = [json.loads((p / "measurement.json").read_text()) for p in sorted(QA.glob("*/"))]
    src.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    first = tmp_path / "first.db"
    code, text, err = _run(["import", "--format", "ooni", str(src), "--db", str(first)], capsys)
    assert code == 0 and "50 imported" in text, err
    pairs = _round_trip(first, tmp_path, capsys)
    assert len(pairs) == 50
    for before, after in pairs:
        for key in (*VERDICT, "failing_step", "failure"):
            assert after[key] == before[key], f"{before['url']}: {key}"


def test_ooni_export_has_df000_fields_and_web_connectivity_keys(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(["export", "--db", str(db), "--format", "ooni"], capsys)
    assert code == 0
    docs = [json.loads(line) for line in out.splitlines()]
    assert len(docs) == 2 * len(SCENARIOS)
    for d in docs:
        assert d["test_name"] == "web_connectivity" and d["data_format_version"] == "0.2.0"
        assert d["software_name"] == "probe" and d["software_version"] == "0.1.0"
        assert d["probe_ip"] == "127.0.0.1"  # as OONI writes it: never the volunteer's
        assert (d["probe_asn"], d["probe_cc"]) == ("AS0", "ZZ")  # OONI's "unknown"
        assert len(d["measurement_start_time"]) == 19 and d["measurement_start_time"][10] == " "
        assert isinstance(d["input"], str) and isinstance(d["annotations"], dict)
        assert all(isinstance(v, str) for v in d["annotations"].values())  # df-000: strings
        tk = d["test_keys"]
        for key in ("queries", "tcp_connect", "tls_handshakes", "requests", "control"):
            assert key in tk
        assert tk["blocking"] in (False, None, "dns", "tcp_ip", "http-failure", "http-diff")
        assert tk["accessible"] in (True, False, None)
        for r in tk["requests"]:
            assert {"request", "response", "failure", "t0", "t", "tags"} <= set(r)
        for q in tk["queries"]:
            assert {"answers", "engine", "failure", "hostname", "query_type", "tags"} <= set(q)
    blocked = next(d for d in docs if d["input"].startswith("http://blocked.test"))
    assert "bị chặn" in blocked["test_keys"]["requests"][0]["response"]["body"]  # the evidence


def test_ooni_export_lists_requests_latest_first(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = _run(
        ["export", "--db", str(db), "--format", "ooni", "--target", "redirect_loop"], capsys
    )
    doc = json.loads(out.splitlines()[0])
    depths = [r["tags"][0] for r in doc["test_keys"]["requests"]]
    assert depths[0] == "depth=11" and depths[-1] == "depth=0"


def _csv(db: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> list[dict[str, str]]:
    code, out, err = _run(["export", "--db", str(db), "--format", "csv", *extra], capsys)
    assert code == 0, err
    return list(csv.DictReader(io.StringIO(out)))


def test_csv_columns_words_empty_cells_and_dates(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = _csv(db, capsys)
    _, out, _ = _run(["export", "--db", str(db), "--format", "jsonl"], capsys)
    recs = [json.loads(line) for line in out.splitlines()]
    flat = {k for k, v in recs[0].items() if not isinstance(v, dict | list)}
    assert flat <= set(rows[0]), "a flat JSON Lines field is missing from the CSV"
    assert list(rows[0])[: len(FLAT)] == FLAT and "ooni_verdict" in rows[0]
    by_target = {r["target"]: r for r in rows}
    assert by_target["dns_nxdomain"]["verdict"] == "blocked (dns)"
    assert by_target["success_http"]["verdict"] == "accessible (no control)"
    assert by_target["offline_round"]["verdict"] == "offline"
    assert by_target["tcp_refused"]["verdict"] == "anomaly (tcp_ip)"  # no helper: not "blocked"
    assert by_target["blockpage_injection_consistent_dns"]["verdict"] == "blockpage"
    for r in rows:
        assert "null" not in (r["control"], r["throttled"], r["throughput"], r["probe_asn"])
        assert r["started_at"].startswith("2026-11-0") and len(r["started_at"]) == 19
    assert (
        by_target["success_http"]["throttled"] == "" and by_target["success_http"]["control"] == ""
    )
    assert by_target["success_http"]["accessible"] == "true"
    assert json.loads(by_target["success_http"]["dns"])[0]["hostname"] == "news.test"


def test_csv_neutralises_formulas_and_excel_gets_a_bom(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = Store.open(tmp_path / "f.db")
    hostile = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "＝1+1", "ok"]
    for i, name in enumerate(hostile):
        store.save(measurement("success_http", f"m{i}", target=name, category="Tin tức"))
    store.close()
    code, out, _ = _run(["export", "--db", str(tmp_path / "f.db"), "--format", "csv"], capsys)
    targets = [r["target"] for r in csv.DictReader(io.StringIO(out))]
    assert sorted(targets) == sorted(["'" + t for t in hostile[:-1]] + ["ok"])
    path = tmp_path / "x.csv"
    code, _, _ = _run(
        ["export", "--db", str(tmp_path / "f.db"), "--format", "csv", "--excel", "-o", str(path)],
        capsys,
    )
    assert code == 0
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbfid,") and "Tin tức".encode() in data
    assert b"\r\n" in data


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "ooni"])
@pytest.mark.parametrize(
    ("flags", "want"),
    [
        (["--target", "dns_nxdomain", "--target", "tcp_refused"], 4),
        (["--since", "2026-11-02"], len(SCENARIOS)),
        (["--until", "2026-11-02"], len(SCENARIOS)),
        (["--since", "2026-11-01T02:00:00Z", "--until", "2026-11-01T02:00:01Z"], len(SCENARIOS)),
        (["--category", "NEWS"], 2 * len(SCENARIOS)),
        (["--category", "HUMR"], 0),
        (["--network", "AS7552"], 0),
        (["--blocked"], 2 * len(BLOCKED)),
        (["--throttled"], 0),
    ],
)
def test_filters_apply_to_every_format(
    db: Path, fmt: str, flags: list[str], want: int, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(["export", "--db", str(db), "--format", fmt, *flags], capsys)
    assert code == 0, err
    assert f"{want} measurements exported" in err
    lines = out.splitlines()
    assert len(lines) == want + (1 if fmt == "csv" else 0)


def test_network_filter_matches_the_asn(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = Store.open(tmp_path / "n.db")
    store.save(measurement("success_http", "a", probe_asn="AS7552", probe_cc="VN"))
    store.save(measurement("success_http", "b", probe_asn="AS45899", probe_cc="VN"))
    store.close()
    code, out, _ = _run(["export", "--db", str(tmp_path / "n.db"), "--network", "AS7552"], capsys)
    assert code == 0 and [json.loads(x)["id"] for x in out.splitlines()] == ["a"]


def test_excel_needs_csv_and_parquet_needs_a_folder(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(["export", "--db", str(db), "--excel"], capsys)
    assert code == 2 and "--excel goes with --format csv" in err
    code, _, err = _run(["export", "--db", str(db), "--format", "parquet"], capsys)
    assert code == 2 and "give -o DIR" in err


def _json_or_text(cell: str) -> Any:
    if cell[:1] in ("[", "{"):
        try:
            return json.loads(cell)
        except ValueError:
            pass
    return cell


def test_csv_from_sqlite_equals_csv_from_records(tmp_path: Path) -> None:
    """write_csv takes the steps straight from SQLite; write_csv_records re-encodes the JSON
    Lines records. The csv module reads the same cells back from both (JSON cells compared as
    JSON: SQLite and msgspec space and escape it differently), odd text included."""
    from probe.analyst.export import RowFilter, records
    from probe.analyst.export.csv import write_csv, write_csv_records

    store = Store.open(tmp_path / "q.db")
    odd = ['a "quoted", comma', "line\nbreak", "cr\rhere", "=1+2", "Tin tức"]
    for i, text in enumerate(odd):
        store.save(measurement("dns_blockpage_address", f"o{i}", target=text, category=text))
    for i, name in enumerate(SCENARIOS):
        store.save(measurement(name, f"g{i}", control=helper_saw_it_work(name)))

    def cells(data: bytes) -> list[list[Any]]:
        text = data.decode("utf-8-sig")
        rows = list(csv.reader(io.StringIO(text, newline="")))
        return [[_json_or_text(c) for c in row] for row in rows]

    for excel in (False, True):
        fast, slow = io.BytesIO(), io.BytesIO()
        assert write_csv(store, RowFilter(), fast, excel=excel) == len(odd) + len(SCENARIOS)
        write_csv_records(records(store, RowFilter()), slow, excel=excel)
        assert cells(fast.getvalue()) == cells(slow.getvalue())
        assert fast.getvalue().startswith(b"\xef\xbb\xbf" if excel else b"id,")
    rows = list(csv.DictReader(io.StringIO(fast.getvalue().decode("utf-8-sig"), newline="")))
    assert sorted(r["target"] for r in rows if r["id"].startswith("o")) == sorted(
        ["'=1+2", *[t for t in odd if t != "=1+2"]]
    )


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_every_format_says_which_network_and_resolver(
    tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The network's name and the resolver's kind travel with the ASN: an analyst comparing an
    ISP's resolver with a public one needs them in the export, not only in the database."""
    store = Store.open(tmp_path / "n.db")
    store.save(
        measurement(
            "success_http",
            "a",
            probe_asn="AS7552",
            probe_cc="VN",
            network_name="VIETTEL-AS-VN",
            resolver_kind="isp",
        )
    )
    store.close()
    code, out, err = _run(["export", "--db", str(tmp_path / "n.db"), "--format", fmt], capsys)
    assert code == 0, err
    row = json.loads(out) if fmt == "jsonl" else next(csv.DictReader(io.StringIO(out)))
    assert (row["network_name"], row["resolver_kind"]) == ("VIETTEL-AS-VN", "isp")
