"""``probe merge``: several volunteers' databases joined into one, for a fleet-wide view.

Contract: :func:`merge` checks every source before it writes anything (each must be a probe
database: a missing file, a file that is not SQLite, or an SQLite file without probe's tables is
refused with one line naming it), then copies each source's measurements, rounds and bodies that
the output lacks into the output (created, or added to), one transaction per source. Sources are
read, never written: one made by an older probe is copied aside, migrated there, merged, and the
copy deleted. Ids are globally unique, so merging twice adds nothing. Each measurement keeps its
device id (rows a source's own probe made without one get that source's). Nothing else is
copied: no other table, no source's ``meta``, no file name; the output holds nothing about a
volunteer that the sources did not hold.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from probe.errors import MergeError
from probe.store import Store
from probe.words import N_


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def merge(sources: list[str], output: str) -> list[str]:
    """Merge ``sources`` into ``output``; returns one line per source, then a total."""
    out = Path(output)
    if not out.absolute().parent.is_dir():
        raise MergeError(
            N_("{path}: no such folder (for -o {output})"),
            path=out.absolute().parent,
            output=output,
        )
    opened: list[tuple[str, Store, list[str]]] = []
    try:
        for src in sources:
            if _same_file(Path(src), out):
                raise MergeError(N_("{path}: is the output itself"), path=src)
            store = Store.open_source(src)
            opened.append((src, store, store.pending_migrations()))
        target = Store.open(out)
        lines = []
        for src, store, pending in opened:
            if pending:
                with tempfile.TemporaryDirectory(dir=out.absolute().parent) as tmp:
                    copy = Path(tmp) / "source.db"
                    store.copy_to(copy)
                    migrated = Store.open(copy)
                    try:
                        added, seen = target.merge_from(migrated)
                    finally:
                        migrated.close()
                note = f" (an older schema: {len(pending)} migrations applied to a copy)"
            else:
                added, seen = target.merge_from(store)
                note = ""
            lines.append(f"{src}: {added} measurements added, {seen} already there{note}")
        measurements, devices = target.counts()
        lines.append(f"{output}: {measurements} measurements from {devices} devices")
        target.close()
        return lines
    finally:
        for _, store, _ in opened:
            store.close()
