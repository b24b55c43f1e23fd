"""probe import --format ooni: OONI's QA measurements through the importer and the CLI."""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe.cli import main
from probe.store import Store
from tests.paths import FIXTURES
from tests.runs import FAST, run_cli, run_fresh
from tests.runs import one_line_messages as _one_line_messages

QA = FIXTURES / "ooni-qa"
EXPECTED = json.loads((QA / "expected.json").read_text(encoding="utf-8"))
NAMES = sorted(n for n, e in EXPECTED.items() if "NoLTE" not in e["flags"])


def _jsonl(
    path: Path, names: list[str], *, gz: bool = False, bad: dict[int, str] | None = None
) -> Path:
    lines = [json.dumps(json.loads((QA / n / "measurement.json").read_text())) for n in names]
    for at, text in sorted((bad or {}).items()):
        lines.insert(at, text)
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_import_gzipped_jsonl_classifies_and_keeps_oonis_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _jsonl(tmp_path / "qa.jsonl.gz", NAMES, gz=True)
    db = tmp_path / "o.db"
    code, out, err = _run(["import", "--format", "ooni", str(src), "--db", str(db)], capsys)
    assert code == 0 and "49 imported, 0 already there, 0 skipped" in out, err
    code, out, _ = _run(["export", "--db", str(db)], capsys)
    recs = [json.loads(line) for line in out.splitlines()]
    assert len(recs) == 49
    by_input: dict[str, list[dict[str, object]]] = {}
    for r in recs:
        assert r["source"] == "ooni" and r["probe_asn"] == "AS137" and r["probe_cc"] == "IT"
        ov = r["ooni_verdict"]
        assert r["started_at"] == "2024-02-12T20:33:47.000Z"
        assert r["evidence"] == ("none" if ov["control_failure"] else "helper")
        assert (r["blocking"], r["accessible"]) == (ov["blocking"], ov["accessible"])
        by_input.setdefault(str(r["url"]), []).append(r)
    assert len(by_input["https://www.example.com/"]) > 1  # same input, distinct measurements


def test_import_is_idempotent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _jsonl(tmp_path / "qa.jsonl", NAMES[:10])
    db = tmp_path / "o.db"
    _run(["import", "--format", "ooni", str(src), "--db", str(db)], capsys)
    code, out, _ = _run(["import", "--format", "ooni", str(src), "--db", str(db)], capsys)
    assert code == 0 and "0 imported, 10 already there" in out
    assert Store.open(db).db.table("measurements").count == 10


def test_malformed_lines_are_reported_and_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other_test = json.dumps({"test_name": "telegram", "input": None, "test_keys": {}})
    src = _jsonl(
        tmp_path / "mixed.jsonl",
        NAMES[:4],
        bad={1: "{this is not json", 3: other_test, 4: "[1, 2, 3]"},
    )
    db = tmp_path / "o.db"
    code, out, err = _run(["import", "--format", "ooni", str(src), "--db", str(db)], capsys)
    assert code == 0 and "4 imported, 0 already there, 3 skipped, from 7 records" in out
    assert f"{src}:2: not JSON" in err
    assert f"{src}:4: not a web_connectivity measurement" in err
    assert f"{src}:5: not a JSON object" in err
    store = Store.open(db)
    assert store.db.table("measurements").count == 4
    assert store.db.view("dns_queries").count > 0  # every stored one is whole


def test_single_json_document(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "o.db"
    src = QA / "dnsBlockingNXDOMAIN" / "measurement.json"  # pretty-printed, many lines
    code, out, _ = _run(["import", "--format", "ooni", str(src), "--db", str(db)], capsys)
    assert code == 0 and "1 imported" in out
    code, out, _ = _run(["export", "--db", str(db)], capsys)
    (rec,) = [json.loads(line) for line in out.splitlines()]
    assert (rec["blocking"], rec["accessible"]) == ("dns", False)


def test_truncated_gzip_is_an_error_and_keeps_what_was_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole = _jsonl(tmp_path / "qa.jsonl.gz", NAMES, gz=True).read_bytes()
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    db = tmp_path / "o.db"
    code, _, err = _run(["import", "--format", "ooni", str(cut), "--db", str(db)], capsys)
    assert code == 2 and "cut.jsonl.gz: cannot read" in err and err.count("\n") == 1
    store = Store.open(db)
    n = store.db.table("measurements").count
    assert 0 < n < 49
    ids = [r["id"] for r in store.rows()]
    assert all(store.children("dns_queries", i) for i in ids)  # none half-stored


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["import", "--format", "ooni", str(tmp_path / "nope.jsonl")], capsys)
    assert code == 2 and "nope.jsonl: no such file" in err


