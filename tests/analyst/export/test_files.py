"""probe.analyst.export.files itself: written whole or not at all, never half a file (the CLI's
side, FIFOs and devices: tests/test_export_files.py).

Real files, folders and symlinks in the test's own temporary folder; nothing mocked.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from probe.analyst.export.files import destination, new_folder
from probe.errors import ExportError


class Boom(Exception):
    pass


def test_new_file_is_written_whole_and_private(tmp_path: Path) -> None:
    out = tmp_path / "a.jsonl"
    old = os.umask(0o027)
    try:
        with destination(str(out)) as fh:
            fh.write(b"one\n")
            assert not out.exists()  # nothing at the final name until the end
    finally:
        os.umask(old)
    assert out.read_bytes() == b"one\n"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600  # whatever the umask (issue 20)
    assert [p.name for p in tmp_path.iterdir()] == ["a.jsonl"]  # no temporary left


def test_replacing_a_file_keeps_its_mode_and_a_failure_keeps_the_old_one(tmp_path: Path) -> None:
    out = tmp_path / "a.csv"
    out.write_bytes(b"old\n")
    out.chmod(0o600)
    with pytest.raises(Boom), destination(str(out)) as fh:
        fh.write(b"half")
        raise Boom
    assert out.read_bytes() == b"old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["a.csv"]
    with destination(str(out)) as fh:
        fh.write(b"new\n")
    assert (out.read_bytes(), stat.S_IMODE(out.stat().st_mode)) == (b"new\n", 0o600)


def test_a_symlink_is_replaced_never_written_through(tmp_path: Path) -> None:
    """It used to be the other way round: a link planted in a shared folder aimed the export
    at any file of the volunteer's (issue 20; tests/test_symlinks.py)."""
    real = tmp_path / "real.csv"
    real.write_bytes(b"old")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    with destination(str(link)) as fh:
        fh.write(b"new")
    assert not link.is_symlink() and link.read_bytes() == b"new"
    assert real.read_bytes() == b"old"


def test_missing_folder_and_a_folder_are_refused_in_one_line(tmp_path: Path) -> None:
    missing = str(tmp_path / "nowhere" / "a.csv")
    with (
        pytest.raises(ExportError, match=r"no such folder \(for -o .*nowhere/a.csv\)"),
        destination(missing),
    ):
        pass
    assert not (tmp_path / "nowhere").exists()  # never created
    with pytest.raises(ExportError, match=r": is a folder$"), destination(str(tmp_path)):
        pass


def test_stdout(capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    with destination("-") as fh:
        fh.write(b"to stdout\n")
    with destination(None) as fh:
        fh.write(b"again\n")
    assert capfdbinary.readouterr().out == b"to stdout\nagain\n"


def test_new_folder_is_renamed_into_place_only_when_complete(tmp_path: Path) -> None:
    out = tmp_path / "dataset"
    with pytest.raises(Boom), new_folder(str(out)) as d:
        (d / "part-0.parquet").write_bytes(b"x")
        raise Boom
    assert list(tmp_path.iterdir()) == []  # nothing left, not even the temporary
    out.mkdir()  # an empty folder may be filled
    with new_folder(str(out)) as d:
        (d / "part-0.parquet").write_bytes(b"x")
    assert [p.name for p in out.iterdir()] == ["part-0.parquet"]
    with pytest.raises(ExportError, match=r"dataset: already exists"), new_folder(str(out)):
        pass
    with pytest.raises(ExportError, match=r"no such folder"), new_folder(str(tmp_path / "a/b")):
        pass
