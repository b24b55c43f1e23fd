"""``probe init`` asks, in a terminal, what a volunteer must decide before agreeing (a metered
connection: the mobile profile and caps; a test helper and its token, stored private and never
echoed); ``--yes`` asks nothing. The service route names the database the service uses and the
next step that reads the file written."""

from __future__ import annotations

import json
import os
import stat
import tomllib
from pathlib import Path

import pytest

from probe.config import init as init_mod
from probe.config.settings import resolve
from tests.paths import REPO
from tests.runs import run_fresh
from tests.terminal import in_a_terminal

TOKEN = "s3cret-token-XYZ"


def _in_a_terminal(
    args: list[str], script: list[tuple[bytes, bytes]], env: dict[str, str]
) -> tuple[int, str]:
    return in_a_terminal(args, script, env)


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROBE_")}
    env.update(LANG="C.UTF-8", COLUMNS="80", XDG_DATA_HOME=str(tmp_path / "share"))
    env["PROBE_DB"] = str(tmp_path / "data" / "probe.db")  # init makes its key beside it
    env.pop("LANGUAGE", None)
    env.pop("LC_ALL", None)
    return env


def test_init_asks_about_a_metered_connection_and_a_helper(tmp_path: Path) -> None:
    cfg = tmp_path / "conf" / "settings.toml"
    script = [
        (b"connection metered", b"y\n"),
        (b"Daily data cap", b"20M\n"),
        (b"Monthly data cap", b"500M\n"),
        (b"helper URL", b"https://helper.example.org/\n"),
        (b"token", TOKEN.encode() + b"\n"),
        (b"[y/N]", b"y\n"),
    ]
    code, screen = _in_a_terminal(["init", "--config", str(cfg)], script, _env(tmp_path))
    assert code == 0, screen
    assert TOKEN not in screen  # never echoed
    doc = tomllib.loads(cfg.read_text())
    token_file = Path(doc["helper_token_file"])
    assert doc["profile"] == "mobile" and doc["helper"] == "https://helper.example.org/"
    assert (doc["max_bytes_per_day"], doc["max_bytes_per_month"]) == (20_000_000, 500_000_000)
    assert token_file.read_text().strip() == TOKEN
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert TOKEN not in cfg.read_text()
    s = resolve({}, env={}, config=str(cfg))  # reads back; check_token_file accepts it
    assert (s.max_bytes_per_day, s.max_bytes_per_month) == (20_000_000, 500_000_000)


def test_init_unmetered_without_a_helper(tmp_path: Path) -> None:
    cfg = tmp_path / "settings.toml"
    script = [(b"connection metered", b"n\n"), (b"helper URL", b"\n"), (b"[y/N]", b"y\n")]
    code, screen = _in_a_terminal(["init", "--config", str(cfg)], script, _env(tmp_path))
    assert code == 0, screen
    assert tomllib.loads(cfg.read_text()) == {}
    assert "token" not in screen.split("helper URL")[-1].split("[y/N]")[0]
    assert not (tmp_path / "helper-token").exists()


def test_a_bad_answer_is_asked_again(tmp_path: Path) -> None:
    cfg = tmp_path / "settings.toml"
    script = [
        (b"connection metered", b"y\n"),
        (b"Daily data cap", b"lots\n"),
        (b"Daily data cap", b"10M\n"),
        (b"Monthly data cap", b"\n"),
        (b"helper URL", b"not a url\n"),
        (b"helper URL", b"\n"),
        (b"[y/N]", b"n\n"),
    ]
    code, screen = _in_a_terminal(["init", "--config", str(cfg)], script, _env(tmp_path))
    assert code == 1 and not cfg.exists(), screen
    assert screen.count("Daily data cap") == 2 and "'lots' is not a size" in screen, screen
    assert screen.count("helper URL") == 2 and "Nothing written." in screen, screen


def test_flags_given_are_not_asked(tmp_path: Path) -> None:
    cfg = tmp_path / "settings.toml"
    script = [(b"[y/N]", b"y\n")]
    args = ["init", "--config", str(cfg), "--profile", "default", "--helper", "https://h.example/"]
    args += ["--max-bytes-per-month", "none"]
    code, screen = _in_a_terminal(args, script, _env(tmp_path))
    assert code == 0, screen
    assert "connection metered" not in screen and "helper URL" not in screen


