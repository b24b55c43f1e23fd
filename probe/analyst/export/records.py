"""One record per measurement, as the JSON Lines export writes it (and CSV flattens it).

Contract: ``records(store, f)`` streams dicts, oldest first, with the flat verdict fields
(:data:`FLAT`: ``verdict`` in words, ``blocking`` and ``accessible`` with OONI ts-017 meaning,
``throttled``, ``rule_id``, ``rules_version``, the failing step and failure, ...) and the nested
sections (:data:`NESTED`: ``http_diff``, ``throughput``, ``dns``, ``tcp``, ``tls``, ``http``,
``control``) holding the observations; ``ooni_verdict`` is added for measurements imported from
OONI. Memory holds one batch of rows, whatever the database's size.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import msgspec

from probe import words as verdicts
from probe.errors import ExportError
from probe.store import RowFilter, Store, Stored, blocking_from_db
from probe.timeutil import iso, parse_iso

FLAT = [
    "id",
    "target",
    "url",
    "category",
    "is_control",
    "started_at",
    "verdict",
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
    "network_name",
    "resolver_kind",
]
NESTED = ["http_diff", "throughput", "dns", "tcp", "tls", "http", "control"]
BOOLEANS = ("is_control", "accessible", "throttled", "offline", "network_ok")

_decode = msgspec.json.Decoder()


def parse_time(text: str, flag: str) -> str:
    """An ISO-8601 date or date-time (UTC if no zone) -> the form stored in started_at."""
    try:
        return iso(parse_iso(text))
    except ValueError:
        raise ExportError(f"{flag}: {text!r} is not an ISO-8601 date or time") from None


def _bool(v: Any) -> bool | None:
    return None if v is None else bool(v)


def verdict_words(row: dict[str, Any], lang: str = "en") -> str:
    """The verdict in words (:mod:`probe.words`) of a stored measurement row."""
    label = None
    if row.get("throttled") and row.get("throughput"):
        label = (_decode.decode(row["throughput"]).get("analysis") or {}).get("label")
    return verdicts.words(
        row["blocking"],
        row["accessible"],
        row["evidence"],
        row["offline"],
        row["throttled"],
        blockpage=row["blockpage"],
        throttle_label=label,
        lang=lang,
    )


def stored_words(m: Stored, lang: str = "en") -> str:
    """The verdict in words (:mod:`probe.words`) of a stored measurement."""
    v = m.verdict
    return verdicts.words(
        v.blocking,
        v.accessible,
        v.evidence,
        v.offline,
        v.throttled,
        blockpage=v.blockpage,
        throttle_label=m.throttle_label,
        lang=lang,
    )


def records(
    store: Store,
    f: RowFilter | None = None,
    *,
    since: str | None = None,
    until: str | None = None,
    targets: Iterable[str] = (),
) -> Iterator[dict[str, Any]]:
    if f is None:
        f = RowFilter(since=since, until=until, targets=tuple(targets))
    for row in store.stream_dicts(f):
        obs = _decode.decode(row["observations"])
        rec = {k: row.get(k) for k in FLAT}
        rec["verdict"] = verdict_words(row)
        rec["blocking"] = blocking_from_db(row["blocking"])
        for k in BOOLEANS:
            rec[k] = _bool(row[k])
        rec["http_diff"] = http_diff(row)
        for section in ("dns", "tcp", "tls", "http"):
            rec[section] = obs.get(section, [])
        for h in obs.get("http", []):
            h.pop("body", None)
        rec["control"] = _decode.decode(row["control"]) if row["control"] else None
        rec["throughput"] = throughput_record(row.get("throughput"))
        extra = _decode.decode(row["extra"]) if row.get("extra") else {}
        if "ooni_verdict" in extra:  # imported: OONI's own verdict, beside ours
            rec["ooni_verdict"] = extra["ooni_verdict"]
        yield rec


def http_diff(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "body_proportion": row["body_proportion"],
        "body_length_match": _bool(row["body_length_match"]),
        "status_code_match": _bool(row["status_code_match"]),
        "headers_match": _bool(row["headers_match"]),
        "title_match": _bool(row["title_match"]),
    }


def throughput_record(raw: str | None) -> dict[str, Any] | None:
    """The export's ``throughput`` object: the analysis, bytes used, and every flow's samples."""
    if not raw:
        return None
    doc = _decode.decode(raw)
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
