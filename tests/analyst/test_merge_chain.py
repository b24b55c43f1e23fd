"""``probe merge`` carries the chain (issue 22): two real devices' databases (rounds against the
loopback world, each with its own key) merge into a fleet database that ``probe verify``
verifies device by device; a source whose chain was tampered with is named per device in the
merge's line, its measurements are merged as stored and marked unverified, and the fleet's own
verification names the same measurements."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import zipfile
from pathlib import Path

import pytest

from probe.analyst.bundle_verifier import TOP
from probe.evidence import heads
from probe.evidence.keys import key_path, load_key
from tests.analyst.test_merge_hostile import _fleet_works
from tests.evidence.chained import (
    NEW,
    OLD,
    checkpoint,
    dated_db,
    rechain,
    rounds_db,
    rows,
    sql,
    standalone,
)
from tests.runs import run_fresh
from tests.world import World


@pytest.fixture(scope="module")
def devices(world: World, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two volunteers' databases: two real rounds each, each made with its own device key."""
    return (
        rounds_db(world, tmp_path_factory.mktemp("hanoi"), "hanoi.db"),
        rounds_db(world, tmp_path_factory.mktemp("saigon"), "saigon.db"),
    )


def _copies(devices: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    out = []
    for db in devices:
        shutil.copy(db, tmp_path / db.name)
        out.append(tmp_path / db.name)
    return out[0], out[1]


def _key(db: Path) -> str:
    return str(rows(db)[0]["device_key"])


def _merge(capsys: pytest.CaptureFixture[str], *args: str | Path) -> str:
    code, out, err = run_fresh(["merge", *map(str, args)], capsys)
    assert code == 0, err
    return out


def _verify(fleet: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code, out, _ = run_fresh(["verify", str(fleet)], capsys)
    return code, out.splitlines()


def _table(fleet: Path, sql_text: str) -> list[tuple[object, ...]]:
    con = sqlite3.connect(fleet)
    try:
        return list(con.execute(sql_text))
    finally:
        con.close()


def test_two_devices_merge_and_both_chains_verify_in_the_fleet(
    devices: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = _copies(devices, tmp_path)
    fleet = tmp_path / "fleet.db"
    out = _merge(capsys, a, b, "-o", fleet)
    for db in (a, b):
        assert f"device {_key(db)}: its chain verifies (6 measurements, 3 signed heads)" in out
    code, lines = _verify(fleet, capsys)
    assert code == 0, lines
    assert any("whole: 12 measurements in 2 chains" in line for line in lines), lines
    for db in (a, b):
        assert any(
            line.startswith(f"device {_key(db)}: seq 1..6, 3 signed heads") for line in lines
        )
    chained = ("device_key", "seq", "chain_prev", "record_hash", "chain_hash", "body_digests")
    for db in (a, b):  # every chain column and every head, as the device stored them
        want = {r["id"]: tuple(r[c] for c in chained) for r in rows(db)}
        got = {r["id"]: tuple(r[c] for c in chained) for r in rows(fleet) if r["id"] in want}
        assert got == want
    heads = "SELECT * FROM chain_heads ORDER BY device_key, kind, label"
    assert _table(fleet, heads) == sorted(_table(a, heads) + _table(b, heads))
    assert _table(fleet, "SELECT count(*) FROM unverified_measurements") == [(0,)]
    before = _table(fleet, "SELECT * FROM measurements ORDER BY id")
    out = _merge(capsys, b, a, "-o", fleet)  # again: nothing changes, both still verify
    assert out.count("0 measurements added, 6 already there, 0 quarantined") == 2
    assert _table(fleet, "SELECT * FROM measurements ORDER BY id") == before
    assert _table(fleet, heads) == sorted(_table(a, heads) + _table(b, heads))
    assert _verify(fleet, capsys)[0] == 0


def test_a_day_head_signed_again_later_keeps_its_later_place(
    devices: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A volunteer's database handed over twice: the day's head of the first copy is for an
    earlier place than the second's; the fleet keeps the later one, whatever the order."""
    a, _ = _copies(devices, tmp_path)
    early = tmp_path / "early.db"
    shutil.copy(a, early)
    sql(early, "DELETE FROM measurements WHERE seq > 3", "DELETE FROM chain_heads WHERE seq > 3")
    # the day's head as the device signed it at the first round's end
    (first,) = [h for h in rows(a, "chain_heads", "seq") if h["kind"] == "round" and h["seq"] == 3]
    day = next(h for h in rows(a, "chain_heads", "seq") if h["kind"] == "day")
    statement, signature = heads.sign(
        load_key(key_path(devices[0])), 3, first["chain_hash"], first["at"], heads.DAY
    )
    sql(
        early,
        (
            "INSERT INTO chain_heads VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [day["device_key"], "day", day["label"], 3, first["chain_hash"], first["at"],
             statement.decode(), signature],
        ),
    )  # fmt: skip
    day_seq = "SELECT seq FROM chain_heads WHERE kind = 'day'"
    assert _table(early, day_seq) == [(3,)] and _table(a, day_seq) == [(6,)]
    assert _verify(early, capsys)[0] == 0
    for order in ((early, a), (a, early)):
        fleet = tmp_path / f"fleet-{order[0].stem}.db"
        _merge(capsys, *order, "-o", fleet)
        assert _table(fleet, day_seq) == [(6,)]
        assert _verify(fleet, capsys)[0] == 0


# case: (the statements that tamper with the third measurement's chain, the kinds expected)
TAMPER = {
    "altered": (["UPDATE measurements SET url = url || '?x' WHERE seq = 3"], {"altered": 1}),
    # named by its successor's link and by the first round's signed head
    "removed": (["DELETE FROM measurements WHERE seq = 3"], {"removed": 2}),
    "inserted": (
        [
            "CREATE TEMP TABLE t AS SELECT * FROM measurements WHERE seq = 3",
            "UPDATE t SET id = 'forged', seq = NULL, chain_hash = NULL, record_hash = NULL, "
            "chain_prev = NULL",
            "INSERT INTO measurements SELECT * FROM t",
        ],
        {"inserted": 1},
    ),
    "reordered": (
        [
            "UPDATE measurements SET seq = -1 WHERE seq = 3",
            "UPDATE measurements SET seq = 3 WHERE seq = 4",
            "UPDATE measurements SET seq = 4 WHERE seq = -1",
        ],
        {"reordered": 2},
    ),
}


@pytest.mark.parametrize("case", sorted(TAMPER))
def test_a_tampered_chain_is_named_per_device_and_its_rows_marked_unverified(
    devices: tuple[Path, Path],
    tmp_path: Path,
    case: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    statements, kinds = TAMPER[case]
    hostile, honest = _copies(devices, tmp_path)
    named = str(next(r["id"] for r in rows(hostile) if r["seq"] == 3))
    sql(hostile, *statements)
    key, good = _key(hostile), _key(honest)
    fleet = tmp_path / "fleet.db"
    out = _merge(capsys, hostile, honest, "-o", fleet)
    who = (
        f"device {key}: its chain does not verify"
        if case != "inserted"
        else ("measurements in no chain")
    )
    (note,) = [n for n in out.split("; ") if who in n]
    assert re.search(rf"\(.*\b{kinds[case]} {case}\b.*\): merged as stored", note), out
    assert f"device {good}: its chain verifies (6 measurements" in out
    subjects = "forged" if case == "inserted" else named
    problems = _table(fleet, "SELECT device_key, subject, kind, source FROM chain_problems")
    assert (key if case != "inserted" else "", subjects, case) in [p[:3] for p in problems]
    assert all(p[0] != good for p in problems)
    flagged = {str(r[0]) for r in _table(fleet, "SELECT id FROM unverified_measurements")}
    merged_hostile = {str(r["id"]) for r in rows(hostile, order="id")}
    if case == "inserted":
        assert flagged == {"forged"}
    else:  # every measurement of the device whose chain failed, and none of the other's
        assert flagged == merged_hostile
    # The fleet's own verification names the same measurement, and nothing of the other.
    code, lines = _verify(fleet, capsys)
    assert code == 1
    assert any(line.startswith(f"{subjects}: {case}:") for line in lines), lines
    honest_ids = {str(r["id"]) for r in rows(honest)}
    assert not any(line.split(":")[0] in honest_ids for line in lines)
    assert any(line.startswith(f"device {good}: seq 1..6, 3 signed heads") for line in lines)


def test_a_device_chain_rewritten_whole_is_caught_by_its_heads_in_the_fleet(
    devices: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every hash and link recomputed after an alteration: the merge and the fleet both say
    the chain is not what the device signed."""
    from probe.evidence import canonical

    hostile, honest = _copies(devices, tmp_path)
    sql(hostile, "UPDATE measurements SET url = url || '?x' WHERE seq = 2")
    prev, prev_id = canonical.GENESIS, None
    for r in rows(hostile):
        rh = canonical.record_hash(r)
        prev = canonical.link(prev, rh)
        sql(
            hostile,
            (
                "UPDATE measurements SET record_hash = ?, chain_hash = ?, chain_prev = ? "
                "WHERE id = ?",
                [rh, prev, prev_id, r["id"]],
            ),
        )
        prev_id = r["id"]
    fleet = tmp_path / "fleet.db"
    out = _merge(capsys, hostile, honest, "-o", fleet)
    assert f"device {_key(hostile)}: its chain does not verify (" in out
    assert "not as signed" in out
    code, lines = _verify(fleet, capsys)
    assert code == 1 and any(": not as signed:" in line for line in lines), lines


def test_a_claim_to_a_signed_place_loses_to_the_devices_own(
    devices: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file that copies a device's database and puts other measurements in two places of
    its chain: the device signed its own (its heads commit to them), so its own stay in the
    fleet whichever file is merged first, and the squatter's are quarantined."""
    honest, other = _copies(devices, tmp_path)
    squatter = tmp_path / "squatter.db"
    shutil.copy(honest, squatter)
    sql(squatter, "UPDATE measurements SET id = id || '-s' WHERE seq IN (5, 6)")
    said = {
        (honest, squatter): ("6 measurements added, 0 already there, 0 quarantined",
                             "0 measurements added, 4 already there, 2 quarantined"),
        (squatter, honest): ("6 measurements added, 0 already there, 0 quarantined",
                             "2 measurements added, 4 already there, 0 quarantined"),
    }  # fmt: skip
    for order, (first, second) in said.items():
        fleet = tmp_path / f"fleet-{order[0].stem}.db"
        lines = _merge(capsys, *order, other, "-o", fleet).splitlines()
        assert first in lines[0] and second in lines[1], lines
        if order[0] == squatter:
            assert "2 measurements merged before taken out" in lines[1]
        ids = {str(r["id"]) for r in rows(fleet)}
        assert {str(r["id"]) for r in rows(honest)} <= ids
        assert not any(i.endswith("-s") for i in ids)
        lost = _table(fleet, "SELECT row_id, reason FROM quarantine WHERE tbl = 'measurements'")
        assert {str(r[0]) for r in lost} == {f"{r['id']}-s" for r in rows(honest) if r["seq"] > 4}
        assert all("which its device signed" in str(r[1]) for r in lost)
        assert _table(fleet, "SELECT count(*) FROM unverified_measurements") == [(0,)]
        code, verified = _verify(fleet, capsys)
        assert code == 0, verified
    _fleet_works(fleet, capsys)


def test_two_signed_claims_to_one_place_are_held_by_neither(
    devices: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The device's own chain forked (a database restored from a backup, then measured on):
    two claims to one place, both signed by its key. Without a third witness neither stays,
    both are named, a later merge keeps the places out, and the fleet says them removed."""
    honest, other = _copies(devices, tmp_path)
    fork = tmp_path / "fork.db"
    shutil.copy(honest, fork)
    sql(fork, "UPDATE measurements SET id = id || '-f' WHERE seq IN (5, 6)")
    rechain(fork, load_key(key_path(devices[0])))  # signed again by the device's own key
    fleet = tmp_path / "fleet.db"
    out = _merge(capsys, honest, fork, other, "-o", fleet)
    assert f"device {_key(fork)}: its chain verifies (6 measurements" in out.splitlines()[1]
    ids = {str(r["id"]) for r in rows(fleet)}
    for r in rows(honest):
        assert (str(r["id"]) in ids) == (r["seq"] <= 4)
    assert not any(i.endswith("-f") for i in ids)
    disputed = _table(fleet, "SELECT row_id FROM quarantine WHERE tbl = 'chain'")
    assert {str(d[0]).rsplit(":", 1)[1] for d in disputed} == {"5", "6"}
    out = _merge(capsys, honest, "-o", fleet)  # kept out
    assert "0 measurements added, 4 already there, 2 quarantined" in out
    code, verified = _verify(fleet, capsys)
    assert code == 1
    assert any(": removed:" in line and "signed head" in line for line in verified)
    assert any(line.startswith(f"device {_key(other)}: seq 1..6") for line in verified)


def test_a_pruned_source_merges_and_its_prune_is_carried(
    devices: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A volunteer who pruned: the signed record of the prune goes into the fleet with the
    chain, so the fleet's verification says pruned too, not removed."""
    pruned = dated_db(tmp_path / "pruned.db", [("success_http", OLD)] * 2 + [("success_http", NEW)])
    code, _, err = run_fresh(
        ["prune", "--db", str(pruned), "--older-than", "180d", "--yes"], capsys
    )
    assert code == 0, err
    checkpoint(pruned)  # the merge reads the file alone, never its -wal (the CLI ran in-process)
    fleet = tmp_path / "fleet.db"
    out = _merge(capsys, pruned, _copies(devices, tmp_path)[1], "-o", fleet)
    assert f"device {_key(pruned)}: its chain verifies (1 measurements" in out
    assert len(rows(fleet, "chain_pruned", "first_seq")) == 1
    code, lines = _verify(fleet, capsys)
    assert code == 0, lines
    assert "2 measurements pruned from 1 chain, as their devices recorded and signed" in lines


def test_a_fleet_bundle_of_two_devices_verifies_without_the_database(
    devices: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = _copies(devices, tmp_path)
    fleet = tmp_path / "fleet.db"
    _merge(capsys, a, b, "-o", fleet)
    made = tmp_path / "made" / "evidence.zip"
    made.parent.mkdir()
    code, _, err = run_fresh(
        ["evidence", "--db", str(fleet), "--target", "blocked", "-o", str(made)], capsys
    )
    assert code == 0, err
    # Only the zip goes to the other machine: no database, no key, no checkout.
    away = tmp_path / "elsewhere"
    away.mkdir()
    bundle = away / "evidence.zip"
    shutil.copy(made, bundle)
    for db in (a, b, fleet):
        db.unlink()
    with zipfile.ZipFile(bundle) as z:
        manifest = json.loads(z.read(f"{TOP}/bundle.json"))
    assert sorted(manifest["devices"]) == sorted({_key(devices[0]), _key(devices[1])})
    assert len(manifest["measurements"]) == 4  # blocked, in two rounds, on two devices
    code, out, err = run_fresh(["verify", "--bundle", str(bundle)], capsys)
    assert code == 0, out + err
    assert "whole: 4 measurements, each tied to a signed head" in out
    done = standalone(bundle, tmp_path / "unzipped")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "whole: 4 measurements, each tied to a signed head" in done.stdout


def test_a_chain_table_that_is_a_view_is_not_read_and_the_chain_not_trusted(
    devices: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = _copies(devices, tmp_path)
    sql(
        a,
        "ALTER TABLE chain_heads RENAME TO heads_kept",
        "CREATE VIEW chain_heads AS SELECT * FROM heads_kept",
    )
    fleet = tmp_path / "fleet.db"
    out = _merge(capsys, a, b, "-o", fleet)
    line = next(line for line in out.splitlines() if line.startswith(str(a)))
    assert "its chain was not verified: a table of its chain" in line, out
    assert "is not a plain table; merged, marked unverified" in line
    flagged = {str(r[0]) for r in _table(fleet, "SELECT id FROM unverified_measurements")}
    assert flagged == {str(r["id"]) for r in rows(a)}
    assert all(str(h[0]) != _key(a) for h in _table(fleet, "SELECT device_key FROM chain_heads"))
    # Whole as the fleet holds it (linked, its heads left out: unsigned), and it says which
    # measurements came from a source whose chain did not verify.
    code, lines = _verify(fleet, capsys)
    assert code == 0, lines
    assert "6 measurements merged from sources whose chains did not verify there" in " ".join(
        lines
    ), lines
    assert any(f"device {_key(a)}: seq 1..6 linked after its last signed head" in x for x in lines)
