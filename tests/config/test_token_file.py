"""The helper's token file must be private (issue 20, item 2): one readable by its group or by
others is refused in one line naming the file and the fix, exit status 2, before anything is
measured or written; whether the flag, a PROBE_ variable or the settings file names it."""

from __future__ import annotations

from pathlib import Path

import pytest

from probe.config.settings import resolve
from probe.errors import SettingsError
from tests.runs import run_args, run_cli
from tests.world import World


def _token(tmp_path: Path, mode: int) -> Path:
    tok = tmp_path / "helper.token"
    tok.write_text("s3cret\n", encoding="utf-8")
    tok.chmod(mode)
    return tok


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660], ids=oct)
def test_probe_run_refuses_a_token_others_can_read(
    mode: int, tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    tok = _token(tmp_path, mode)
    targets, db = tmp_path / "t.yaml", tmp_path / "r.db"
    targets.write_text(f"targets:\n  - {{name: a, url: '{world.http('news.test')}'}}\n")
    args = run_args(world, targets, db, "--helper-token-file", str(tok))
    code, _, err = run_cli(args, capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("probe: error: "), err
    assert f"--helper-token-file: {tok}: " in err and f"chmod 600 {tok}" in err
    assert not db.exists()  # refused before a byte is written


def test_a_private_token_file_is_accepted(tmp_path: Path) -> None:
    tok = _token(tmp_path, 0o600)
    assert resolve({"helper_token_file": str(tok)}, env={}).helper_token_file == str(tok)
    tok.chmod(0o400)
    assert resolve({"helper_token_file": str(tok)}, env={}).helper_token_file == str(tok)


def test_the_variable_and_the_settings_file_are_held_to_the_same_rule(tmp_path: Path) -> None:
    tok = _token(tmp_path, 0o644)
    env = {"PROBE_HELPER_TOKEN_FILE": str(tok)}
    with pytest.raises(SettingsError, match=rf"^PROBE_HELPER_TOKEN_FILE: {tok}: .*chmod 600"):
        resolve({}, env=env)
    cfg = tmp_path / "settings.toml"
    cfg.write_text(f'helper_token_file = "{tok}"\n', encoding="utf-8")
    with pytest.raises(SettingsError, match=rf"^{cfg}: helper_token_file: {tok}: .*chmod 600"):
        resolve({}, env={}, config=str(cfg))


def test_the_helper_refuses_its_own_token_open_to_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``probe helper serve --token-file``: the same rule, before it listens."""
    tok = _token(tmp_path, 0o644)
    code, _, err = run_cli(
        ["helper", "serve", "--listen", "127.0.0.1:1", "--token-file", str(tok)], capsys
    )
    assert code == 2 and err.count("\n") == 1 and err.startswith("probe: error: "), err
    assert f"chmod 600 {tok}" in err
