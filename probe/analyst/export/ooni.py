"""OONI's data format: one Web Connectivity measurement (df-000 + ts-017 test keys) per line.

Contract: :func:`to_ooni` turns a stored measurement (a typed :class:`~probe.store.Stored`,
read with ``Store.stored``) into what OONI Probe would have submitted for the same URL: df-000's
base fields (``measurement_start_time`` as ``YYYY-MM-DD HH:MM:SS`` UTC, ``probe_asn``/``probe_cc``
from the measurement or OONI's unknowns ``AS0``
and ``ZZ``, ``probe_ip`` ``127.0.0.1`` as OONI writes it, never the volunteer's address,
``input``, ``test_name`` ``web_connectivity``, ``software_name``/``software_version``,
``data_format_version`` ``0.2.0``, ``annotations``) and ``test_keys`` in Web Connectivity's shape:
``queries`` (the resolver under test tagged ``classic``, as OONI tags its system resolver;
our control resolver tagged ``probe_control``), ``tcp_connect``, ``tls_handshakes``,
``requests`` (HTTP round trips only, latest first as OONI lists them; a chain that stopped at
DNS, TCP or TLS has none, as in OONI), ``control`` (a test helper's answer in OONI's shape, or
null with a null ``control_failure`` when no helper was asked) and our verdict in OONI's keys
(``blocking``, ``accessible``, ``dns_consistency``, the HTTP diff fields, the experiment
failures). A response body is the stored copy (its first 64 KiB, addresses scrubbed):
``body_is_truncated`` says when it is not the whole body, and ``x_body_length`` gives the whole
body's length when the probe read all of it. Annotations keep what OONI has no field for: our
measurement id, the round's ``network_ok``, the rule and rules version, the category, the
verdict in words. ``probe import --format ooni`` of this output reproduces the verdicts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, BinaryIO

import msgspec

from probe import addr, failures
from probe.analyst.export.records import stored_words
from probe.model import (
    ControlEvidence,
    DNSQuery,
    HTTPTransaction,
    QUICHandshake,
    TCPConnect,
    TLSHandshake,
)
from probe.store import RowFilter, Store, Stored

CONTROL_TAG = "probe_control"
TEST_VERSION = "0.5.28"  # Web Connectivity's version whose test keys these follow
HTTP_OPERATIONS = {failures.OP_HTTP, failures.OP_READ, "deadline"}


def _tags(depth: int, system: bool, control: bool = False) -> list[str]:
    tags = [f"depth={depth}"]
    if system:
        tags.append("classic")
    elif control:
        tags.append(CONTROL_TAG)
    return tags


def _query(q: DNSQuery, i: int) -> dict[str, Any]:
    answers = []
    for a in q.answers:
        key = {"A": "ipv4", "AAAA": "ipv6"}.get(a.type, "hostname")
        answers.append({"answer_type": a.type, key: a.value, "ttl": a.ttl})
    return {
        "answers": answers,
        "engine": q.engine,
        "failure": q.failure,
        "hostname": q.hostname,
        "query_type": q.query_type,
        "resolver_hostname": None,
        "resolver_port": None,
        "resolver_address": q.resolver_address or "",
        "t0": q.t0,
        "t": q.t,
        "tags": _tags(q.depth, q.resolver == "system", q.resolver == "control"),
        "transaction_id": i,
    }


def _tcp(c: TCPConnect, i: int) -> dict[str, Any]:
    return {
        "ip": c.ip,
        "port": c.port,
        "status": {"blocked": None, "failure": c.failure, "success": not c.failure},
        "t0": c.t0,
        "t": c.t,
        "tags": _tags(c.depth, "system" in c.sources),
        "transaction_id": i,
    }


def _tls(h: TLSHandshake, i: int) -> dict[str, Any]:
    return {
        "address": addr.endpoint(h.ip, h.port),
        "cipher_suite": h.cipher_suite,
        "failure": h.failure,
        "negotiated_protocol": h.negotiated_protocol,
        "no_tls_verify": False,
        "peer_certificates": [],  # we keep summaries, not the certificates themselves
        "server_name": h.server_name,
        "t0": h.t0,
        "t": h.t,
        "tags": _tags(h.depth, "system" in h.sources),
        "tls_version": h.tls_version,
        "transaction_id": i,
        "x_certificates": msgspec.to_builtins(h.certificates),
    }


def _quic(h: QUICHandshake, i: int) -> dict[str, Any]:
    """A QUIC handshake as OONI's ``quic_handshakes`` entry (its TLS-or-QUIC handshake shape,
    ``network`` "udp")."""
    return {
        "network": "udp",
        "address": addr.endpoint(h.ip, h.port),
        "cipher_suite": h.cipher_suite,
        "failure": h.failure,
        "negotiated_protocol": h.negotiated_protocol,
        "no_tls_verify": h.role != "system",
        "peer_certificates": [],
        "server_name": h.server_name,
        "t0": h.t0,
        "t": h.t,
        "tags": ["quic", h.role],
        "tls_version": h.tls_version,
        "transaction_id": i,
        "x_quic_version": h.quic_version,
        "x_answered": h.answered,
        "x_certificates": msgspec.to_builtins(h.certificates),
    }


def _request(h: HTTPTransaction, i: int, body: str | None) -> dict[str, Any]:
    headers = [[k, v] for k, v in h.headers]
    text = body or ""
    length = h.body_length
    response: dict[str, Any] = {
        "body": text,
        "body_is_truncated": h.body_truncated
        or (length is not None and len(text.encode("utf-8")) < length),
        "code": h.status_code or 0,
        "headers_list": headers,
        "headers": {k: v for k, v in reversed(headers)},  # the first value of each, as OONI
    }
    if length is not None and not h.body_truncated:
        response["x_body_length"] = length
    return {
        "network": "tcp",
        "address": addr.endpoint(h.ip, h.port) if h.ip and h.port else None,
        "alpn": None,
        "failure": failures.to_ooni(h.failure),
        "request": {
            "body": "",
            "body_is_truncated": False,
            "headers_list": [],
            "headers": {},
            "method": "GET",
            "tor": {"exit_ip": None, "exit_name": None, "is_tor": False},
            "x_transport": "tcp",
            "url": h.url,
        },
        "response": response,
        "t0": h.t0,
        "t": h.t,
        "tags": _tags(h.depth, h.role == "system"),
        "transaction_id": i,
    }


def _control(c: ControlEvidence | None) -> tuple[dict[str, Any] | None, str | None]:
    """(control, control_failure) in OONI's shape, from stored control evidence."""
    if c is None:
        return None, None
    if c.failure:
        return {}, c.failure
    return {
        "tcp_connect": {
            ep: {"status": e.ok, "failure": e.failure} for ep, e in c.tcp_connect.items()
        },
        "tls_handshake": {
            ep: {"server_name": e.server_name, "status": e.ok, "failure": e.failure}
            for ep, e in c.tls_handshake.items()
        },
        "http_request": {
            "body_length": -1 if c.http_body_length is None else c.http_body_length,
            "failure": c.http_failure,
            "title": c.http_title or "",
            "headers": dict(c.http_headers),
            "status_code": c.http_status_code or -1,
        },
        "dns": {"failure": c.dns_failure, "addrs": list(c.dns_addrs)},
        **(
            {
                "quic_handshake": {
                    ep: {"server_name": e.server_name, "status": e.ok, "failure": e.failure}
                    for ep, e in c.quic_handshake.items()
                },
                "http3_request": {
                    "failure": c.http3_failure,
                    "status_code": c.http3_status_code or -1,
                },
            }
            if c.quic_handshake
            else {}
        ),
    }, None


