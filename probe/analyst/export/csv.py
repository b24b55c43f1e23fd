"""CSV for spreadsheets: safe to open, readable without hints, streamed.

Contract: :func:`write_csv` writes one row per measurement with :data:`COLUMNS`: every flat
field of the JSON Lines record (:data:`probe.analyst.export.records.FLAT`, ``verdict`` in words
included), then ``ooni_verdict`` and the nested sections as compact JSON text. A missing value is
an empty cell, never ``null``; booleans are ``true``/``false``; ``started_at`` is UTC as
``YYYY-MM-DD HH:MM:SS``, which spreadsheets read as a date and time. A text cell that a
spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return, or their full-width forms) is prefixed with ``'``, as OWASP advises. ``excel=True`` starts
the file with a byte-order mark, so Excel reads UTF-8 (Vietnamese) text correctly. The nested
sections come from SQLite as JSON text: no row is parsed in Python but its throughput.
"""

from __future__ import annotations

from typing import Any, BinaryIO

import msgspec

from probe import words as verdicts
from probe.analyst.export.causes import cause_index
from probe.analyst.export.records import BOOLEANS, FLAT, NESTED, throughput_record
from probe.store import RowFilter, Store
from probe.store.reads import STORED_FLAT

COLUMNS = [*FLAT, "ooni_verdict", *NESTED]
FORMULA_START = frozenset("=+-@\t\r＝＋－＠")
# What it reads, in bulk: the store's flat columns (its one declaration, STORED_FLAT), then the
# JSON ones it slices as text and the derived ones (EXPORT_COLUMNS); the record's flat fields
# are among them (tests/test_export_columns.py).
_SQL = [
    *STORED_FLAT,
    "ooni_verdict",
    "throughput",
    "observations_utf8",
    "control",
    "throttle_label",
]
_TEXT = frozenset(
    c for c in FLAT if c not in BOOLEANS and c not in ("bytes_used", "runtime", "started_at")
)


class _Sections(msgspec.Struct):
    """The observations' step lists as raw JSON, sliced out without being parsed into
    Python objects."""

    dns: msgspec.Raw = msgspec.Raw(b"[]")
    tcp: msgspec.Raw = msgspec.Raw(b"[]")
    tls: msgspec.Raw = msgspec.Raw(b"[]")
    http: msgspec.Raw = msgspec.Raw(b"[]")
    quic: msgspec.Raw = msgspec.Raw(b"null")


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, str) and v[:1] in FORMULA_START:
        return "'" + v
    return v


def _b(v: Any) -> str:
    return "" if v is None else ("true" if v else "false")


def _bool(v: Any) -> bool | None:
    return None if v is None else bool(v)


def _quote(text: str) -> str:
    """RFC 4180 quoting, as the csv module writes it (QUOTE_MINIMAL). Done here for the cells
    that hold JSON: csv.writer scans each character in Python-level state, about 35 MB/s on
    them, and those cells are nearly the whole file; str.replace runs at memory speed."""
    if '"' in text or "," in text or "\n" in text or "\r" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


def _quoted(raw: bytes) -> bytes:
    return b'"' + raw.replace(b'"', b'""') + b'"'


def _text(v: Any) -> str:
    """A text cell: empty when missing, formulas neutralised, quoted when it must be."""
    if v is None:
        return ""
    text = v if isinstance(v, str) else str(v)
    if text[:1] in FORMULA_START:
        text = "'" + text
    if '"' in text or "," in text or "\n" in text or "\r" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


def _boolean(v: Any) -> str:
    return "" if v is None else ("true" if v else "false")


def _time(v: Any) -> str:
    if isinstance(v, str) and len(v) >= 19 and v[10] == "T":
        return f"{v[:10]} {v[11:19]}"
    return _text(v)


def _number(v: Any) -> str:
    return "" if v is None else str(v)


