"""``probe merge --timestamp URL --tsa-ca FILE`` (issue 22): the analyst, never the probe, asks
a timestamp authority (the local one of tests/servers/tsa.py) for RFC 3161 tokens on the signed
heads it merged; they are stored in the fleet database, and ``probe verify`` shows them and,
given the TSA's root, checks each against the head it stamps."""

from __future__ import annotations

import json
import shutil
import sqlite3
import zipfile
from pathlib import Path

import pytest

from probe.analyst import timestamp as ts
from tests.evidence.chained import rounds_db, rows, sql, standalone
from tests.runs import run_fresh
from tests.servers.tsa import LocalTSA, Pki
from tests.world import World


@pytest.fixture(scope="module")
def devices(world: World, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return (
        rounds_db(world, tmp_path_factory.mktemp("hue"), "hue.db"),
        rounds_db(world, tmp_path_factory.mktemp("vinh"), "vinh.db", rounds=1),
    )


def _stamps(fleet: Path) -> list[tuple[object, ...]]:
    con = sqlite3.connect(fleet)
    try:
        return list(
            con.execute(
                "SELECT h.device_key, h.seq, h.chain_hash, h.signature, t.tsa_url, t.token "
                "FROM timestamps AS t JOIN chain_heads AS h ON h.rowid = t.head_id "
                "ORDER BY h.device_key, h.kind, h.label"
            )
        )
    finally:
        con.close()


def _merge(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    return run_fresh(["merge", *map(str, args)], capsys)


def _stamped(
    capsys: pytest.CaptureFixture[str], tsa: LocalTSA, pki: Pki, fleet: Path, *sources: Path
) -> str:
    """``sources`` merged into ``fleet`` and its heads stamped by ``tsa``; the output."""
    code, out, err = _merge(
        capsys, *sources, "-o", fleet, "--timestamp", tsa.url, "--tsa-ca", pki.pem("root")
    )
    assert code == 0, err
    return out


def test_merged_heads_are_timestamped_and_verify_shows_them(
    devices: tuple[Path, Path],
    tsa: LocalTSA,
    pki: Pki,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fleet = tmp_path / "fleet.db"
    ca = pki.pem("root")
    out = _stamped(capsys, tsa, pki, fleet, *devices)
    heads = len(rows(devices[0], "chain_heads", "seq")) + len(
        rows(devices[1], "chain_heads", "seq")
    )
    assert heads == 5  # three of two rounds and their day, two of one round and its day
    assert f"{fleet}: {heads} signed heads timestamped by {tsa.url}" in out
    stamps = _stamps(fleet)
    assert len(stamps) == heads == len(tsa.queries)
    for key, seq, chain_hash, signature, url, token in stamps:
        assert url == tsa.url
        digest = ts.head_digest(str(key), int(str(seq)), str(chain_hash), str(signature))
        ts.verify(bytes(token), digest, roots=[pki.root])  # type: ignore[arg-type]
    # Again: only heads not stamped yet are asked for (none).
    out = _stamped(capsys, tsa, pki, fleet, *devices)
    assert f"{fleet}: 0 signed heads timestamped by {tsa.url}" in out
    assert len(tsa.queries) == heads
    # probe verify shows them, and checks them with the TSA's root.
    code, out, _ = run_fresh(["verify", str(fleet)], capsys)
    assert code == 0, out
    assert f"{heads} signed heads timestamped" in out and "not checked" in out
    code, out, _ = run_fresh(["verify", str(fleet), "--tsa-ca", str(ca)], capsys)
    assert code == 0, out
    assert f"{heads} signed heads timestamped" in out and "every timestamp holds" in out


def test_a_timestamp_that_does_not_hold_is_named_by_verify(
    devices: tuple[Path, Path],
    tsa: LocalTSA,
    pki: Pki,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fleet = tmp_path / "fleet.db"
    ca = pki.pem("root")
    _stamped(capsys, tsa, pki, fleet, devices[1])
    # Each head given the other's token: each stamps a digest that is not its head's.
    sql(
        fleet,
        "CREATE TEMP TABLE was AS SELECT head_id, token FROM timestamps",
        "UPDATE timestamps SET token = (SELECT token FROM was "
        "WHERE was.head_id != timestamps.head_id)",
    )
    code, out, _ = run_fresh(["verify", str(fleet), "--tsa-ca", str(ca)], capsys)
    assert code == 1
    assert out.count(": bad timestamp:") == 2, out
    assert "2 signed heads timestamped; 2 do not hold" in out
    code, out, _ = run_fresh(["verify", str(fleet)], capsys)
    assert code == 0, out  # without the root, a timestamp is shown, not checked
    assert "2 signed heads timestamped; not checked" in out
    # A head whose stored state changed since it was stamped: said even without the root.
    sql(fleet, "UPDATE timestamps SET digest = zeroblob(32) WHERE head_id = "
        "(SELECT min(head_id) FROM timestamps)")  # fmt: skip
    code, out, _ = run_fresh(["verify", str(fleet)], capsys)
    assert code == 1 and "bad timestamp: its timestamp is for another state of the head" in out


def test_the_tsa_ca_is_needed_and_a_tsa_failure_is_one_line(
    devices: tuple[Path, Path],
    tsa: LocalTSA,
    pki: Pki,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fleet = tmp_path / "fleet.db"
    code, _, err = _merge(capsys, devices[1], "-o", fleet, "--timestamp", tsa.url)
    assert code == 2 and "--tsa-ca" in err and len(err.splitlines()) == 1
    assert not fleet.exists()  # refused before anything was written
    tsa.mode = "error"
    code, out, err = _merge(
        capsys, devices[1], "-o", fleet, "--timestamp", tsa.url, "--tsa-ca", pki.pem("root")
    )
    assert code == 2 and tsa.url in err and len(err.splitlines()) == 1, err
    assert "2 measurements added" not in err and "measurements added" in out  # merged still
    copy = tmp_path / "again.db"
    shutil.copy(fleet, copy)
    tsa.mode = "reply"
    code, out, err = _merge(
        capsys, devices[1], "-o", copy, "--timestamp", tsa.url, "--tsa-ca", pki.pem("root")
    )
    assert code == 0 and "2 signed heads timestamped" in out, err


def test_a_bundle_carries_the_timestamps_of_its_heads(
    devices: tuple[Path, Path],
    tsa: LocalTSA,
    pki: Pki,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fleet = tmp_path / "fleet.db"
    ca = pki.pem("root")
    _stamped(capsys, tsa, pki, fleet, *devices)
    bundle = tmp_path / "e.zip"
    code, _, err = run_fresh(
        ["evidence", "--db", str(fleet), "--target", "news", "-o", str(bundle)], capsys
    )
    assert code == 0, err
    code, out, _ = run_fresh(["verify", "--bundle", str(bundle)], capsys)
    assert code == 0, out
    stamped = [line for line in out.splitlines() if f"timestamped by {tsa.url} at " in line]
    assert stamped and all("as its token says" in line for line in stamped), out
    code, out, _ = run_fresh(["verify", "--bundle", str(bundle), "--tsa-ca", str(ca)], capsys)
    assert code == 0, out
    assert out.count("; the token holds") == len(stamped)
    code, out, _ = run_fresh(
        ["verify", "--bundle", str(bundle), "--tsa-ca", str(pki.pem("other_root"))], capsys
    )
    assert code == 1 and out.count(": bad timestamp: its timestamp does not hold") == len(stamped)
    # A token said to stamp another state of its head: both verifiers name it.
    tampered = tmp_path / "t.zip"
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(tampered, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if "/chains/" in info.filename and b'"digest"' in data:
                doc = json.loads(data)
                for seg in doc["segments"]:
                    for h in seg["heads"]:
                        for t in h.get("timestamps", []):
                            t["digest"] = "00" * 32
                data = json.dumps(doc).encode()
            dst.writestr(info, data)
    code, out, _ = run_fresh(["verify", "--bundle", str(tampered)], capsys)
    assert code == 1 and ": bad timestamp: its timestamp is for another state" in out, out
    done = standalone(tampered, tmp_path / "away")
    assert done.returncode == 1 and "bad timestamp" in done.stdout, done.stdout + done.stderr


def test_the_standalone_verifier_digests_a_head_as_the_stamper_does(
    devices: tuple[Path, Path],
) -> None:
    from probe.analyst import bundle_verifier

    for h in rows(devices[0], "chain_heads", "seq"):
        head = {k: h[k] for k in ("chain_hash", "device_key", "seq")}
        ours = ts.head_digest(h["device_key"], h["seq"], h["chain_hash"], h["signature"])
        assert bundle_verifier.head_digest(head, h["signature"]) == ours.hex()
