"""files.write_whole: the one way the CLI writes a file it made (targets import -o, probe init)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from probe.analyst.export.files import write_whole
from probe.errors import InputError


def test_written_whole_and_private(tmp_path: Path) -> None:
    dest = tmp_path / "new" / "settings.toml"
    write_whole(dest, "a = 1\n")
    assert dest.read_text(encoding="utf-8") == "a = 1\n"
    assert dest.stat().st_mode & 0o777 == 0o600  # whatever the umask (issue 20)
    assert dest.parent.stat().st_mode & 0o777 == 0o700
    assert [p.name for p in dest.parent.iterdir()] == ["settings.toml"]


def test_a_refused_check_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    dest = tmp_path / "targets.yaml"
    dest.write_text("old\n", encoding="utf-8")
    seen: list[str] = []

    def refuse(p: Path) -> None:
        seen.append(p.read_text(encoding="utf-8"))
        raise InputError(f"{p}: broken")

    with pytest.raises(InputError, match="broken"):
        write_whole(dest, "new\n", check=refuse)
    assert seen == ["new\n"]  # the check read what would have been written
    assert dest.read_text(encoding="utf-8") == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["targets.yaml"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_unwritable_folder_is_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(InputError, match=r"^.*settings\.toml: cannot write \(.+\)$"):
            write_whole(folder / "settings.toml", "a = 1\n")
    finally:
        folder.chmod(0o700)


def test_a_path_under_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(InputError, match=r"cannot write \(.+\)$") as info:
        write_whole(tmp_path / "file" / "settings.toml", "a = 1\n")
    assert "\n" not in str(info.value)
