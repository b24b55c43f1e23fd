"""Where an export goes: stdout, a regular file written whole, or anything else streamed to.

Contract: :func:`destination` opens the place named by ``-o`` for binary writing. A regular file
(or a name that does not exist yet) is written to a temporary file beside it and renamed into
place only when everything was written, so an interrupted export never leaves half a file; it
gets the mode of the file it replaces, or 0600 when new (:mod:`probe.config.files`). A symbolic
link to a regular file or to nothing is replaced itself, never written through (one planted in
a shared folder cannot aim the export at another file). Anything else (``-`` for stdout, a
FIFO, a device, or a link to one) is written to as it is and never replaced. A missing
folder is refused (:class:`ExportError`, one line) and never created. :func:`new_folder` does the
same for a dataset folder (Parquet): built beside its final name, renamed into place.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from probe.config.files import FILE_MODE, FOLDER_MODE, private_folder, temp_beside
from probe.errors import ExportError
from probe.words import N_


def _folder_of(dest: Path, output: str) -> Path:
    parent = dest.parent
    if not parent.is_dir():
        raise ExportError(
            N_("{path}: no such folder (for -o {output})"), path=parent, output=output
        )
    return parent


@contextmanager
def destination(output: str | None) -> Iterator[BinaryIO]:
    if output is None or output == "-":
        sys.stdout.flush()
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    dest = Path(output)
    parent = _folder_of(dest.absolute(), output)
    st = _reached(dest, output)
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise ExportError(N_("{output}: is a folder"), output=output)
    if st is not None and not stat.S_ISREG(st.st_mode):
        # A FIFO, a device, a socket (or a link to one, as /dev/stdout is): written to as it
        # is; replacing it would break it. Opened without O_CREAT or O_TRUNC, so a regular
        # file swapped in meanwhile is never truncated, only refused.
        try:
            fd = os.open(dest, os.O_WRONLY | os.O_CLOEXEC)
            if stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise ExportError(
                    N_("{output}: became a regular file while being opened"), output=output
                )
            with open(fd, "wb") as fh:
                yield fh
        except OSError as exc:
            raise ExportError(
                N_("{output}: {problem}"), output=output, problem=exc.strerror or exc
            ) from None
        return
    try:
        fd, tmp = temp_beside(dest, stat.S_IMODE(st.st_mode) if st is not None else FILE_MODE)
    except OSError as exc:
        raise _cannot_write_in(output, parent, exc) from None
    try:
        with open(fd, "wb") as fh:
            yield fh
        os.replace(tmp, dest)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ExportError(
            N_("{output}: {problem}"), output=output, problem=exc.strerror or exc
        ) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _reached(dest: Path, output: str) -> os.stat_result | None:
    """What writing ``dest`` would reach: the file there, or what a symbolic link there points
    to when that is not a regular file (a FIFO, a device, a folder). None when the name is to be
    created or replaced: nothing is there, or a link to a regular file or to nothing, which is
    replaced itself (a rename never follows it), so a planted link never leads a write."""
    try:
        st = os.lstat(dest)
        if stat.S_ISLNK(st.st_mode):
            st = os.stat(dest)
            if stat.S_ISREG(st.st_mode):
                return None
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a loop of links: replaced like any other link
            return None
        raise ExportError(N_("{output}: {problem}"), output=output, problem=exc.strerror) from None
    return st


@contextmanager
def new_folder(output: str) -> Iterator[Path]:
    """A fresh folder to fill, renamed to ``output`` when the block ends without error.
    ``output`` must not exist, or be an empty folder."""
    dest = Path(output)
    parent = _folder_of(dest.absolute(), output)
    if dest.exists() and not (dest.is_dir() and not any(dest.iterdir())):
        raise ExportError(
            N_("{output}: already exists (give a new or empty folder)"), output=output
        )
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=parent))
    except OSError as exc:
        raise _cannot_write_in(output, parent, exc) from None
    try:
        tmp.chmod(FOLDER_MODE)
        yield tmp
        if dest.is_dir():
            dest.rmdir()
        os.replace(tmp, dest)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ExportError(
            N_("{output}: {problem}"), output=output, problem=exc.strerror or exc
        ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_whole(path: str | Path, text: str, check: Callable[[Path], object] | None = None) -> None:
    """Write ``text`` (UTF-8) to ``path`` whole or not at all: into a temporary file beside it,
    which ``check`` may read (and refuse by raising) before it is renamed into place, 0600
    (a symbolic link at ``path`` is replaced, never written through). A folder that does not
    exist yet is made, 0700; an OS error is an :class:`ExportError` naming ``path``."""
    dest = Path(path)
    try:
        private_folder(dest.parent)
        fd, tmp = temp_beside(dest)
    except OSError as exc:
        raise ExportError(
            N_("{path}: cannot write ({problem})"), path=path, problem=exc.strerror or exc
        ) from None
    try:
        with open(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        if check is not None:
            check(tmp)
        os.replace(tmp, dest)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ExportError(
            N_("{path}: cannot write ({problem})"), path=path, problem=exc.strerror or exc
        ) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _cannot_write_in(output: str, folder: Path, exc: OSError) -> ExportError:
    return ExportError(
        N_("{output}: cannot write in {folder} ({problem})"),
        output=output,
        folder=folder,
        problem=exc.strerror,
    )
