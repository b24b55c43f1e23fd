"""The device key: made once, private, loaded back, signing and checking."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from probe.errors import StoreError, UnsafePath
from probe.evidence import heads, keys


def test_made_private_once_and_loaded_back(tmp_path: Path) -> None:
    path = keys.key_path(tmp_path / "state" / "probe.db")
    assert path.name == "probe.db.key"
    made = keys.ensure_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    again = keys.ensure_key(path)
    assert again.public == made.public == keys.load_key(path).public
    assert len(keys.from_b64url(made.public)) == 32 and "=" not in made.public


def test_two_makers_at_once_end_with_one_key(tmp_path: Path) -> None:
    path = tmp_path / "probe.db.key"
    found: list[str] = []
    threads = [
        threading.Thread(target=lambda: found.append(keys.ensure_key(path).public))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(found)) == 1 and found[0] == keys.load_key(path).public
    assert [p.name for p in tmp_path.iterdir()] == ["probe.db.key"]


def test_sign_and_verify() -> None:
    key = keys.DeviceKey.generate()
    sig = key.sign(b"data")
    assert keys.verify(key.public, b"data", sig)
    assert not keys.verify(key.public, b"datA", sig)
    assert not keys.verify(keys.DeviceKey.generate().public, b"data", sig)
    assert not keys.verify("not a key!", b"data", sig)
    assert not keys.verify(key.public, b"data", "AAAA")


def test_a_link_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    link = tmp_path / "probe.db.key"
    link.symlink_to(target)
    with pytest.raises(UnsafePath):
        keys.ensure_key(link)
    assert not target.exists()


def test_a_bad_key_file_is_one_line_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "probe.db.key"
    path.write_text("not a key\n")
    with pytest.raises(StoreError, match=r"probe\.db\.key: not an Ed25519 device key"):
        keys.load_key(path)
    os.chmod(path, 0)
    if os.geteuid() != 0:
        with pytest.raises(StoreError, match="cannot read the device key"):
            keys.load_key(path)


def test_heads_signed_and_checked() -> None:
    key = keys.DeviceKey.generate()
    statement, sig = heads.sign(key, 7, "ab" * 32, "2026-12-07T20:00:00.000Z", heads.ROUND)
    head = heads.check(statement, sig)
    assert head == heads.Head(key.public, 7, "ab" * 32, "2026-12-07T20:00:00.000Z", "round")
    assert statement.startswith(b'{"at":')  # canonical: keys sorted
    assert heads.check(statement.replace(b'"seq":7', b'"seq":8'), sig) is None
    # Another key cannot sign for this device.
    other = keys.DeviceKey.generate()
    assert heads.check(statement, other.sign(statement)) is None
    # Not canonical (a space added), or not a head: refused even when signed.
    loose = statement.replace(b",", b", ")
    assert heads.check(loose, key.sign(loose)) is None
    with pytest.raises(ValueError, match="kind"):
        heads.sign(key, 1, "ab" * 32, "t", "week")
