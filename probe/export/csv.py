"""CSV for spreadsheets: safe to open, readable without hints, streamed.

Contract: :func:`write_csv` writes one row per measurement with :data:`COLUMNS`: every flat
field of the JSON Lines record (:data:`probe.export.records.FLAT`, ``verdict`` in words
included), then ``ooni_verdict`` and the nested sections as compact JSON text. A missing value is
an empty cell, never ``null``; booleans are ``true``/``false``; ``started_at`` is UTC as
``YYYY-MM-DD HH:MM:SS``, which spreadsheets read as a date and time. A text cell that a
spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return, or their full-width forms) is prefixed with ``'``, as OWASP advises. ``excel=True`` starts
the file with a byte-order mark, so Excel reads UTF-8 (Vietnamese) text correctly. The nested
sections come from SQLite as JSON text: no row is parsed in Python but its throughput.
"""

from __future__ import annotations

import csv
import io
from typing import Any, BinaryIO

import msgspec

from probe import verdicts
from probe.export.records import BOOLEANS, FLAT, NESTED, throughput_record
from probe.store import RowFilter, Store

COLUMNS = [*FLAT, "ooni_verdict", *NESTED]
FORMULA_START = frozenset("=+-@\t\r＝＋－＠")
_SQL = [c for c in FLAT if c != "verdict"] + [
    "ooni_verdict",
    "throughput",
    "dns",
    "tcp",
    "tls",
    "http",
    "control",
    "body_proportion",
    "body_length_match",
    "status_code_match",
    "headers_match",
    "title_match",
    "throttle_label",
]
_TEXT = frozenset(
    c for c in FLAT if c not in BOOLEANS and c not in ("bytes_used", "runtime", "started_at")
)


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, str) and v[:1] in FORMULA_START:
        return "'" + v
    return v


def _b(v: Any) -> str:
    return "" if v is None else ("true" if v else "false")


def write_csv(store: Store, f: RowFilter, out: BinaryIO, *, excel: bool = False) -> int:
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=False)
    try:
        if excel:
            text.write("\ufeff")
        w = csv.writer(text, lineterminator="\r\n" if excel else "\n")
        w.writerow(COLUMNS)
        n = 0
        encode = msgspec.json.encode
        at = {c: i for i, c in enumerate(_SQL)}
        flat_idx = [(c, at.get(c)) for c in FLAT]
        words = verdicts.words
        for rows in store.stream(f, _SQL):
            out_rows = []
            for r in rows:
                blocking, throttled = r[at["blocking"]], r[at["throttled"]]
                cells: list[Any] = []
                for c, i in flat_idx:
                    if c == "verdict":
                        cells.append(
                            words(
                                blocking,
                                r[at["accessible"]],
                                r[at["evidence"]],
                                r[at["offline"]],
                                throttled,
                                blockpage=r[at["blockpage"]],
                                throttle_label=r[at["throttle_label"]],
                            )
                        )
                        continue
                    v = r[i]  # type: ignore[index]
                    if c in BOOLEANS:
                        cells.append(_b(v))
                    elif c == "started_at":
                        cells.append(f"{v[:10]} {v[11:19]}" if v and len(v) >= 19 else _cell(v))
                    elif c in _TEXT:
                        cells.append(_cell(v))
                    else:
                        cells.append("" if v is None else v)
                cells.append(r[at["ooni_verdict"]] or "")
                cells.append(
                    encode(
                        {
                            "body_proportion": r[at["body_proportion"]],
                            "body_length_match": _bool(r[at["body_length_match"]]),
                            "status_code_match": _bool(r[at["status_code_match"]]),
                            "headers_match": _bool(r[at["headers_match"]]),
                            "title_match": _bool(r[at["title_match"]]),
                        }
                    ).decode()
                )
                tp = r[at["throughput"]]
                cells.append(encode(throughput_record(tp)).decode() if tp else "")
                for section in ("dns", "tcp", "tls", "http"):
                    cells.append(r[at[section]] or "[]")
                control = r[at["control"]]
                cells.append("" if control in (None, "null") else control)
                out_rows.append(cells)
                n += 1
            w.writerows(out_rows)
        text.flush()
    finally:
        text.detach()
    return n


def _bool(v: Any) -> bool | None:
    return None if v is None else bool(v)


def write_csv_records(recs: Any, out: BinaryIO, *, excel: bool = False) -> int:
    """The same CSV from :func:`probe.export.records.records` dicts (slower: for callers that
    already hold records)."""
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=False)
    try:
        if excel:
            text.write("\ufeff")
        w = csv.writer(text, lineterminator="\r\n" if excel else "\n")
        w.writerow(COLUMNS)
        n = 0
        for rec in recs:
            cells: list[Any] = []
            for c in FLAT:
                v = rec.get(c)
                if c in BOOLEANS:
                    cells.append(_b(v))
                elif c == "blocking":
                    cells.append("" if v is None else ("false" if v is False else _cell(v)))
                elif c == "started_at":
                    cells.append(f"{v[:10]} {v[11:19]}" if v and len(v) >= 19 else _cell(v))
                elif c in _TEXT:
                    cells.append(_cell(v))
                else:
                    cells.append("" if v is None else v)
            for c in ("ooni_verdict", *NESTED):
                v = rec.get(c)
                cells.append("" if v is None else msgspec.json.encode(v).decode())
            w.writerow(cells)
            n += 1
        text.flush()
    finally:
        text.detach()
    return n
