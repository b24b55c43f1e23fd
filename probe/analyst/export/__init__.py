"""Exports for analysts: JSON Lines, CSV, OONI's data format and Parquet, each streamed.

Contract: :func:`export` is the one call behind ``probe export``: it reads the measurements a
:class:`~probe.store.RowFilter` selects, oldest first, one batch at a time (memory stays flat
from a thousand measurements to ten million), and writes them in one format to ``-o`` (see
:mod:`probe.analyst.export.files` for how a file, a FIFO, a device or stdout is written). Formats:
:mod:`~probe.analyst.export.jsonl` (the :func:`records` dicts), :mod:`~probe.analyst.export.csv`,
:mod:`~probe.analyst.export.ooni` (one df-000 Web Connectivity measurement per line) and
:mod:`~probe.analyst.export.parquet` (a Hive-partitioned dataset; needs ``probe[analyst]``). The
report (:mod:`~probe.analyst.report.html`) and ``probe merge`` (:mod:`~probe.analyst.merge`) live
here too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from probe.analyst.export.files import destination
from probe.analyst.export.records import FLAT, NESTED, parse_time, records, throughput_record
from probe.errors import ExportError
from probe.store import RowFilter, Store
from probe.words import N_

FORMATS = ("jsonl", "csv", "ooni", "parquet")


def write(recs: Iterable[dict[str, Any]], fmt: str, output: str | None) -> int:
    """Write :func:`records` dicts as JSON Lines or CSV to ``output`` (None or ``-``: stdout)."""
    from probe.analyst.export.csv import write_csv_records
    from probe.analyst.export.jsonl import write_jsonl

    with destination(output) as out:
        return write_jsonl(recs, out) if fmt == "jsonl" else write_csv_records(recs, out)


def export(store: Store, f: RowFilter, fmt: str, output: str | None, *, excel: bool = False) -> int:
    """Export the selected measurements; returns how many were written."""
    if fmt == "parquet":
        if output is None or output == "-":
            raise ExportError(N_("--format parquet writes a folder: give -o DIR"))
        from probe.analyst.export.parquet import write_dataset

        return write_dataset(store, f, output)
    if excel and fmt != "csv":
        raise ExportError(N_("--excel goes with --format csv"))
    with destination(output) as out:
        if fmt == "csv":
            from probe.analyst.export.csv import write_csv

            return write_csv(store, f, out, excel=excel)
        if fmt == "ooni":
            from probe.analyst.export.ooni import write_ooni

            return write_ooni(store, f, out)
        from probe.analyst.export.jsonl import write_jsonl

        return write_jsonl(records(store, f, for_json=True), out)


__all__ = [
    "FLAT",
    "FORMATS",
    "NESTED",
    "ExportError",
    "RowFilter",
    "export",
    "parse_time",
    "records",
    "throughput_record",
    "write",
]