def _mutations() -> st.SearchStrategy[Any]:
    """OONI's own QA measurements with one value somewhere replaced by anything JSON can hold."""
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
        max_leaves=6,
    )
    docs = [json.loads((QA / n / "measurement.json").read_text()) for n in NAMES[:8]]

    @st.composite
    def mutate(draw: st.DrawFn) -> Any:
        doc = json.loads(json.dumps(draw(st.sampled_from(docs))))
        node: Any = doc
        for _ in range(draw(st.integers(0, 5))):  # walk down to a random place
            if isinstance(node, dict) and node:
                key = draw(st.sampled_from(sorted(node)))
                if not isinstance(node[key], dict | list) or draw(st.booleans()):
                    node[key] = draw(json_values)
                    break
                node = node[key]
            elif isinstance(node, list) and node:
                i = draw(st.integers(0, len(node) - 1))
                if not isinstance(node[i], dict | list) or draw(st.booleans()):
                    node[i] = draw(json_values)
                    break
                node = node[i]
        return doc

    return mutate()


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=_mutations())
def test_any_ooni_line_is_imported_or_refused_in_one_line(doc: Any) -> None:
    """Bad input raises OONIFormatError and nothing else (never a TypeError or KeyError that
    the importer would have to swallow, hiding real bugs)."""
    from probe.classify.fingerprints import builtin
    from probe.errors import OONIFormatError
    from probe.ooni.importer import to_measurement

    try:
        m = to_measurement(doc, builtin())
    except OONIFormatError as exc:
        assert "\n" not in str(exc)
    else:
        assert m.source == "ooni" and m.url == doc["input"]


# -- generated OONI lines (property tests over outside input, issue 10) -------------------------
def _qa(name: str) -> str:
    return json.dumps(json.loads((QA / name / "measurement.json").read_text(encoding="utf-8")))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def _mutated(doc: dict[str, Any], key: str, value: Any) -> str:
    return json.dumps({**doc, key: value})


ooni_lines = st.one_of(
    st.sampled_from(["dnsBlockingNXDOMAIN", "dnsBlockingBOGON", "tcpBlockingConnectTimeout"]).map(
        _qa
    ),
    json_values.map(json.dumps),
    st.text(max_size=50),
    st.builds(
        _mutated,
        st.sampled_from([json.loads(_qa("dnsBlockingNXDOMAIN"))]),
        st.sampled_from(["test_keys", "input", "measurement_start_time", "test_name"]),
        json_values,
    ),
    st.integers(1, 3000).map(lambda n: "[" * n + "]" * n),
)


@FAST
@given(lines=st.lists(ooni_lines, min_size=0, max_size=6), gz=st.booleans())
def test_property_ooni_lines(
    lines: list[str], gz: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    import gzip

    with tempfile.TemporaryDirectory() as tmp:
        src, db = Path(tmp) / "m.jsonl", Path(tmp) / "o.db"
        data = "\n".join(lines).encode("utf-8", "surrogatepass")
        src.write_bytes(gzip.compress(data) if gz else data)
        code, out, err = run_fresh(
            ["import", "--format", "ooni", str(src), "--db", str(db)], capsys
        )
        _one_line_messages(code, err)
        if code == 0:
            imported, _, dup, *_ = out.replace(",", "").split()
            assert int(imported) + int(dup) > 0


# -- hostile files to import (issue 10) ---------------------------------------------------------
def _qa_line(name: str = "dnsBlockingNXDOMAIN") -> bytes:
    return json.dumps(json.loads((QA / name / "measurement.json").read_text())).encode()


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"input": "' + b"x" * (70 * 2**20) + b'"}', "longer than 64 MiB"),
        (b'{"input": "caf\xe9"}', "not UTF-8"),
        (b"\x00\x01\x02", "not JSON"),
    ],
    ids=["deep", "huge", "latin-1", "binary"],
)
def test_import_skips_a_hostile_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: bytes, reason: str
) -> None:
    src, db = tmp_path / "m.jsonl", tmp_path / "o.db"
    src.write_bytes(_qa_line() + b"\n" + bad + b"\n" + _qa_line("dnsBlockingBOGON") + b"\n")
    code, out, err = run_cli(["import", "--format", "ooni", str(src), "--db", str(db)], capsys)
    assert code == 0, err
    assert "2 imported, 0 already there, 1 skipped, from 3 records" in out
    assert err.count("\n") == 1 and f"m.jsonl:2: {reason}" in err


