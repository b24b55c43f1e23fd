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
from probe.model import HTTPTransaction, ThroughputRecord, Verdict, control_to_json
from probe.store import RowFilter, Store, Stored
from probe.store.reads import throughput_from_text
from probe.timeutil import iso, parse_iso
from probe.words import N_

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
    "quic",  # the HTTP/3 verdict (issue 24)
    "quic_rule",
]
# ``http3``: the QUIC and HTTP/3 steps (discovery, handshakes, the HTTP/3 GET), or null
NESTED = ["http_diff", "throughput", "dns", "tcp", "tls", "http", "control", "http3"]
BOOLEANS = ("is_control", "accessible", "throttled", "offline", "network_ok")

_builtins = msgspec.to_builtins
_encode = msgspec.json.Encoder().encode


def parse_time(text: str, flag: str) -> str:
    """An ISO-8601 date or date-time (UTC if no zone) -> the form stored in started_at."""
    try:
        return iso(parse_iso(text))
    except ValueError:
        raise ExportError(
            N_("{flag}: {value} is not an ISO-8601 date or time"), flag=flag, value=repr(text)
        ) from None


def stored_words(m: Stored, lang: str = "en") -> str:
    """The verdict in words (:mod:`probe.words`) of a stored measurement."""
    return verdicts.of(m.verdict, throttle_label=m.throttle_label, lang=lang)


def records(
    store: Store,
    f: RowFilter | None = None,
    *,
    since: str | None = None,
    until: str | None = None,
    targets: Iterable[str] = (),
    for_json: bool = False,
) -> Iterator[dict[str, Any]]:
    """The export records (see :func:`record`; ``for_json``: for an encoder)."""
    from probe.analyst.export.causes import cause_index

    if f is None:
        f = RowFilter(since=since, until=until, targets=tuple(targets))
    causes = cause_index(store)
    for m in store.stored(f):
        yield record(m, for_json=for_json, cause=causes.cause(m.target, m.network, m.started_at))


def record(m: Stored, *, for_json: bool = False, cause: str | None = None) -> dict[str, Any]:
    """The export record of one stored measurement (keys in :data:`FLAT` order, then the
    nested sections, then ``ooni_verdict`` for imported rows). ``for_json``: the sections hold
    the typed records themselves (and the HTTP steps their JSON), which msgspec encodes to the
    same bytes as the plain dicts, a third faster than building those dicts first."""
    v = m.verdict
    rec: dict[str, Any] = {
        "id": m.id,
        "target": m.target,
        "url": m.url,
        "category": m.category,
        "is_control": m.is_control,
        "started_at": m.started_at,
        "verdict": stored_words(m),
        "blocking": v.blocking,
        "accessible": v.accessible,
        "throttled": v.throttled,
        "failing_step": v.failing_step,
        "failure": v.failure,
        "dns_consistency": v.dns_consistency,
        "blockpage": v.blockpage,
        "evidence": v.evidence,
        "offline": v.offline,
        "network_ok": m.network_ok,
        "rule_id": v.rule_id,
        "rules_version": v.rules_version,
        "bytes_used": m.bytes_used,
        "runtime": m.runtime,
        "round_id": m.round_id,
        "device_id": m.device_id,
        "source": m.source,
        "software": m.software,
        "resolver": m.resolver,
        "control_resolver": m.control_resolver,
        "probe_asn": m.probe_asn,
        "probe_cc": m.probe_cc,
        "network_name": m.network_name,
        "resolver_kind": m.resolver_kind,
        "quic": v.quic,
        "quic_rule": v.quic_rule,
        "http_diff": http_diff(v),
    }
    obs = m.observations
    if for_json and all(h.body is None for h in obs.http):
        rec.update(dns=obs.dns, tcp=obs.tcp, tls=obs.tls, http=_http_json(obs.http))
        rec["control"] = control_to_json(m.control)  # as stored: CSV from SQLite reads that
    else:
        rec.update(dns=_builtins(obs.dns), tcp=_builtins(obs.tcp), tls=_builtins(obs.tls))
        http = _builtins(obs.http)
        for h in http:
            del h["body"]  # kept apart, once per SHA-256: never in the record
        rec["http"] = http
        rec["control"] = control_to_json(m.control)
    rec["throughput"] = throughput_section(m.throughput, for_json=for_json, cause=cause)
    rec["http3"] = obs.quic if for_json else _builtins(obs.quic)
    if "ooni_verdict" in m.extra:  # imported: OONI's own verdict, beside ours
        rec["ooni_verdict"] = m.extra["ooni_verdict"]
    return rec


def _http_json(http: tuple[HTTPTransaction, ...]) -> msgspec.Raw:
    """The HTTP steps' JSON without their (absent) bodies. Only the steps' own keys can read
    ``,"body":null,`` here: headers are [name, value] lists, and a quote inside a string is
    escaped."""
    return msgspec.Raw(_encode(http).replace(b',"body":null,', b","))


def http_diff(v: Verdict) -> dict[str, Any]:
    return {
        "body_proportion": v.body_proportion,
        "body_length_match": v.body_length_match,
        "status_code_match": v.status_code_match,
        "headers_match": v.headers_match,
        "title_match": v.title_match,
    }


def throughput_record(raw: str | None, cause: str | None = None) -> dict[str, Any] | None:
    """The export's ``throughput`` object from a stored ``throughput`` column's text (for the
    exporters that read columns in bulk)."""
    return throughput_section(throughput_from_text(raw), cause=cause) if raw else None


def throughput_section(
    tp: ThroughputRecord | None, *, for_json: bool = False, cause: str | None = None
) -> dict[str, Any] | None:
    """The export's ``throughput`` object: the analysis, bytes used, and every flow's samples;
    where the site was served from (``edges``, ``target_class``) and the ``cause`` of the
    slowdown this test falls in (:mod:`probe.analyst.export.causes`), if any."""
    if tp is None:
        return None
    a = tp.analysis
    return {
        "bps": None if a is None else a.bps,
        "control_bps": None if a is None else a.control_bps,
        "ratio": None if a is None else a.ratio,
        "p_value": None if a is None else a.p_value,
        "label": None if a is None else a.label,
        "mechanism": None if a is None else a.mechanism,
        "burst_bytes": None if a is None else a.burst_bytes,
        "bytes_used": tp.bytes_used,
        "skipped": tp.skipped,
        "ab": None if a is None else dict(a.ab),
        "helper_bps": None if a is None else a.helper_bps,
        "tests_in_round": tp.tests_in_round,
        "url": tp.url,
        "control": tp.control,
        "samples": tp.flows if for_json else _builtins(tp.flows),
        "target_class": tp.target_class,
        "class_basis": tp.class_basis,
        "edges": tp.edges if for_json else _builtins(tp.edges),
        "cause": cause,
        # HTTP/3 beside TCP in the trials (issue 24): the "h3" flows among the samples
        "h3_bps": None if a is None else a.h3_bps,
        "h3_ratio": None if a is None else a.h3_ratio,
        "h3_p_value": None if a is None else a.h3_p_value,
        "h3_slower": None if a is None else a.h3_slower,
    }
