"""probe.config.files, the one home of the files the probe makes: private, never through a link.

Real files, folders and links in the test's own temporary folder; nothing mocked.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from probe.config.files import db_files, lock_path, open_private, private_folder, temp_beside
from probe.errors import UnsafePath
from probe.store import Store


def mode(p: Path) -> int:
    return stat.S_IMODE(p.lstat().st_mode)


def test_private_folder_makes_the_missing_ones_and_leaves_the_others(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir(mode=0o755)
    (tmp_path / "a").chmod(0o755)
    private_folder(tmp_path / "a" / "b" / "c")
    assert (mode(tmp_path / "a"), mode(tmp_path / "a" / "b"), mode(tmp_path / "a" / "b" / "c")) == (
        0o755,
        0o700,
        0o700,
    )
    private_folder(tmp_path / "a" / "b" / "c")  # there already: nothing to do
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError):
        private_folder(tmp_path / "file" / "sub")


def test_open_private_creates_0600_and_keeps_an_existing_file_s_mode(tmp_path: Path) -> None:
    new = tmp_path / "new"
    os.close(open_private(new))
    assert mode(new) == 0o600
    old = tmp_path / "old"
    old.write_text("kept")
    old.chmod(0o640)
    os.close(open_private(old))
    assert (mode(old), old.read_text()) == (0o640, "kept")


@pytest.mark.parametrize("target", ["victim", "nothing"])
def test_open_private_refuses_a_link(tmp_path: Path, target: str) -> None:
    victim = tmp_path / target
    if target == "victim":
        victim.write_text("theirs")
    link = tmp_path / "link"
    link.symlink_to(victim)
    with pytest.raises(UnsafePath, match=rf"^{link}: is a symbolic link"):
        open_private(link)
    assert victim.read_text() == "theirs" if target == "victim" else not victim.exists()


def test_temp_beside_is_private_and_in_the_destination_s_folder(tmp_path: Path) -> None:
    fd, tmp = temp_beside(tmp_path / "out.csv")
    os.close(fd)
    assert (tmp.parent, tmp.name.startswith(".out.csv."), mode(tmp)) == (tmp_path, True, 0o600)
    fd, tmp = temp_beside(tmp_path / "out.csv", 0o644)
    os.close(fd)
    assert mode(tmp) == 0o644


def test_the_files_of_a_database(tmp_path: Path) -> None:
    db = tmp_path / "probe.db"
    assert lock_path(db) == tmp_path / "probe.db.lock"
    assert [p.name for p in db_files(db)] == [
        "probe.db",
        "probe.db-wal",
        "probe.db-shm",
        "probe.db-journal",
        "probe.db.key",
        "probe.db.lock",
    ]


def test_a_new_database_is_never_created_through_a_link_to_nothing(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.db"
    link = tmp_path / "probe.db"
    link.symlink_to(target)
    with pytest.raises(UnsafePath, match=rf"^{link}: is a symbolic link"):
        Store.open(link)
    assert not target.exists()


def test_an_in_memory_database_makes_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Store.open(":memory:").close()
    assert list(tmp_path.iterdir()) == []
