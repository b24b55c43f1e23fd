"""Hostile input never stops a round, loses data or gives more than one line (issue 10).

Runs ``probe run`` in-process against the loopback world of ``tests/world.py``.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import pytest

from probe.round import run as round_mod
from tests.runs import run_args, run_cli
from tests.world import World


def stored(db: Path) -> dict[str, dict[str, object]]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return {r["target"]: dict(r) for r in con.execute("SELECT * FROM measurements")}
    finally:
        con.close()


def rounds(db: Path) -> list[dict[str, object]]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM rounds")]
    finally:
        con.close()


# -- item 1: one bad URL never stops a round ------------------------------------------------
def mixed_targets(tmp: Path, w: World) -> Path:
    p = tmp / "mixed.yaml"
    p.write_text(
        "targets:\n"
        f"  - {{name: news, url: '{w.http('news.test')}'}}\n"
        '  - {name: emoji, url: "https://\\U0001f600.example/"}\n'
        '  - {name: octal, url: "http://0177.0.0.1/"}\n'
        '  - {name: nul, url: "https://a\\x00b.example/"}\n'
        '  - {name: spaced, url: "https://exa mple.com/"}\n'
        f"  - {{name: blocked, url: '{w.http('blocked.test')}'}}\n"
        "controls:\n"
        f"  - {{name: ctl, url: '{w.https('news.test')}'}}\n",
        encoding="utf-8",
    )
    return p


def test_run_measures_every_valid_target_beside_broken_ones(
    tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    p, db = mixed_targets(tmp_path, world), tmp_path / "r.db"
    code, _out, err = run_cli(run_args(world, p, db), capsys)
    assert code == 2
    lines = [x for x in err.splitlines() if x.startswith("probe: error: ")]
    assert [x.split(": ")[2] for x in lines[:4]] == [f"{p}:{n}" for n in (3, 4, 5, 6)]
    assert "4 broken entries (2 targets and 1 controls usable)" in lines[-1]
    assert "Traceback" not in err
    rows = stored(db)
    assert set(rows) == {"news", "blocked", "ctl"}
    assert (rows["news"]["blocking"], rows["blocked"]["blocking"]) == ("false", "dns")
    (r,) = rounds(db)
    assert r["finished_at"] and r["targets"] == 3


def test_targets_check_reports_every_broken_entry(
    tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    p = mixed_targets(tmp_path, world)
    code, out, err = run_cli(["targets", "check", str(p)], capsys)
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert len(lines) == 5 and all(x.startswith("probe: error: ") for x in lines)
    assert "mixed.yaml:6: targets[4].url: 'https://exa mple.com/'" in lines[3]


def test_a_file_that_cannot_be_parsed_writes_nothing(
    tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    p, db = tmp_path / "t.yaml", tmp_path / "r.db"
    p.write_text("targets:\n  - name: a\n  url: [\n", encoding="utf-8")
    code, _, err = run_cli(run_args(world, p, db), capsys)
    assert code == 2 and err.count("\n") == 1 and "t.yaml:3" in err
    assert not db.exists()


def test_only_broken_entries_measures_nothing(
    tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    p, db = tmp_path / "t.yaml", tmp_path / "r.db"
    p.write_text('targets:\n  - {name: a, url: "http://0177.0.0.1/"}\n', encoding="utf-8")
    code, _, err = run_cli(run_args(world, p, db), capsys)
    assert code == 2 and "t.yaml:2: targets[0].url" in err and "1 broken entries" in err
    assert not db.exists()


def test_an_internal_error_is_that_targets_recorded_failure(
    tmp_path: Path,
    world: World,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bug hit while measuring one target (here: one planted in ``measure_target``) is stored as
    that target's ``unknown_failure`` with no blocking verdict, logged with its traceback,
    and every other target is measured and stored."""
    monkeypatch.delenv("PROBE_STRICT")
    real = round_mod.measure_target

    async def buggy(shared, helper, target, **kw):  # type: ignore[no-untyped-def]
        if target.name == "blocked":
            raise KeyError("planted bug")
        return await real(shared, helper, target, **kw)

    monkeypatch.setattr(round_mod, "measure_target", buggy)
    p, db = mixed_targets(tmp_path, world), tmp_path / "r.db"
    bad = ("example", "0177", "exa mple")
    p.write_text("\n".join(x for x in p.read_text().splitlines() if not any(b in x for b in bad)))
    with caplog.at_level(logging.ERROR, logger="probe.round"):
        code, _, err = run_cli(run_args(world, p, db), capsys)
    assert code == 0, err
    rows = stored(db)
    assert set(rows) == {"news", "blocked", "ctl"} and rows["news"]["accessible"] == 1
    bad = rows["blocked"]
    assert bad["failure"] == "unknown_failure: KeyError: 'planted bug'"
    assert bad["blocking"] is None and bad["accessible"] is None
    assert json.loads(str(bad["extra"]))["internal_error"] == bad["failure"]
    (rec,) = [r for r in caplog.records if "blocked" in r.getMessage()]
    assert rec.exc_info is not None and rec.exc_info[0] is KeyError
    (r,) = rounds(db)
    assert r["finished_at"] and r["targets"] == 3


