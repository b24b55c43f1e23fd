"""The edges' networks from a table on this machine (issue 25): ``asn_db`` files, read once.

Contract: :func:`local_lookup` turns the settings' IP-to-ASN files (:mod:`probe.helper.asn`'s
formats) into the lookup :func:`probe.measure.edge.edge_facts` takes; no files, no lookup. A
file that cannot be used is :class:`probe.errors.AsnDbError`, naming it. The table is read once
and kept while its files are unchanged (a daemon's rounds share it; an iptoasn file is tens of
megabytes). Only the servers' addresses are looked up, never the volunteer's, and nothing is
written.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

from probe.helper.asn import Table, load
from probe.measure.edge import Lookup, Where, no_lookup


@functools.lru_cache(maxsize=1)
def _table(files: tuple[tuple[str, float, int], ...]) -> Table:
    return load([path for path, _, _ in files])


def _stamp(path: str) -> tuple[str, float, int]:
    try:
        st = os.stat(path)
    except OSError:
        return path, 0.0, -1  # load() says why it cannot be read
    return path, st.st_mtime, st.st_size


def local_lookup(paths: Sequence[str]) -> Lookup:
    if not paths:
        return no_lookup
    table = _table(tuple(_stamp(p) for p in paths))

    def lookup(address: str) -> Where | None:
        e = table.lookup(address)
        if e is None or (e.asn is None and e.cc is None):
            return None
        return Where(e.asn, e.cc, "local")

    return lookup