def write_csv(store: Store, f: RowFilter, out: BinaryIO, *, excel: bool = False) -> int:
    newline = "\r\n" if excel else "\n"
    if excel:
        out.write("\ufeff".encode())
    out.write((",".join(COLUMNS) + newline).encode())
    at = {c: i for i, c in enumerate(_SQL)}
    verdict_at = FLAT.index("verdict")
    plan = [
        (
            at[c],
            _boolean
            if c in BOOLEANS
            else _time
            if c == "started_at"
            else _text
            if c in _TEXT
            else _number,
        )
        for c in FLAT
        if c != "verdict"
    ]
    i_blocking, i_accessible, i_evidence = at["blocking"], at["accessible"], at["evidence"]
    i_offline, i_throttled, i_blockpage = at["offline"], at["throttled"], at["blockpage"]
    i_label, i_ooni, i_tp, i_control = (
        at["throttle_label"],
        at["ooni_verdict"],
        at["throughput"],
        at["control"],
    )
    i_obs, i_prop, i_title = at["observations_utf8"], at["body_proportion"], at["title_match"]
    diff = [at[k] for k in ("body_length_match", "status_code_match", "headers_match")]
    encode, words, n = msgspec.json.encode, verdicts.words, 0
    causes = cause_index(store)
    i_target, i_network, i_started = at["target"], at["network"], at["started_at"]
    sections = msgspec.json.Decoder(_Sections).decode
    nl = newline.encode()
    for rows in store.stream(f, _SQL):
        lines: list[bytes] = []
        for r in rows:
            cells = [fmt(r[i]) for i, fmt in plan]
            cells.insert(
                verdict_at,
                words(
                    r[i_blocking],
                    r[i_accessible],
                    r[i_evidence],
                    r[i_offline],
                    r[i_throttled],
                    blockpage=r[i_blockpage],
                    throttle_label=r[i_label],
                ),
            )
            ooni = r[i_ooni]
            cells.append("" if ooni is None else _quote(ooni))
            http_diff = {
                "body_proportion": r[i_prop],
                "body_length_match": _bool(r[diff[0]]),
                "status_code_match": _bool(r[diff[1]]),
                "headers_match": _bool(r[diff[2]]),
                "title_match": _bool(r[i_title]),
            }
            cells.append(_quote(encode(http_diff).decode()))
            tp = r[i_tp]
            cause = causes.cause(r[i_target], r[i_network], r[i_started])
            cells.append(_quote(encode(throughput_record(tp, cause)).decode()) if tp else "")
            steps = sections(r[i_obs])
            control = r[i_control]
            tail = b"" if control in (None, "null") else _quoted(control.encode())
            lines.append(
                b",".join(
                    (
                        ",".join(cells).encode(),
                        _quoted(bytes(steps.dns)),
                        _quoted(bytes(steps.tcp)),
                        _quoted(bytes(steps.tls)),
                        _quoted(bytes(steps.http)),
                        tail,
                        b"" if bytes(steps.quic) == b"null" else _quoted(bytes(steps.quic)),
                    )
                )
            )
            n += 1
        lines.append(b"")
        out.write(nl.join(lines))
    return n


def write_csv_records(recs: Any, out: BinaryIO, *, excel: bool = False) -> int:
    """The same CSV from :func:`probe.analyst.export.records.records` dicts (slower: every row is
    parsed and encoded again; for callers that already hold records)."""
    newline = "\r\n" if excel else "\n"
    if excel:
        out.write("\ufeff".encode())
    out.write((",".join(COLUMNS) + newline).encode())
    n = 0
    for rec in recs:
        cells: list[str] = []
        for c in FLAT:
            v = rec.get(c)
            if v is None:
                cells.append("")
            elif c in BOOLEANS:
                cells.append("true" if v else "false")
            elif c == "blocking":
                cells.append("false" if v is False else _quote(_cell(v)))
            elif c == "started_at":
                cells.append(_quote(f"{v[:10]} {v[11:19]}" if len(v) >= 19 else _cell(v)))
            elif c in _TEXT:
                cells.append(_quote(_cell(v) if isinstance(v, str) else str(v)))
            else:
                cells.append(str(v))
        for c in ("ooni_verdict", *NESTED):
            v = rec.get(c)
            cells.append("" if v is None else _quote(msgspec.json.encode(v).decode()))
        out.write((",".join(cells) + newline).encode("utf-8"))
        n += 1
    return n