def test_strict_mode_lets_a_bug_surface(
    tmp_path: Path,
    world: World,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def buggy(*a: object, **kw: object) -> None:
        raise KeyError("planted bug")

    monkeypatch.setattr(round_mod, "measure_target", buggy)
    p, db = tmp_path / "t.yaml", tmp_path / "r.db"
    p.write_text(f"targets:\n  - {{name: a, url: '{world.http('news.test')}'}}\n")
    code, _, err = run_cli(run_args(world, p, db), capsys)
    assert code == 1 and "internal error: KeyError" in err


# -- item 11: bad flag values are one line, exit 2 --------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--timeout", "nan"], "--timeout: 'nan' is not a number"),
        (["--timeout", "inf"], "--timeout"),
        (["--deadline", "nan"], "--deadline: 'nan' is not a number"),
        (["--deadline", "-1"], "--deadline"),
        (["--helper", "http://[::1"], "--helper: 'http://[::1'"),
        (
            ["--helper", "https://helper.example:70000/"],
            "--helper: 'https://helper.example:70000/'",
        ),
        (["--helper", "http://0177.0.0.1/"], "--helper"),
        (["--helper-bulk-address", "not-ip"], "--helper-bulk-address: 'not-ip' is not an IP"),
        (["--max-bytes-per-day", "\u00b2"], "--max-bytes-per-day: '\u00b2' is not a size"),
        (["--max-bytes-per-day", "1e999"], "--max-bytes-per-day"),
        (["--concurrency", "\u0661\u0662"], "--concurrency"),  # Arabic-Indic digits
        (["--throughput-seconds", "nan"], "--throughput-seconds"),
        (["--ca-bundle", "GARBAGE"], "--ca-bundle GARBAGE: not a PEM file of certificates"),
        (["--ca-bundle", "/nonexistent.pem"], "--ca-bundle /nonexistent.pem: cannot read"),
        (["--helper-token-file", "/nonexistent"], "/nonexistent: cannot read the token"),
    ],
)
def test_bad_flag_values_are_one_line(
    args: list[str],
    message: str,
    tmp_path: Path,
    world: World,
    capsys: pytest.CaptureFixture[str],
) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text(
        "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n"
    )
    args = [str(garbage) if a == "GARBAGE" else a for a in args]
    message = message.replace("GARBAGE", str(garbage))
    p, db = tmp_path / "t.yaml", tmp_path / "r.db"
    p.write_text(f"targets:\n  - {{name: a, url: '{world.http('news.test')}'}}\n")
    base = run_args(world, p, db)
    base.remove("--ca-bundle")
    base.remove(world.ca_pem)
    code, _, err = run_cli([*base, *args], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("probe: error: "), err
    assert message in err
    assert not db.exists()  # checked before a byte is written


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PROBE_TIMEOUT": "nan"}, "PROBE_TIMEOUT: 'nan'"),
        ({"PROBE_HELPER": "http://[::1"}, "PROBE_HELPER"),
        ({"PROBE_MAX_BYTES_PER_DAY": "\u00b2"}, "PROBE_MAX_BYTES_PER_DAY"),
    ],
)
def test_bad_environment_values_are_one_line(
    env: dict[str, str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    code, _, err = run_cli(["config"], capsys)
    assert code == 2 and err.count("\n") == 1 and message in err


# -- item 10: hostile files to import --------------------------------------------------------
QA = Path(__file__).parent / "fixtures" / "ooni-qa"


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


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"url,category_code\nhttps://caf\xe9.example/,NEWS\n", "l.csv:2: not UTF-8"),
        (b"url,notes\nhttps://a.example/," + b"n" * 200_000 + b"\n", "l.csv:2: field larger"),
        (b"url\nhttps://a.example/\x00\n", "l.csv:2: url: "),
    ],
    ids=["latin-1", "huge-field", "nul"],
)
def test_targets_import_hostile_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: bytes, reason: str
) -> None:
    src = tmp_path / "l.csv"
    src.write_bytes(data)
    code, out, err = run_cli(["targets", "import", str(src)], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1 and reason in err, err


def test_targets_import_oversized_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "l.csv"
    with src.open("wb") as fh:
        fh.write(b"url\n")
        fh.truncate(17 * 2**20)
    code, _, err = run_cli(["targets", "import", str(src)], capsys)
    assert code == 2 and err.count("\n") == 1 and "l.csv: larger than 16 MiB" in err


# -- item 12: rough edges ----------------------------------------------------------------------
@pytest.mark.parametrize("group", [[], ["targets"], ["helper"]])
def test_bare_group_prints_its_help(group: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(group, capsys)
    code_help, out_help, _ = run_cli([*group, "--help"], capsys)
    assert (code, err) == (0, "") and out == out_help and code_help == 0
    assert out.startswith("Usage: probe") and out.count("\n") > 5
