"""probe merge trusts nothing (issue 22): hostile sources, built from a real database (a round
against the loopback world) and tampered with through sqlite3, never break the fleet database.

After each hostile merge the fleet database is whole (``PRAGMA integrity_check``), its views
answer, every export format, the report and ``reclassify`` work on it (through the CLI), the
honest volunteer's verdicts are what they were, and what was refused is in ``quarantine`` with
its reason. The cases: malformed rows (wrong types, bad JSON, absurd sizes), a forged body, a
squatted measurement id, triggers and views planted in an older schema, oversized blobs.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import zlib
from pathlib import Path

import pytest

from probe.analyst.export import FORMATS
from probe.analyst.merge import Caps, merge
from probe.store import Store, migrations
from tests.dbs import SCENARIOS, golden_db, measurement
from tests.evidence.chained import rechain
from tests.runs import run_args, run_fresh
from tests.world import World

from probe.store._lazy import without_numpy  # isort: skip

with without_numpy():
    from sqlite_utils import Database

VIEWS = (
    "verdicts",
    "dns_queries",
    "tcp_connects",
    "tls_handshakes",
    "http_requests",
    "throughput_tests",
    "daily_blocking",
)


@pytest.fixture(scope="module")
def real(world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real volunteer's database: one round against the loopback world (a news page that
    works, one blocked by DNS, a page larger than the stored prefix, a control)."""
    tmp = tmp_path_factory.mktemp("real")
    targets = tmp / "targets.yaml"
    targets.write_text(
        "targets:\n"
        f"  - {{name: news, url: '{world.http('news.test')}'}}\n"
        f"  - {{name: blocked, url: '{world.http('blocked.test')}'}}\n"
        f"  - {{name: big, url: '{world.http('big.test', '/large')}'}}\n"
        "controls:\n"
        f"  - {{name: ctl, url: '{world.https('news.test')}'}}\n",
        encoding="utf-8",
    )
    db = tmp / "volunteer.db"
    from probe.cli import main

    assert main(run_args(world, targets, db)) == 0
    return db


def _copy(src: Path, dest: Path) -> Path:
    """A consistent copy (no -wal beside it), as a volunteer would hand it over."""
    a, b = sqlite3.connect(src), sqlite3.connect(dest)
    try:
        a.backup(b)
    finally:
        a.close()
        b.close()
    return dest


def _tamper(path: Path, *sql: str) -> Path:
    con = sqlite3.connect(path)
    try:
        for statement in sql:
            con.execute(statement)
        con.commit()
    finally:
        con.close()
    return path


def _other_device(real: Path, dest: Path, device: str = "dev-mallory", suffix: str = "-m") -> Path:
    """Another device's database: the real one with fresh ids, its own device id and its own
    device key (its chain made again with it)."""
    _copy(real, dest)
    _tamper(
        dest,
        f"UPDATE meta SET value = '{device}' WHERE key = 'device_id'",
        f"UPDATE measurements SET id = id || '{suffix}', device_id = '{device}'",
    )
    rechain(dest)
    return dest


def _verdicts(path: Path) -> dict[str, tuple[object, ...]]:
    con = sqlite3.connect(path)
    try:
        return {
            r[0]: tuple(r[1:])
            for r in con.execute(
                "SELECT id, blocking, accessible, blockpage, rule_id FROM measurements"
            )
        }
    finally:
        con.close()


def _quarantine(path: Path) -> list[tuple[str, str, str, str]]:
    con = sqlite3.connect(path)
    try:
        return list(con.execute("SELECT source, tbl, row_id, reason FROM quarantine ORDER BY 1, 3"))
    except sqlite3.OperationalError:
        return []  # no quarantine table: nothing was quarantined (today's merge)
    finally:
        con.close()


def _by_target(path: Path, target: str) -> str:
    con = sqlite3.connect(path)
    try:
        return str(
            con.execute("SELECT id FROM measurements WHERE target = ?", [target]).fetchone()[0]
        )
    finally:
        con.close()