def _ooni_time(stored: str) -> str:
    return f"{stored[:10]} {stored[11:19]}"


def to_ooni(m: Stored, body: Callable[[str], str | None]) -> dict[str, Any]:
    """One stored measurement -> an OONI Web Connectivity measurement (a dict)."""
    obs, v = m.observations, m.verdict
    requests: list[dict[str, Any]] = []
    for i, h in enumerate(obs.http):
        if h.failure and h.failed_operation not in HTTP_OPERATIONS:
            continue  # never reached HTTP: OONI has no request; DNS, TCP or TLS says why
        sha = h.body_sha256
        requests.append(_request(h, i, body(sha) if sha else None))
    system = [r for r in requests if "classic" in r["tags"]]
    others = [r for r in requests if "classic" not in r["tags"]]
    control, control_failure = _control(m.control)
    h3 = obs.quic
    h3_requests = []
    for i, h in enumerate(h3.http if h3 is not None else ()):
        # HTTP/3 GETs, as OONI lists them: in ``requests``, over UDP with ALPN h3
        r = _request(h, 1000 + i, None)
        r.update(network="udp", alpn="h3", tags=["quic"])
        r["request"]["x_transport"] = "udp"
        h3_requests.append(r)
    step, failure = v.failing_step, v.failure
    software = (m.software or "probe").partition("/")
    annotations = {
        "probe_measurement_id": m.id,
        "probe_rule_id": v.rule_id or "",
        "probe_rules_version": v.rules_version or "",
        "probe_verdict": stored_words(m),
    }
    if m.network_ok is not None:
        annotations["probe_network_ok"] = "true" if m.network_ok else "false"
    if m.category:
        annotations["probe_category"] = m.category
    if v.quic_rule:
        annotations["probe_quic"] = v.quic or ""
        annotations["probe_quic_rule"] = v.quic_rule
    started = _ooni_time(m.started_at)
    return {
        "annotations": annotations,
        "data_format_version": "0.2.0",
        "input": m.url,
        "measurement_start_time": started,
        "probe_asn": m.probe_asn or "AS0",
        "probe_cc": m.probe_cc or "ZZ",
        "probe_ip": "127.0.0.1",
        "report_id": m.round_id or "",
        "software_name": software[0] or "probe",
        "software_version": software[2],
        "test_helpers": {},
        "test_keys": {
            "queries": [_query(q, i) for i, q in enumerate(obs.dns)],
            "tcp_connect": [_tcp(c, i) for i, c in enumerate(obs.tcp)],
            "tls_handshakes": [_tls(h, i) for i, h in enumerate(obs.tls)],
            "requests": system[::-1] + others[::-1] + h3_requests,  # latest first, as OONI
            "control": control,
            "control_failure": control_failure,
            "dns_experiment_failure": failure if step == "dns" else None,
            "http_experiment_failure": (
                failures.to_ooni(failure) if step in ("tcp", "tls", "http") else None
            ),
            "dns_consistency": v.dns_consistency,
            "body_length_match": v.body_length_match,
            "body_proportion": v.body_proportion,
            "status_code_match": v.status_code_match,
            "headers_match": v.headers_match,
            "title_match": v.title_match,
            "blocking": v.blocking,
            "accessible": v.accessible,
            **(
                {"quic_handshakes": [_quic(h, i) for i, h in enumerate(h3.handshakes)]}
                if h3 is not None and h3.handshakes
                else {}
            ),
        },
        "test_name": "web_connectivity",
        "test_runtime": m.runtime or 0.0,
        "test_start_time": started,
        "test_version": TEST_VERSION,
    }


def write_ooni(store: Store, f: RowFilter, out: BinaryIO) -> int:
    encode = msgspec.json.Encoder().encode
    cache: dict[str, str | None] = {}

    def body(sha: str) -> str | None:
        if sha not in cache:
            if len(cache) > 256:  # blockpages repeat; keep memory bounded all the same
                cache.clear()
            cache[sha] = store.body(sha)
        return cache[sha]

    n = 0
    for m in store.stored(f):
        out.write(encode(to_ooni(m, body)) + b"\n")
        n += 1
    return n