def test_import_with_no_valid_line_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, db = tmp_path / "m.jsonl", tmp_path / "o.db"
    src.write_bytes(b"not json\n[1, 2]\n" + b"{" * 5000 + b"\n")
    code, out, err = run_cli(["import", "--format", "ooni", str(src), "--db", str(db)], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith(f"probe: error: {src}: no valid OONI measurement in 3 records")
    assert "m.jsonl:1: not JSON" in err


# -- numbers past Python's digit limit (issue 20, item 6) ---------------------------------------
DIGITS = 5000  # past sys.get_int_max_str_digits() (4300 by default)


def _invoke(args: list[str]) -> tuple[int, str, str]:
    """``probe`` through click's CliRunner: its isolated streams, main's exit status."""
    from click.testing import CliRunner

    with CliRunner().isolation() as (out, err, _):
        code = main(args)
    return code, out.getvalue().decode(), err.getvalue().decode()


def _with_a_long_number(name: str = "successWithHTTPS") -> bytes:
    """A QA measurement whose test_runtime has DIGITS digits: valid JSON, which Python's json
    cannot turn into an int."""
    doc = json.loads((QA / name / "measurement.json").read_text())
    doc["test_runtime"] = 7
    return json.dumps(doc).replace('"test_runtime": 7', '"test_runtime": ' + "9" * DIGITS).encode()


def test_a_number_past_the_digit_limit_is_exit_2_naming_file_and_line(tmp_path: Path) -> None:
    src, db = tmp_path / "long.jsonl", tmp_path / "o.db"
    src.write_bytes(_with_a_long_number() + b"\n")
    code, out, err = _invoke(["import", "--format", "ooni", str(src), "--db", str(db)])
    assert (code, out, err.count("\n")) == (2, "", 1), err
    assert err.startswith(f"probe: error: {src}: no valid OONI measurement in 1 records"), err
    assert f"{src}:1: a number of {DIGITS} digits (at most 4300)" in err


def test_a_long_number_in_a_pretty_printed_document(tmp_path: Path) -> None:
    src, db = tmp_path / "measurement.json", tmp_path / "o.db"
    doc = json.loads(_with_a_long_number().replace(b"9" * DIGITS, b"7"))
    text = json.dumps(doc, indent=2).replace('"test_runtime": 7', '"test_runtime": ' + "9" * DIGITS)
    src.write_text(text)
    code, _, err = _invoke(["import", "--format", "ooni", str(src), "--db", str(db)])
    assert code == 2 and err.count("\n") == 1, err
    assert f"{src}:1: a number of {DIGITS} digits" in err


def test_a_long_number_costs_only_its_line(tmp_path: Path) -> None:
    src, db = tmp_path / "m.jsonl", tmp_path / "o.db"
    src.write_bytes(
        _qa_line() + b"\n" + _with_a_long_number() + b"\n" + _qa_line("dnsBlockingBOGON")
    )
    code, out, err = _invoke(["import", "--format", "ooni", str(src), "--db", str(db)])
    assert code == 0 and "2 imported, 0 already there, 1 skipped, from 3 records" in out, err
    assert err == f"probe: skipped {src}:2: a number of {DIGITS} digits (at most 4300)\n"


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("tls_handshakes.address", "93.184.216.34:" + "4" * DIGITS),
        ("tcp_connect.tags", ["depth=" + "1" * DIGITS]),
        ("queries.tags", ["depth=" + "1" * DIGITS]),
    ],
)
def test_long_digit_strings_in_fields_are_no_internal_error(
    tmp_path: Path, where: str, value: Any
) -> None:
    """Digits in a string, which the translation reads as a number: a port that is not one,
    a depth tag that is not one, as any other malformed value there."""
    doc = json.loads(_qa_line("successWithHTTPS"))
    key, field = where.split(".")
    for entry in doc["test_keys"][key]:
        entry[field] = value
    src, db = tmp_path / "m.jsonl", tmp_path / "o.db"
    src.write_text(json.dumps(doc) + "\n")
    code, out, err = _invoke(["import", "--format", "ooni", str(src), "--db", str(db)])
    assert code == 0 and "1 imported" in out, err