def _fleet_works(fleet: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """The fleet database is whole and every view of it works: the SQL views, every export
    format, the report and reclassify (last: it writes). Returns reclassify's line."""
    con = sqlite3.connect(fleet)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        for view in VIEWS:
            con.execute(f"SELECT * FROM {view}").fetchall()
    finally:
        con.close()
    out_dir = fleet.parent / f"{fleet.stem}-views"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir()
    for fmt in FORMATS:
        dest = out_dir / f"export.{fmt}"
        code, _, err = run_fresh(
            ["export", "--db", str(fleet), "--format", fmt, "-o", str(dest)], capsys
        )
        assert code == 0, f"export --format {fmt}: {err}"
    code, _, err = run_fresh(
        ["report", "--db", str(fleet), "-o", str(out_dir / "report.html")], capsys
    )
    assert code == 0, f"report: {err}"
    code, out, err = run_fresh(["reclassify", "--db", str(fleet)], capsys)
    assert code == 0, f"reclassify: {err}"
    return out


def _merge(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code, out, err = run_fresh(["merge", *args], capsys)
    assert code == 0, err
    return out


# -- malformed rows: one bad row is quarantined with its reason, the rest merged ---------------
FIRST = "rowid = (SELECT min(rowid) FROM measurements WHERE target = 'news')"
# case: (what the news row's columns are set to, the field its reason names)
OBS = "observations = json_set(observations, "
MALFORMED = {
    "is_control as text": ("is_control = 'yes'", "is_control"),
    "started_at not a time": ("started_at = 'yesterday'", "started_at"),
    "started_at a path": ("started_at = '../../../../tmp/x'", "started_at"),
    "observations not JSON": ("""observations = '{"url": '""", "observations"),
    "observations a list": ("observations = '[1, 2]'", "observations"),
    "a step of the wrong type": (OBS + "'$.http', 'x')", "observations"),
    "a port out of range": (OBS + "'$.tcp[0].port', 99999999999999999999)", "observations"),
    "an unknown field": (OBS + "'$.tcp[0].planted', json('[1, \"a\"]'))", "planted"),
    "a body inside the record": (OBS + "'$.http[0].body', 'blocked!')", "body"),
    "control the wrong shape": ("""control = '{"tcp_connect": 5}'""", "control"),
    "throughput the wrong shape": ("""throughput = '{"flows": 7}'""", "throughput"),
    "extra a list": ("extra = '[1]'", "extra"),
    "runtime as text": ("runtime = 'fast'", "runtime"),
    "runtime infinite": ("runtime = 1e999", "runtime"),
    "a blob id": ("id = X'00ff'", "id"),
    "a blob target": ("target = X'ff00'", "target"),
    "a target that is not UTF-8": ("target = CAST(X'ff00' AS TEXT)", "target"),
    "a verdict that is no kind": ("blocking = '<script>x</script>'", "blocking"),
    "network_ok out of range": ("network_ok = 7", "network_ok"),
    "an absurd size": (OBS + "'$.url', hex(zeroblob(9000000)))", "size"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_row_is_quarantined_and_the_rest_merged(
    real: Path, tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assignment, field = MALFORMED[case]
    sql = f"UPDATE measurements SET {assignment} WHERE {FIRST}"
    honest = _copy(real, tmp_path / "honest.db")
    before = _verdicts(honest)
    bad_id = _by_target(honest, "news")
    hostile = _tamper(_other_device(real, tmp_path / "hostile.db", "dev-bad", "-b"), sql)
    fleet = tmp_path / "fleet.db"
    out = _merge([str(hostile), str(honest), "-o", str(fleet)], capsys)
    n = len(before)
    assert f"{hostile}: {n - 1} measurements added, 0 already there, 1 quarantined" in out
    assert f"{honest}: {n} measurements added, 0 already there, 0 quarantined" in out
    ((source, table, row_id, reason),) = _quarantine(fleet)
    assert (source, table) == ("dev-bad", "measurements")
    assert field in reason and len(reason) < 300
    if field != "id":
        assert row_id == bad_id + "-b"
    assert "0 verdicts changed" in _fleet_works(fleet, capsys)
    after = _verdicts(fleet)
    assert {k: after[k] for k in before} == before  # the honest volunteer's verdicts kept


# -- a forged body: another volunteer's page hash, another page's content -----------------------
def _blockpage_text(db: Path) -> bytes:
    con = sqlite3.connect(db)
    try:
        (data,) = con.execute(
            "SELECT data FROM bodies WHERE sha256 = (SELECT json_extract(observations, "
            "'$.http[0].body_sha256') FROM measurements WHERE target = 'blocked')"
        ).fetchone()
        return zlib.decompress(data)
    finally:
        con.close()


def _news_body(db: Path) -> str:
    con = sqlite3.connect(db)
    try:
        return str(
            con.execute(
                "SELECT json_extract(observations, '$.http[0].body_sha256') FROM measurements "
                "WHERE target = 'news'"
            ).fetchone()[0]
        )
    finally:
        con.close()


def _naming(db: Path, key: str) -> int:
    """How many measurements name the body ``key`` (a page fetched by several of them)."""
    con = sqlite3.connect(db)
    try:
        return int(
            con.execute(
                "SELECT count(*) FROM measurements WHERE instr(observations, ?)", [key]
            ).fetchone()[0]
        )
    finally:
        con.close()


def _forge(path: Path, key: str, content: bytes) -> None:
    con = sqlite3.connect(path)
    try:
        con.execute("DELETE FROM bodies WHERE sha256 = ?", [key])
        con.execute(
            "INSERT INTO bodies (sha256, length, stored, data) VALUES (?, ?, ?, ?)",
            [key, len(content), len(content), zlib.compress(content)],
        )
        con.commit()
    finally:
        con.close()


def test_a_forged_body_in_a_file_without_measurements_changes_no_verdict(
    real: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    honest = _copy(real, tmp_path / "honest.db")
    before = _verdicts(honest)
    key = _news_body(honest)
    forger = _other_device(real, tmp_path / "forger.db")
    _tamper(forger, "DELETE FROM measurements", "DELETE FROM rounds")
    _forge(forger, key, _blockpage_text(real))
    fleet = tmp_path / "fleet.db"
    out = _merge([str(forger), str(honest), "-o", str(fleet)], capsys)
    assert f"{forger}: 0 measurements added, 0 already there, " in out
    assert any(
        t == "bodies" and r == key and "no measurement" in why
        for _, t, r, why in _quarantine(fleet)
    )
    assert "0 verdicts changed" in _fleet_works(fleet, capsys)
    assert _verdicts(fleet) == before  # news is still accessible, not a blockpage
    fleet_store = Store.open(fleet)
    assert fleet_store.body(key) == Store.open(honest).body(key)


def test_a_forged_body_that_a_measurement_names_is_refused(
    real: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    honest = _copy(real, tmp_path / "honest.db")
    before = _verdicts(honest)
    key = _news_body(honest)
    forger = _other_device(real, tmp_path / "forger.db")
    _forge(forger, key, _blockpage_text(real))  # the forger's own news row names it
    fleet = tmp_path / "fleet.db"
    out = _merge([str(forger), str(honest), "-o", str(fleet)], capsys)
    k = _naming(forger, key)  # news, the control target and blocked's control fetch name it
    assert k == 3
    assert f"{forger}: {4 - k} measurements added, 0 already there, {k + 1} quarantined" in out
    reasons = {(t, r): why for _, t, r, why in _quarantine(fleet)}
    assert "does not match its SHA-256" in reasons["bodies", key]
    assert key in reasons["measurements", _by_target(honest, "news") + "-m"]
    assert key in reasons["measurements", _by_target(honest, "ctl") + "-m"]
    assert "0 verdicts changed" in _fleet_works(fleet, capsys)
    after = _verdicts(fleet)
    assert {k: after[k] for k in before} == before
    assert Store.open(fleet).body(key) == Store.open(honest).body(key)


def test_a_page_larger_than_its_stored_prefix_is_kept_and_cannot_be_swapped(
    real: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A body stored as a prefix (the page was larger) cannot hash to its key, honestly: it is
    kept, but a different content under the same key from another device is refused, never
    silently first-file-wins."""
    honest = _copy(real, tmp_path / "honest.db")
    con = sqlite3.connect(honest)
    (key,) = con.execute(
        "SELECT json_extract(observations, '$.http[0].body_sha256') FROM measurements "
        "WHERE target = 'big'"
    ).fetchone()
    con.close()
    forger = _other_device(real, tmp_path / "forger.db")
    _forge(forger, key, b"y" * 65536)
    fleet = tmp_path / "fleet.db"
    out = _merge([str(honest), str(forger), "-o", str(fleet)], capsys)
    assert f"{honest}: 4 measurements added, 0 already there, 0 quarantined" in out
    assert f"{forger}: 3 measurements added, 0 already there, 2 quarantined" in out
    reasons = {(t, r): why for _, t, r, why in _quarantine(fleet)}
    assert set(reasons) == {("bodies", key), ("measurements", _by_target(honest, "big") + "-m")}
    assert "another" in reasons["bodies", key]
    assert key in reasons["measurements", _by_target(honest, "big") + "-m"]
    assert Store.open(fleet).body(key) == Store.open(honest).body(key)
    _fleet_works(fleet, capsys)


# -- a squatted id: two devices claiming one measurement id -----------------------------------
def test_a_squatted_id_stays_with_the_device_that_signed_it(
    real: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The volunteer's device signed its measurement (a round's head covers it); a squatter's
    copy of the id with its verdict turned cannot be signed by that device: the volunteer's
    stays, whichever file is merged first, and the squatter's is quarantined."""
    honest = _copy(real, tmp_path / "honest.db")
    victim = _by_target(honest, "news")
    before = _verdicts(honest)[victim]
    squatter = _other_device(real, tmp_path / "squatter.db")
    _tamper(
        squatter,  # the squatter's copy of the victim's news row, with its verdict turned
        f"UPDATE measurements SET id = '{victim}', blocking = 'http-diff', accessible = 0 "
        "WHERE target = 'news'",
    )
    said = {
        (honest, squatter): (f"{squatter}: 3 measurements added, 0 already there, 1 quarantined"),
        (squatter, honest): (f"{honest}: 4 measurements added, 0 already there, 0 quarantined"),
    }
    for order, line in said.items():
        fleet = tmp_path / f"fleet-{order[0].stem}.db"
        out = _merge([*map(str, order), "-o", str(fleet)], capsys)
        assert line in out, out
        claims = {(s, r, why) for s, t, r, why in _quarantine(fleet) if t == "measurements"}
        assert [(s, r) for s, r, _ in claims] == [("dev-mallory", victim)]  # the squatter's
        assert all("which" in why and "signed" in why for _, _, why in claims)
        assert _verdicts(fleet)[victim] == before  # the volunteer's measurement, as it was
        out = _merge([str(honest), "-o", str(fleet)], capsys)  # again: already there
        assert "0 measurements added, 4 already there, 0 quarantined" in out
        _fleet_works(fleet, capsys)


def test_a_measurement_id_two_unsigned_claims_name_is_held_by_neither(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without a signed head over either claim, the merge cannot tell the squatter from the
    victim: neither claim stays, both are named, and later merges keep the id out."""
    dbs = []
    for device in ("dev-a", "dev-b"):
        store = Store.open(tmp_path / f"{device}.db")  # saved, never a round's end: unsigned
        store.save(measurement("success_http", "shared", device_id=device))
        store.save(measurement("success_http", f"own-{device}", device_id=device))
        store.close()
        dbs.append(tmp_path / f"{device}.db")
    fleet = tmp_path / "fleet.db"
    out = _merge([*map(str, dbs), "-o", str(fleet)], capsys)
    assert f"{dbs[1]}: 1 measurements added, 0 already there, 1 quarantined" in out
    claims = [(s, r) for s, t, r, _ in _quarantine(fleet) if t == "measurements"]
    assert len(claims) == 2 and {r for _, r in claims} == {"shared"}  # both claims named
    assert "dev-a" in {s for s, _ in claims}
    assert "shared" not in _verdicts(fleet)
    out = _merge([str(dbs[0]), "-o", str(fleet)], capsys)
    assert "0 measurements added, 1 already there, 1 quarantined" in out
    assert "shared" not in _verdicts(fleet)


def test_one_device_merged_twice_is_already_there_not_a_clash(
    real: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    honest = _copy(real, tmp_path / "honest.db")
    fleet = tmp_path / "fleet.db"
    _merge([str(honest), "-o", str(fleet)], capsys)
    # The volunteer reclassified since: verdicts differ, the measured facts do not.
    _tamper(honest, "UPDATE measurements SET rules_version = 'newer'")
    out = _merge([str(honest), str(honest), "-o", str(fleet)], capsys)
    assert out.count("0 measurements added, 4 already there, 0 quarantined") == 2
    assert _quarantine(fleet) == []


# -- an older schema with triggers and views planted in it -----------------------------------
def _older(path: Path) -> Path:
    """A database made by a probe at schema m002 (before m003 scrubbed header values)."""
    db = Database(str(path))
    migrations.apply(db, stop_before="m003_one_record_of_observations")
    old = Store(db, str(path))
    old.save(measurement("dns_blockpage_address", "m1", device_id=None))
    old.save(measurement("success_http", "m2", device_id=None))
    db.table("meta").insert({"key": "device_id", "value": "dev-old"})
    db.execute(  # an older probe kept this header verbatim; m003 scrubs it
        "UPDATE measurements SET observations = json_insert(observations, "
        "'$.http[0].headers[#]', json_array('Via', 'proxy for 203.0.113.9'))"
    )
    db.close()
    return path


PLANTED = {
    "a trigger on the migration's update": (
        "CREATE TRIGGER planted AFTER UPDATE ON measurements BEGIN "
        "INSERT INTO measurements (id, target, url, started_at, observations, is_control) "
        "VALUES ('planted-' || NEW.id, 'planted', 'http://planted.test/', "
        "'2026-11-01T00:00:00.000Z', '{\"url\": \"http://planted.test/\"}', 0); END"
    ),
    "a trigger on the migrations table": (
        "CREATE TRIGGER planted AFTER INSERT ON _sqlite_migrations BEGIN "
        "UPDATE measurements SET blocking = 'http-diff', accessible = 0; "
        "INSERT OR IGNORE INTO measurements (id, target, url, started_at, observations, "
        "is_control) VALUES ('planted-' || NEW.name, 'planted', 'http://planted.test/', "
        "'2026-11-01T00:00:00.000Z', '{\"url\": \"http://planted.test/\"}', 0); END"
    ),
    "a view and a trigger beside the tables": (
        "CREATE VIEW planted_view AS SELECT zeroblob(100000000) AS x",
        "CREATE TRIGGER planted_bodies BEFORE INSERT ON bodies BEGIN "
        "SELECT RAISE(ABORT, 'planted'); END",
    ),
}


@pytest.mark.parametrize("case", sorted(PLANTED))
def test_nothing_planted_in_an_older_schema_runs(
    tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _older(tmp_path / "v2.db")
    plant = PLANTED[case]
    _tamper(path, *([plant] if isinstance(plant, str) else plant))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    fleet = tmp_path / "fleet.db"
    out = _merge([str(path), "-o", str(fleet)], capsys)
    assert "2 measurements added" in out and "an older schema" in out
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest  # the source untouched
    assert {p.name for p in tmp_path.iterdir()} <= {
        "v2.db",
        "fleet.db",
        "fleet.db-wal",
        "fleet.db-shm",
    }
    store = Store.open(fleet)
    rows = {r["id"]: r for r in store.rows()}
    assert set(rows) == {"m1", "m2"}  # nothing a trigger inserted
    assert rows["m2"]["blocking"] == "false" and rows["m1"]["device_id"] == "dev-old"
    for row in rows.values():  # m003's scrub, done by the merge
        assert "203.0.113.9" not in row["observations"]
        assert '["Via", "proxy for [scrubbed]"]' in row["observations"]
    store.close()
    _fleet_works(fleet, capsys)


NOT_TABLES = {
    "a view for measurements": (
        ("ALTER TABLE measurements RENAME TO m", "CREATE VIEW measurements AS SELECT * FROM m"),
        "not a probe database (measurements is not a table)",
    ),
    "a computed column": (
        (
            "ALTER TABLE bodies RENAME TO b",
            "CREATE TABLE bodies (sha256 TEXT PRIMARY KEY, length INT, stored INT, "
            "data BLOB GENERATED ALWAYS AS (zeroblob(2000000)))",
        ),
        "not a probe database (bodies.data is computed, not stored)",
    ),
    "a view where rounds were": (
        (
            "DROP TABLE rounds",
            "CREATE VIEW rounds AS SELECT 'planted-round' AS id, 'dev-x' AS device_id, "
            "zeroblob(100000000) AS software",
        ),
        "not a probe database (rounds is not a table)",
    ),
    "a virtual table": (
        ("DROP TABLE rounds", "CREATE VIRTUAL TABLE rounds USING fts5(id, device_id)"),
        "not a probe database (rounds is not a table)",
    ),
}


@pytest.mark.parametrize("case", sorted(NOT_TABLES))
def test_known_tables_that_are_not_plain_tables_are_refused(
    tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reading them would run the source's SQL (a view's, a computed column's, a virtual
    table's module): the source is refused before anything is written."""
    path = _older(tmp_path / "v2.db")
    good = golden_db(tmp_path / "good.db", days=1)
    sql, message = NOT_TABLES[case]
    _tamper(path, *sql)
    code, _, err = run_fresh(["merge", str(good), str(path), "-o", str(tmp_path / "f.db")], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert f"{path}: {message}" in err
    assert not (tmp_path / "f.db").exists()


# -- oversized blobs, and the caps ------------------------------------------------------------
def test_a_compressed_body_bomb_is_refused_without_inflating_it(
    real: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    honest = _copy(real, tmp_path / "honest.db")
    key = _news_body(honest)
    bomber = _other_device(real, tmp_path / "bomber.db")
    bomb = zlib.compress(bytes(64 * 1024 * 1024), 9)  # 64 MiB of zeros in 64 KiB
    _tamper(bomber, f"UPDATE bodies SET data = X'{bomb.hex()}' WHERE sha256 = '{key}'")
    fleet = tmp_path / "fleet.db"
    out = _merge([str(bomber), str(honest), "-o", str(fleet)], capsys)
    k = _naming(bomber, key)
    assert f"{bomber}: {4 - k} measurements added, 0 already there, {k + 1} quarantined" in out
    reasons = {(t, r): why for _, t, r, why in _quarantine(fleet)}
    assert "larger than" in reasons["bodies", key]
    assert "0 verdicts changed" in _fleet_works(fleet, capsys)
    assert Store.open(fleet).body(key) == Store.open(honest).body(key)


def test_a_body_that_is_not_zlib_is_refused(
    real: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _other_device(real, tmp_path / "bad.db")
    key = _news_body(bad)
    _tamper(bad, f"UPDATE bodies SET data = X'00112233' WHERE sha256 = '{key}'")
    fleet = tmp_path / "fleet.db"
    out = _merge([str(bad), "-o", str(fleet)], capsys)
    k = _naming(bad, key)
    assert f"{4 - k} measurements added, 0 already there, {k + 1} quarantined" in out
    assert "not zlib" in {(t, r): w for _, t, r, w in _quarantine(fleet)}["bodies", key]
    _fleet_works(fleet, capsys)


def test_a_source_past_its_cap_is_cut_there_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    big = golden_db(tmp_path / "big.db", days=3, device_id="dev-big")
    fleet = tmp_path / "fleet.db"
    lines = merge([str(big)], str(fleet), caps=Caps(source_bytes=60_000))
    store = Store.open(fleet)
    kept = store.db["measurements"].count
    assert 0 < kept < 3 * len(SCENARIOS)
    assert f"{big}: {kept} measurements added" in lines[0]
    assert "cap" in lines[0]
    (row,) = [q for q in _quarantine(fleet) if "cap" in q[3]]
    assert row[0] == Store.open(big).device_id and "60000" in row[3]
    store.close()
    _fleet_works(fleet, capsys)


def test_the_quarantine_itself_is_capped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = golden_db(tmp_path / "bad.db", days=3, device_id="dev-bad")
    _tamper(bad, "UPDATE measurements SET observations = 'garbage'")
    fleet = tmp_path / "fleet.db"
    lines = merge([str(bad)], str(fleet), caps=Caps(quarantine_rows=5))
    rows = _quarantine(fleet)
    assert len(rows) == 6 and sum("more" in r[3] for r in rows) == 1
    assert "0 measurements added" in lines[0]
    _fleet_works(fleet, capsys)


def test_the_caps_are_written_down() -> None:
    from probe.analyst import merge as module

    for name in Caps.__dataclass_fields__:
        assert f"``{name}``" in (module.__doc__ or ""), name


# -- sources that cannot be read as they are ---------------------------------------------------
def test_the_source_is_opened_immutable_and_its_wal_said_unread(
    real: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A source is read as it is on disk (immutable: no lock, no -shm, no WAL replay): a -wal
    file beside it (its probe still running) is left unread, and the line says so."""
    src = _copy(real, tmp_path / "live.db")
    con = sqlite3.connect(src)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA wal_autocheckpoint=0")
    con.execute("UPDATE measurements SET category = 'LATER'")
    con.commit()
    assert (tmp_path / "live.db-wal").stat().st_size > 0
    fleet = tmp_path / "out" / "fleet.db"
    fleet.parent.mkdir()
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    out = _merge([str(src), "-o", str(fleet)], capsys)
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    con.close()
    assert "4 measurements added" in out and "-wal" in out
    assert after == before  # not a byte of the source, its -wal or its -shm changed
    assert not list(
        Store.open(fleet).db.query("SELECT 1 FROM measurements WHERE category = 'LATER'")
    )


def test_merge_from_keeps_its_one_line_per_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = golden_db(tmp_path / "a.db", days=1, device_id="dev-a")
    b = golden_db(tmp_path / "b.db", days=1, device_id="dev-b")
    fleet = tmp_path / "fleet.db"
    lines = merge([str(a), str(b)], str(fleet))
    assert len(lines) == 3 and lines[0].startswith(f"{a}: ") and lines[1].startswith(f"{b}: ")
    assert lines[2].startswith(f"{fleet}: ")


def test_a_source_corrupt_past_its_schema_is_quarantined_whole(
    real: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its schema reads (the checks before writing pass), its later pages do not: that source's
    transaction is rolled back and said in one quarantine row; the others are merged."""
    honest = _copy(real, tmp_path / "honest.db")
    broken = golden_db(tmp_path / "broken.db", days=2, device_id="dev-broken")
    con = sqlite3.connect(broken)
    (page,) = con.execute("PRAGMA page_size").fetchone()
    con.close()
    raw = bytearray(broken.read_bytes())
    for at in range(len(raw) // page // 2 * page, len(raw), page):  # the later half: garbage
        raw[at : at + page] = bytes([0x5A]) * page
    broken.write_bytes(bytes(raw))
    fleet = tmp_path / "fleet.db"
    out = _merge([str(broken), str(honest), "-o", str(fleet)], capsys)
    assert f"{broken}: 0 measurements added, 0 already there, 1 quarantined (not merged" in out
    assert f"{honest}: 4 measurements added" in out
    ((_, table, _, reason),) = _quarantine(fleet)
    assert table == "" and "could not be read" in reason
    assert "0 verdicts changed" in _fleet_works(fleet, capsys)
