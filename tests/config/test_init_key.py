"""``probe init`` makes the device key (issue 22): beside the database the settings name, private
(0600 in a 0700 folder), never replaced, the one the probe then signs with; on the service
route beside the service's database. The consent text says what the key is, in English and
Vietnamese."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from probe.config import init as init_mod
from probe.config.files import key_path
from probe.evidence.keys import load_key
from probe.store import Store
from tests.runs import run_fresh


def _init(capsys: pytest.CaptureFixture[str], cfg: Path, *args: str) -> tuple[int, str, str]:
    return run_fresh(["init", "--config", str(cfg), *args, "--yes"], capsys)


def test_init_makes_the_device_key_beside_the_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROBE_CONFIG", raising=False)
    db = tmp_path / "data" / "p.db"
    code, out, err = _init(capsys, tmp_path / "c.toml", "--db", str(db))
    assert code == 0, err
    key = key_path(db)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert key.stat().st_uid == os.getuid()
    public = load_key(key).public
    flat = " ".join(out.split())
    assert public in flat and str(key) in flat, out
    assert not db.exists()  # the key, not the database: that is made by the first round
    store = Store.open(db)  # the store signs with the key init made
    assert store.device_key().public == public
    store.close()
    code, out, err = _init(capsys, tmp_path / "c.toml", "--db", str(db), "--force")
    assert code == 0, err
    assert load_key(key).public == public  # never replaced
    assert public in " ".join(out.split())


def test_the_service_route_makes_the_key_beside_the_services_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROBE_CONFIG", raising=False)
    cfg = tmp_path / "etc" / "probe" / "settings.toml"
    db = tmp_path / "var" / "lib" / "probe" / "probe.db"
    monkeypatch.setattr(init_mod, "SERVICE_CONFIG", cfg)
    monkeypatch.setattr(init_mod, "SERVICE_DB", str(db))
    code, out, err = _init(capsys, cfg)
    assert code == 0, err
    key = key_path(db)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert load_key(key).public in " ".join(out.split())
    assert "systemd" in out  # who will own it: the service's dynamic user, at its start


def test_a_key_that_cannot_be_made_writes_no_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROBE_CONFIG", raising=False)
    db = tmp_path / "data" / "p.db"
    db.parent.mkdir()
    key_path(db).write_text("not a key\n")
    cfg = tmp_path / "c.toml"
    code, _, err = _init(capsys, cfg, "--db", str(db))
    assert code == 2 and "not an Ed25519 device key" in err and len(err.splitlines()) == 1
    assert not cfg.exists()


@pytest.mark.parametrize(
    ("lang", "words"),
    [("en", ["pseudonymous", "key", "signs"]), ("vi", ["khóa", "bút danh"])],
)
def test_the_consent_text_says_what_the_key_is(lang: str, words: list[str]) -> None:
    text = " ".join(init_mod.consent("/d/p.db", "/c.toml", lang=lang).split())
    for w in words:
        assert w in text, text
    assert "/d/p.db.key" in text
