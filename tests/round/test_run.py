"""A round over hostile input (issue 10): one bad URL never stops a round, a file that cannot
be used writes nothing, and a bug hit while measuring one target is that target's failure.

Runs ``probe run`` in-process against the loopback world of ``tests/world.py``.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import pytest

from probe.round import run as round_mod
from tests.runs import mixed_targets, run_args, run_cli
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
