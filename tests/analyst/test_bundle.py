"""``probe evidence``: a bundle of real measurements (two rounds against the loopback world)
verifies with ``probe verify --bundle`` and with the standalone verifier it carries, run as a
separate process in a folder with no database and with ``probe`` not importable; a bundle
altered (a byte of a record, a body swapped, a head's signature broken, a link removed from a
chain segment) is refused by both, naming what."""

from __future__ import annotations

import json
import shutil
import sqlite3
import zipfile
from pathlib import Path

import pytest

from probe.analyst import bundle_verifier
from probe.evidence import canonical
from probe.words import translate
from tests.evidence.chained import rounds_db, rows, standalone
from tests.runs import run_fresh
from tests.world import World

TOP = bundle_verifier.TOP


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, world: World) -> Path:
    """A database of two real rounds (six measurements, bodies among them)."""
    return rounds_db(world, tmp_path_factory.mktemp("volunteer-home"))


@pytest.fixture(scope="module")
def bundle(built: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle of every measurement of the target ``blocked`` and of ``news``'s first."""
    out = tmp_path_factory.mktemp("analyst") / "evidence.zip"
    news = next(r["id"] for r in rows(built) if r["target"] == "news")
    from probe.cli import main

    code = main(
        ["evidence", "--db", str(built), "--target", "blocked", "--id", str(news), "-o", str(out)]
    )
    assert code == 0
    return out


def entries(zip_path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(zip_path) as z:
        return {i.filename: z.read(i) for i in z.infolist() if not i.is_dir()}


def rewrite(src: Path, dst: Path, changed: dict[str, bytes | None]) -> Path:
    """A copy of the bundle ``src`` with entries replaced (None: removed)."""
    with zipfile.ZipFile(dst, "w") as z:
        for name, data in entries(src).items():
            new = changed.get(name, data)
            if new is not None:
                z.writestr(name, new)
    return dst


def verify_bundle(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code, out, err = run_fresh(["verify", "--bundle", str(path)], capsys)
    assert "Traceback" not in err
    return code, out.splitlines()


# -- what a bundle holds -------------------------------------------------------------------------
def test_the_bundle_holds_the_chosen_measurements(built: Path, bundle: Path) -> None:
    files = entries(bundle)
    manifest = json.loads(files[f"{TOP}/bundle.json"])
    stored = rows(built)
    chosen = [r for r in stored if r["target"] == "blocked"]
    chosen.append(next(r for r in stored if r["target"] == "news"))
    assert sorted(manifest["measurements"]) == sorted(str(r["id"]) for r in chosen)
    for r in chosen:
        record = json.loads(files[f"{TOP}/measurements/{r['id']}/record.json"])
        assert record["target"] == r["target"]
        observations = files[f"{TOP}/measurements/{r['id']}/observations.json"]
        assert observations == str(r["observations"]).encode()
        verdict = json.loads(files[f"{TOP}/measurements/{r['id']}/verdict.json"])
        assert verdict["rule_id"] == r["rule_id"]
        assert verdict["rules_version"] == r["rules_version"]
        assert verdict["words"]
    keys = {str(r["device_key"]) for r in stored}
    assert manifest["devices"] == sorted(keys)
    assert files[f"{TOP}/verify_bundle.py"] == Path(bundle_verifier.__file__).read_bytes()
    bodies = [n for n in files if n.startswith(f"{TOP}/bodies/")]
    assert bodies  # the blocked target's blockpage among them


def test_the_bundle_holds_nothing_of_the_volunteers_machine(built: Path, bundle: Path) -> None:
    for name, data in entries(bundle).items():
        assert built.parent.name.encode() not in data, name
        assert b"t.yaml" not in data, name
        assert str(built.parent).encode() not in data, name


def test_the_summary_is_in_english_and_vietnamese(built: Path, bundle: Path) -> None:
    files = entries(bundle)
    en = files[f"{TOP}/summary.en.txt"].decode()
    vi = files[f"{TOP}/summary.vi.txt"].decode()
    blocked = next(r for r in rows(built) if r["target"] == "blocked")
    verdict = json.loads(files[f"{TOP}/measurements/{blocked['id']}/verdict.json"])["words"]
    assert "What was measured" in en and "does not prove" in en
    assert f"Verdict: {verdict}" in en
    assert translate(verdict, "vi") in vi
    assert "Kết luận" in vi and "không chứng minh" in vi
    for text in (en, vi):
        assert "blocked" in text and str(blocked["id"]) in text
        assert str(blocked["started_at"]) in text
    readme = files[f"{TOP}/README.txt"].decode()
    assert "pip install cryptography rfc8785" in readme
    assert "python3 verify_bundle.py" in readme and "probe verify --bundle" in readme
    assert "Cách kiểm tra" in readme


def test_the_verifier_hashes_as_the_probe_does(built: Path) -> None:
    assert bundle_verifier.RECORD_FIELDS == canonical.RECORD_FIELDS
    assert bundle_verifier.DIGESTED_FIELDS == canonical.DIGESTED_FIELDS
    assert bundle_verifier.RECORD_VERSION == canonical.RECORD_VERSION
    assert bundle_verifier.GENESIS == canonical.GENESIS
    for r in rows(built):
        assert bundle_verifier.record_hash(canonical.record(r)) == r["record_hash"]


# -- a whole bundle verifies, with the probe and without it ------------------------------------
def test_a_bundle_verifies_with_probe_verify(
    bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = verify_bundle(bundle, capsys)
    assert code == 0, lines
    assert lines[0].startswith(f"{bundle}: whole: 3 measurements, each tied to a signed head")


def test_a_bundle_verifies_alone(bundle: Path, tmp_path: Path) -> None:
    done = standalone(bundle, tmp_path / "elsewhere")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "whole: 3 measurements, each tied to a signed head" in done.stdout
    assert done.stderr == ""
    zipped = standalone(bundle, tmp_path / "again", str(bundle))  # the zip itself, too
    assert zipped.returncode == 0, zipped.stdout + zipped.stderr


def test_without_its_packages_the_verifier_says_what_to_install(bundle: Path) -> None:
    source = Path(bundle_verifier.__file__).read_text()
    assert "pip install cryptography rfc8785" in source
    assert "import probe" not in source and "from probe" not in source


# -- an altered bundle is refused by both, naming what ----------------------------------------
def tampered(bundle: Path, tmp_path: Path, change: str) -> tuple[Path, str]:
    """A copy of the bundle with one thing changed; the id (or head) it should name."""
    files = entries(bundle)
    manifest = json.loads(files[f"{TOP}/bundle.json"])
    mids = manifest["measurements"]
    chain_name = next(n for n in files if n.startswith(f"{TOP}/chains/"))
    chain = json.loads(files[chain_name])
    out = tmp_path / f"{change}.zip"
    if change == "byte":
        mid = mids[0]
        name = f"{TOP}/measurements/{mid}/observations.json"
        data = bytearray(files[name])
        i = data.index(b'"t0"')
        data[i + 2] = ord("1")  # "t0" -> "t1"
        rewrite(bundle, out, {name: bytes(data)})
        return out, f"{mid}: altered:"
    if change == "body":
        bodies = sorted(n for n in files if n.startswith(f"{TOP}/bodies/"))
        victim = bodies[0]
        rewrite(bundle, out, {victim: files[victim] + b"<p>forged</p>"})
        key = victim.rsplit("/", 1)[1]
        mid = next(
            m
            for m in mids
            if key.encode() in files.get(f"{TOP}/measurements/{m}/body_digests.json", b"")
        )
        return out, f"{mid}: body swapped:"
    if change == "signature":
        head = chain["segments"][0]["heads"][0]
        sig = head["signature"]
        head["signature"] = ("A" if sig[0] != "A" else "B") + sig[1:]
        rewrite(bundle, out, {chain_name: json.dumps(chain).encode()})
        return out, f"head {head['kind']} {head['label']}: bad signature:"
    if change == "link":
        segment = next(s for s in chain["segments"] if len(s["links"]) > 1)
        gone = next(link for link in segment["links"][:-1] if link["id"] in mids)
        segment["links"].remove(gone)
        rewrite(bundle, out, {chain_name: json.dumps(chain).encode()})
        return out, f"{gone['id']}: removed:"
    raise AssertionError(change)


@pytest.mark.parametrize("change", ["byte", "body", "signature", "link"])
def test_an_altered_bundle_is_refused_by_both(
    bundle: Path, tmp_path: Path, change: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad, named = tampered(bundle, tmp_path, change)
    code, lines = verify_bundle(bad, capsys)
    assert code == 1, lines
    assert any(line.startswith(named) for line in lines), lines
    assert any(": not whole:" in line for line in lines), lines
    done = standalone(bad, tmp_path / "alone")
    assert done.returncode == 1, done.stdout + done.stderr
    assert any(line.startswith(named) for line in done.stdout.splitlines()), done.stdout


def test_a_body_removed_from_a_bundle_is_named(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = entries(bundle)
    victim = sorted(n for n in files if n.startswith(f"{TOP}/bodies/"))[0]
    bad = rewrite(bundle, tmp_path / "nobody.zip", {victim: None})
    code, lines = verify_bundle(bad, capsys)
    assert code == 1
    assert any(": body removed:" in line for line in lines), lines


def test_what_is_not_a_bundle_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    code, _, err = run_fresh(["verify", "--bundle", str(junk)], capsys)
    assert code == 2
    assert err.startswith("probe: ") and len(err.splitlines()) == 1 and str(junk) in err


# -- choosing measurements -----------------------------------------------------------------------
def test_by_time(built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stored = rows(built)
    since = str(stored[3]["started_at"])
    out = tmp_path / "later.zip"
    code, _, err = run_fresh(
        ["evidence", "--db", str(built), "--since", since, "-o", str(out)], capsys
    )
    assert code == 0, err
    manifest = json.loads(entries(out)[f"{TOP}/bundle.json"])
    assert sorted(manifest["measurements"]) == sorted(
        str(r["id"]) for r in stored if str(r["started_at"]) >= since
    )
    assert verify_bundle(out, capsys)[0] == 0


def test_an_unknown_id_is_a_one_line_error(
    built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "none.zip"
    code, _, err = run_fresh(
        ["evidence", "--db", str(built), "--id", "no-such-id", "-o", str(out)], capsys
    )
    assert code == 2
    assert err == "probe: error: no-such-id: no such measurement\n"
    assert not out.exists()


def test_nothing_chosen_is_a_one_line_error(
    built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "none.zip"
    code, _, err = run_fresh(
        ["evidence", "--db", str(built), "--target", "nowhere", "-o", str(out)], capsys
    )
    assert code == 2
    assert err.startswith("probe: ") and "no measurement" in err
    assert not out.exists()


def test_a_measurement_no_signed_head_covers_is_refused(
    built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "copy.db"
    shutil.copy(built, db)
    con = sqlite3.connect(db)
    con.execute("DELETE FROM chain_heads WHERE seq = 6")
    con.commit()
    con.close()
    last = rows(db)[-1]["id"]
    code, _, err = run_fresh(["evidence", "--db", str(db), "--id", str(last), "-o", "x"], capsys)
    assert code == 2
    assert err.startswith(f"probe: error: {last}: ") and "signed head" in err


def test_a_database_whose_chain_does_not_hold_gives_no_bundle(
    built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "copy.db"
    shutil.copy(built, db)
    mid = str(rows(db)[1]["id"])
    con = sqlite3.connect(db)
    con.execute("UPDATE measurements SET url = url || 'x' WHERE id = ?", [mid])
    con.commit()
    con.close()
    out = tmp_path / "bad.zip"
    code, said, err = run_fresh(["evidence", "--db", str(db), "--id", mid, "-o", str(out)], capsys)
    assert code == 1
    assert said.startswith(f"{mid}: altered: ")
    assert "not written" in err
    assert not out.exists() and not list(tmp_path.glob(".evidence-*"))


@pytest.mark.parametrize("args", [[], ["x.db", "--bundle", "x.zip"]])
def test_verify_takes_a_database_or_a_bundle(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_fresh(["verify", *args], capsys)
    assert code == 2
    assert err.startswith("probe: error: ") and "--bundle" in err
