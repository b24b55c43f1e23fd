"""Export measurements as JSON Lines or CSV: one record per measurement.

Contract: ``records(store, ...)`` yields dicts with the flat verdict fields (``blocking`` and
``accessible`` with OONI ts-017 meaning, ``throttled``, ``rule_id``, ``rules_version``, the
failing step and failure) and nested ``dns``, ``tcp``, ``tls``, ``http`` and ``control`` sections
holding the observations. ``write(...)`` writes to a temporary file and renames it into place,
so an interrupted export never leaves a half-written file.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from probe.errors import InputError
from probe.store import Store, blocking_from_db
from probe.timeutil import iso, parse_iso

FLAT = [
    "id",
    "target",
    "url",
    "category",
    "is_control",
    "started_at",
    "blocking",
    "accessible",
    "throttled",
    "failing_step",
    "failure",
    "dns_consistency",
    "blockpage",
    "evidence",
    "offline",
    "network_ok",
    "rule_id",
    "rules_version",
    "bytes_used",
    "runtime",
    "round_id",
    "device_id",
    "source",
    "software",
    "resolver",
    "control_resolver",
    "probe_asn",
    "probe_cc",
]
NESTED = ["http_diff", "throughput", "dns", "tcp", "tls", "http", "control"]


class ExportError(InputError):
    pass


def parse_time(text: str, flag: str) -> str:
    """An ISO-8601 date or date-time (UTC if no zone) -> the form stored in started_at."""
    try:
        return iso(parse_iso(text))
    except ValueError:
        raise ExportError(f"{flag}: {text!r} is not an ISO-8601 date or time") from None


def _bool(v: Any) -> bool | None:
    return None if v is None else bool(v)


def records(
    store: Store, *, since: str | None = None, until: str | None = None, targets: Iterable[str] = ()
) -> Iterator[dict[str, Any]]:
    where, params = ["1"], []
    if since:
        where.append("started_at >= ?")
        params.append(since)
    if until:
        where.append("started_at < ?")
        params.append(until)
    names = list(targets)
    if names:
        where.append(f"target IN ({', '.join('?' for _ in names)})")
        params.extend(names)
    for row in store.rows(" AND ".join(where), params):
        obs = json.loads(row["observations"])
        rec = {k: row.get(k) for k in FLAT}
        rec["blocking"] = blocking_from_db(row["blocking"])
        for k in ("accessible", "throttled", "is_control", "offline", "network_ok"):
            rec[k] = _bool(row[k])
        rec["http_diff"] = {
            "body_proportion": row["body_proportion"],
            "body_length_match": _bool(row["body_length_match"]),
            "status_code_match": _bool(row["status_code_match"]),
            "headers_match": _bool(row["headers_match"]),
            "title_match": _bool(row["title_match"]),
        }
        for section in ("dns", "tcp", "tls", "http"):
            rec[section] = obs.get(section, [])
        for h in obs.get("http", []):
            h.pop("body", None)
        rec["control"] = json.loads(row["control"]) if row["control"] else None
        rec["throughput"] = throughput_record(row.get("throughput"))
        extra = json.loads(row["extra"]) if row.get("extra") else {}
        if "ooni_verdict" in extra:  # imported: OONI's own verdict, beside ours
            rec["ooni_verdict"] = extra["ooni_verdict"]
        yield rec


def throughput_record(raw: str | None) -> dict[str, Any] | None:
    """The export's ``throughput`` object: the analysis, bytes used, and every flow's samples."""
    if not raw:
        return None
    doc = json.loads(raw)
    a = doc.get("analysis") or {}
    return {
        "bps": a.get("bps"),
        "control_bps": a.get("control_bps"),
        "ratio": a.get("ratio"),
        "p_value": a.get("p_value"),
        "label": a.get("label"),
        "mechanism": a.get("mechanism"),
        "burst_bytes": a.get("burst_bytes"),
        "bytes_used": doc.get("bytes_used", 0),
        "skipped": doc.get("skipped"),
        "ab": a.get("ab"),
        "helper_bps": a.get("helper_bps"),
        "tests_in_round": doc.get("tests_in_round"),
        "url": doc.get("url"),
        "control": doc.get("control"),
        "samples": doc.get("flows", []),
    }


def write_jsonl(recs: Iterable[dict[str, Any]], out: TextIO) -> int:
    n = 0
    for rec in recs:
        out.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")
        n += 1
    return n


def write_csv(recs: Iterable[dict[str, Any]], out: TextIO) -> int:
    w = csv.DictWriter(out, fieldnames=FLAT + NESTED, lineterminator="\n")
    w.writeheader()
    n = 0
    for rec in recs:
        row = {k: rec[k] for k in FLAT}
        for k in ("blocking", "accessible", "throttled", "is_control", "offline", "network_ok"):
            row[k] = "" if rec[k] is None else json.dumps(rec[k]).strip('"')
        for k in NESTED:
            row[k] = json.dumps(rec[k], ensure_ascii=False, separators=(",", ":"))
        w.writerow(row)
        n += 1
    return n


def write(recs: Iterable[dict[str, Any]], fmt: str, output: str | None) -> int:
    writer = write_jsonl if fmt == "jsonl" else write_csv
    if output is None or output == "-":
        return writer(recs, sys.stdout)
    dest = Path(output)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent or Path("."))
    try:
        with open(fd, "w", encoding="utf-8", newline="") as fh:
            n = writer(recs, fh)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n
