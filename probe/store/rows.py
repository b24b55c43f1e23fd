"""The row codec: a :class:`~probe.model.Measurement` to its ``measurements`` row and back.

Contract: pure functions, no SQL. Verdicts become flat columns (``blocking`` False is stored
as ``"false"``, booleans as 0/1, None as NULL) for analysts; observations, control evidence,
throughput tests and ``extra`` become JSON columns (what ``reclassify`` replays). Response
bodies go to their own rows, compressed, one per SHA-256, each with the hash of the content it
stores (what the chain binds, ``probe.evidence``). Decoding gives back what was encoded.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import msgspec

from probe.model import (
    ControlEvidence,
    Measurement,
    Observations,
    ThroughputRecord,
    Verdict,
    control_to_json,
    observations_to_json,
    throughput_to_json,
)


def bool_to_db(v: bool | None) -> int | None:
    return None if v is None else int(v)


def json_to_db(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


def blocking_to_db(v: Any) -> str | None:
    if v is None:
        return None
    if v is False:
        return "false"
    return str(v)


def blocking_from_db(v: str | None) -> Any:
    return False if v == "false" else v


@dataclass(frozen=True, slots=True)
class RoundRecord:
    """One row of ``rounds``: a round of measurements (``kind`` run, pages or throughput), or a
    round the budget skipped (``status`` budget, with its ``note``). ``status`` ok or offline
    once finished, interrupted when a crash or a stop cut it short; ``pid`` is its writer."""

    id: str
    device_id: str
    started_at: str
    kind: str
    finished_at: str | None = None
    targets: int = 0
    network_ok: bool | None = None
    bytes_used: int = 0
    software: str | None = None
    status: str | None = None
    note: str | None = None
    pid: int | None = None
    probe_asn: str | None = None
    probe_cc: str | None = None
    network_name: str | None = None
    network_source: str | None = None
    resolver_kind: str | None = None
    # How the volunteer's public address was known (m008): "stun,helper", ... or "unknown"
    # (address literals masked conservatively); never the address itself.
    public_address: str | None = None


def round_row(r: RoundRecord) -> dict[str, Any]:
    """The ``rounds`` row of a round record (``network_ok`` 0/1)."""
    return {**asdict(r), "network_ok": bool_to_db(r.network_ok)}


def measurement_row(m: Measurement) -> dict[str, Any]:
    """The ``measurements`` row of a measurement: flat verdict columns, JSON records."""
    v = m.verdict
    return {
        "id": m.id,
        "round_id": m.round_id,
        "device_id": m.device_id,
        "source": m.source,
        "target": m.target,
        "url": m.url,
        "category": m.category,
        "is_control": int(m.is_control),
        "started_at": m.started_at,
        "runtime": m.runtime,
        "resolver": m.resolver,
        "control_resolver": m.control_resolver,
        "probe_asn": m.probe_asn,
        "probe_cc": m.probe_cc,
        "software": m.software,
        "network_ok": bool_to_db(m.network_ok),
        "throughput": json_to_db(throughput_to_json(m.throughput)),
        "bytes_used": m.bytes_used,
        "observations": json.dumps(observations_to_json(m.observations), ensure_ascii=False),
        "control": json.dumps(control_to_json(m.control)),
        "extra": json.dumps(m.extra),
        **verdict_columns(v),
        # m007's columns, only when known: a row shaped for an older schema still inserts
        **{
            k: val
            for k, val in (("network_name", m.network_name), ("resolver_kind", m.resolver_kind))
            if val is not None
        },
    }


def verdict_columns(v: Verdict) -> dict[str, Any]:
    """A verdict as its flat columns (``blocking`` ``"false"`` for False, booleans 0/1)."""
    return {
        "blocking": blocking_to_db(v.blocking),
        "accessible": bool_to_db(v.accessible),
        "dns_consistency": v.dns_consistency,
        "failing_step": v.failing_step,
        "failure": v.failure,
        "blockpage": v.blockpage,
        "evidence": v.evidence,
        "offline": int(v.offline),
        "throttled": bool_to_db(v.throttled),
        "body_proportion": v.body_proportion,
        "body_length_match": bool_to_db(v.body_length_match),
        "status_code_match": bool_to_db(v.status_code_match),
        "headers_match": bool_to_db(v.headers_match),
        "title_match": bool_to_db(v.title_match),
        "rule_id": v.rule_id,
        "rules_version": v.rules_version,
        # m014's columns, only when QUIC was judged: a row for an older schema still writes
        **({"quic": v.quic, "quic_rule": v.quic_rule} if v.quic_rule is not None else {}),
    }


def stored_bodies(m: Measurement) -> list[tuple[tuple[str, int | None, int, bytes], str]]:
    """The ``bodies`` rows of a measurement's responses, (sha256, length, stored, data) with the
    body compressed (one per SHA-256 is kept: ``INSERT OR IGNORE``), each with the SHA-256 of the
    content it stores (the UTF-8 text, before compression): what ``body_digests`` bind."""
    out = []
    for h in m.observations.http:
        if h.body_sha256 and h.body is not None:
            text = h.body.encode("utf-8")
            row = (h.body_sha256, h.body_length, len(text), zlib.compress(text, 6))
            out.append((row, hashlib.sha256(text).hexdigest()))
    return out


def body_text(data: bytes) -> str:
    return zlib.decompress(data).decode("utf-8", "replace")


def verdict_from_row(row: Mapping[str, Any]) -> Verdict:
    """The stored verdict of a measurement row, every field."""

    def b(key: str) -> bool | None:
        return None if row[key] is None else bool(row[key])

    return Verdict(
        blocking=blocking_from_db(row["blocking"]),
        accessible=b("accessible"),
        rule_id=row["rule_id"],
        rules_version=row["rules_version"],
        evidence=row["evidence"],
        dns_consistency=row["dns_consistency"],
        failing_step=row["failing_step"],
        failure=row["failure"],
        blockpage=row["blockpage"],
        body_proportion=row["body_proportion"],
        body_length_match=b("body_length_match"),
        status_code_match=b("status_code_match"),
        headers_match=b("headers_match"),
        title_match=b("title_match"),
        offline=bool(row["offline"]),
        throttled=b("throttled"),
        quic=row.get("quic"),
        quic_rule=row.get("quic_rule"),
    )


# Typed JSON decoders (msgspec, straight from the stored text): the same records as
# ``*_from_json(json.loads(...))``, without building Python dicts on the way.
_control = msgspec.json.Decoder(ControlEvidence | None)
_throughput = msgspec.json.Decoder(ThroughputRecord | None)
_observations = msgspec.json.Decoder(Observations)


def control_from_row(row: Mapping[str, Any]) -> ControlEvidence | None:
    raw = row["control"]
    return _control.decode(raw) if raw else None


def throughput_from_row(row: Mapping[str, Any]) -> ThroughputRecord | None:
    raw = row.get("throughput")
    return _throughput.decode(raw) if raw else None


def observations_from_row(row: Mapping[str, Any]) -> Observations:
    """The stored observations, without their bodies (kept apart, once per SHA-256)."""
    return _observations.decode(row["observations"])
