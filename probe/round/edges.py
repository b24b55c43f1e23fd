"""The edges' networks from a table on this machine (issue 25): ``asn_db`` files, read once.

Contract: :func:`local_lookup` turns the settings' IP-to-ASN files (:mod:`probe.helper.asn`'s
formats) into the lookup :func:`probe.measure.edge.edge_facts` takes; no files, no lookup. A
file that cannot be used is :class:`probe.errors.AsnDbError`, naming it. Only the servers'
addresses are looked up, never the volunteer's, and nothing is written.
"""

from __future__ import annotations

from collections.abc import Sequence

from probe.helper.asn import load
from probe.measure.edge import Lookup, Where, no_lookup


def local_lookup(paths: Sequence[str]) -> Lookup:
    if not paths:
        return no_lookup
    table = load(paths)

    def lookup(address: str) -> Where | None:
        e = table.lookup(address)
        return (
            None if e is None or (e.asn is None and e.cc is None) else Where(e.asn, e.cc, "local")
        )

    return lookup
