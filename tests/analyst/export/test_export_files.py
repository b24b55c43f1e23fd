"""``probe export -o``: where the output goes (issue 10, item 3 and the export half of item 12).

A regular file (or a new one) is written to a temporary file and renamed into place; anything
else (``-`` for stdout, a FIFO, a device) is streamed to as it is, never replaced; a missing
folder is refused in one line, exit 2; a new file is private (0600, issue 20), a replaced one
keeps its mode.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from probe.cli import main
from tests.dbs import SCENARIOS, golden_db


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return golden_db(tmp_path_factory.mktemp("db") / "p.db", days=1)


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_a_fifo_is_streamed_to_not_replaced(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    code, _, err = _run(["export", "--db", str(db), "--format", "jsonl", "-o", str(fifo)], capsys)
    reader.join(10)
    assert code == 0, err
    assert stat.S_ISFIFO(fifo.stat().st_mode), "the FIFO was replaced by a regular file"
    assert got and got[0].count(b"\n") == len(SCENARIOS)
    assert [p.name for p in tmp_path.iterdir()] == ["pipe"]  # no temporary file left


def test_a_device_is_written_to_not_replaced(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dev = tmp_path / "null"
    try:
        os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a /dev/null of our own
    except PermissionError:
        pytest.skip("mknod needs root")
    code, _, err = _run(["export", "--db", str(db), "--format", "csv", "-o", str(dev)], capsys)
    assert code == 0, err
    assert stat.S_ISCHR(dev.stat().st_mode), "the device was replaced by a regular file"


def test_a_missing_folder_is_refused_in_one_line(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "no" / "such" / "out.csv"
    code, _, err = _run(["export", "--db", str(db), "--format", "csv", "-o", str(out)], capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("probe: error: ")
    assert f"{tmp_path / 'no' / 'such'}: no such folder" in err
    assert not (tmp_path / "no").exists()  # nothing created on the way


def test_a_regular_file_is_replaced_whole_with_the_users_umask(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("old\n")
    old = os.umask(0o022)
    try:
        code, _, err = _run(["export", "--db", str(db), "-o", str(out)], capsys)
    finally:
        os.umask(old)
    assert code == 0, err
    assert out.read_text().count("\n") == len(SCENARIOS) and "old" not in out.read_text()
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]