# -- the service route ---------------------------------------------------------------------
def test_the_next_step_uses_the_file_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROBE_CONFIG", raising=False)
    monkeypatch.delenv("PROBE_DB", raising=False)
    cfg = tmp_path / "etc" / "settings.toml"
    db = str(tmp_path / "data" / "probe.db")
    code, out, err = run_fresh(["init", "--config", str(cfg), "--db", db, "--yes"], capsys)
    assert code == 0, err
    assert f"probe daemon --config {cfg}" in out, out
    code, shown, _ = run_fresh(["config", "--config", str(cfg), "--json"], capsys)
    db = json.loads(shown)["db"]["value"]
    assert out.count(db) >= 2, (db, out)  # where it is stored, and how to delete it


def test_the_service_route(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROBE_CONFIG", raising=False)
    cfg = tmp_path / "etc" / "probe" / "settings.toml"
    monkeypatch.setattr(init_mod, "SERVICE_CONFIG", cfg)
    monkeypatch.setattr(init_mod, "SERVICE_DB", str(tmp_path / "var" / "probe.db"))
    code, out, err = run_fresh(["init", "--config", str(cfg), "--yes"], capsys)
    assert code == 0, err
    flat = " ".join(out.split())
    assert f"({init_mod.SERVICE_DB})" in flat, out  # where the service stores, not ~/.local
    assert "systemctl enable --now probe" in flat and "probe.service" in flat
    assert f"probe status --db {init_mod.SERVICE_DB}" in flat
    assert "probe daemon" not in flat.split("Settings written")[1]


def test_the_service_constants_are_the_unit_s() -> None:
    unit = (REPO / "deploy" / "probe.service").read_text()
    assert f"Environment=PROBE_CONFIG={init_mod.SERVICE_CONFIG}" in unit
    assert "StateDirectory=probe" in unit and init_mod.SERVICE_DB == "/var/lib/probe/probe.db"


def test_the_questions_in_vietnamese_fit_the_terminal(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    env = _env(tmp_path) | {"LANG": "vi_VN.UTF-8", "COLUMNS": "60"}
    script = [
        ("tính tiền theo dung lượng".encode(), b"y\n"),
        ("Hạn mức dữ liệu hằng ngày".encode(), b"\n"),
        ("Hạn mức dữ liệu hằng tháng".encode(), b"\n"),
        ("máy trợ giúp kiểm tra".encode(), b"\n"),
        (b"[y/N]", b"n\n"),
    ]
    code, screen = _in_a_terminal(["init", "--config", str(cfg)], script, env)
    assert code == 1 and "Chưa ghi gì cả." in screen, screen
    lines = screen.replace("\r\n", "\n").splitlines()
    assert "Bạn đã hiểu điều này" in screen
    too_long = [line for line in lines if len(line) > 60 and len(line.split()) > 1]
    assert not too_long, too_long


def test_the_service_can_read_the_file_it_is_told_to_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The unit runs as a dynamic user (DynamicUser=yes): a 0600 root file in a 0700 folder
    # is one it cannot read. The settings hold no secret (the token has its own 0600 file).
    monkeypatch.delenv("PROBE_CONFIG", raising=False)
    cfg = tmp_path / "etc" / "probe" / "settings.toml"
    monkeypatch.setattr(init_mod, "SERVICE_CONFIG", cfg)
    monkeypatch.setattr(init_mod, "SERVICE_DB", str(tmp_path / "var" / "probe.db"))
    code, _, err = run_fresh(["init", "--config", str(cfg), "--yes"], capsys)
    assert code == 0, err
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o644
    assert stat.S_IMODE(cfg.parent.stat().st_mode) & 0o005 == 0o005  # others may enter and read
    other = tmp_path / "home" / "settings.toml"
    db = str(tmp_path / "home" / "probe.db")
    code, _, err = run_fresh(["init", "--config", str(other), "--db", db, "--yes"], capsys)
    assert code == 0 and stat.S_IMODE(other.stat().st_mode) == 0o600  # a person's own: private
