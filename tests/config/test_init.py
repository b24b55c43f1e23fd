"""``probe init``'s settings file reads back through resolve() to the values it was given."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from probe.config.init import settings_file
from probe.config.options import OPTIONS
from probe.config.settings import resolve
from tests.runs import run_cli


@given(st.integers(1, 366 * 86400 * 1000).map(lambda ms: ms / 1000))
def test_a_written_interval_reads_back(seconds: float) -> None:
    # Writes to a fresh temporary directory (Hypothesis runs this many times).
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "settings.toml"
        path.write_text(settings_file({"interval": seconds}), encoding="utf-8")
        assert resolve({}, env={}, config=str(path)).interval == seconds


def test_a_resolver_is_written_as_its_text(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text(settings_file({"resolver": "192.0.2.1"}), encoding="utf-8")
    assert 'resolver = "udp://192.0.2.1:53"' in path.read_text(encoding="utf-8")
    assert str(resolve({}, env={}, config=str(path)).resolver) == "udp://192.0.2.1:53"


# -- probe init ------------------------------------------------------------------------------
def test_init_writes_a_commented_file_that_reads_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROBE_DB", str(tmp_path / "data" / "probe.db"))  # its key beside it
    cfg = tmp_path / "conf" / "settings.toml"
    code, out, err = run_cli(
        ["init", "--config", str(cfg), "--profile", "mobile", "--interval", "4h", "--yes"], capsys
    )
    assert code == 0, err
    flat = " ".join(out.split())  # the consent text is wrapped to the terminal
    assert "visible" in flat and "never stored" in flat and "delete" in flat
    text = cfg.read_text()
    doc = tomllib.loads(text)
    assert doc == {"profile": "mobile", "interval": "4h"}
    for o in OPTIONS:
        if not o.hidden:
            assert f"# {o.name} =" in text or f"{o.name} =" in text, o.name
    s = resolve({}, config=str(cfg), env={})
    assert (s.profile, s.interval, s.max_bytes_per_day) == ("mobile", 4 * 3600, 25_000_000)
    # every commented line, uncommented, is a valid setting too
    uncommented = "\n".join(
        line[2:] if line.startswith("# ") and " = " in line and '"' not in line else line
        for line in text.splitlines()
    )
    tomllib.loads(uncommented)
    code, _, err = run_cli(["init", "--config", str(cfg), "--yes"], capsys)
    assert code == 2 and "already there (--force replaces it)" in err


def test_init_asks_in_a_terminal_only(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "probe", "init", "--config", str(tmp_path / "s.toml")],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert r.returncode == 2 and "pass --yes" in r.stderr
    assert not (tmp_path / "s.toml").exists()
