"""OONI's data format: one Web Connectivity measurement (df-000 + ts-017 test keys) per line.

Contract: :func:`to_ooni` turns a stored measurement row into what OONI Probe would have
submitted for the same URL: df-000's base fields (``measurement_start_time`` as
``YYYY-MM-DD HH:MM:SS`` UTC, ``probe_asn``/``probe_cc`` from the row or OONI's unknowns ``AS0``
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
from probe.analyst.export.records import verdict_words
from probe.store import RowFilter, Store, blocking_from_db

CONTROL_TAG = "probe_control"
TEST_VERSION = "0.5.28"  # Web Connectivity's version whose test keys these follow
HTTP_OPERATIONS = {failures.OP_HTTP, failures.OP_READ, "deadline"}
_decode = msgspec.json.Decoder()


def _tags(depth: int, system: bool, control: bool = False) -> list[str]:
    tags = [f"depth={depth}"]
    if system:
        tags.append("classic")
    elif control:
        tags.append(CONTROL_TAG)
    return tags


def _query(q: dict[str, Any], i: int) -> dict[str, Any]:
    answers = []
    for a in q.get("answers") or []:
        key = {"A": "ipv4", "AAAA": "ipv6"}.get(a["type"], "hostname")
        answers.append({"answer_type": a["type"], key: a["value"], "ttl": a.get("ttl")})
    return {
        "answers": answers,
        "engine": q["engine"],
        "failure": q.get("failure"),
        "hostname": q["hostname"],
        "query_type": q["query_type"],
        "resolver_hostname": None,
        "resolver_port": None,
        "resolver_address": q.get("resolver_address") or "",
        "t0": q.get("t0", 0.0),
        "t": q.get("t", 0.0),
        "tags": _tags(
            q.get("depth", 0), q.get("resolver") == "system", q.get("resolver") == "control"
        ),
        "transaction_id": i,
    }


def _tcp(c: dict[str, Any], i: int) -> dict[str, Any]:
    return {
        "ip": c["ip"],
        "port": c["port"],
        "status": {"blocked": None, "failure": c.get("failure"), "success": not c.get("failure")},
        "t0": c.get("t0", 0.0),
        "t": c.get("t", 0.0),
        "tags": _tags(c.get("depth", 0), "system" in (c.get("sources") or ())),
        "transaction_id": i,
    }


def _tls(h: dict[str, Any], i: int) -> dict[str, Any]:
    return {
        "address": addr.endpoint(h["ip"], h["port"]),
        "cipher_suite": h.get("cipher_suite"),
        "failure": h.get("failure"),
        "negotiated_protocol": h.get("negotiated_protocol"),
        "no_tls_verify": False,
        "peer_certificates": [],  # we keep summaries, not the certificates themselves
        "server_name": h.get("server_name"),
        "t0": h.get("t0", 0.0),
        "t": h.get("t", 0.0),
        "tags": _tags(h.get("depth", 0), "system" in (h.get("sources") or ())),
        "tls_version": h.get("tls_version"),
        "transaction_id": i,
        "x_certificates": h.get("certificates") or [],
    }


def _request(h: dict[str, Any], i: int, body: str | None) -> dict[str, Any]:
    headers = [[k, v] for k, v in h.get("headers") or []]
    code = h.get("status_code")
    text = body or ""
    length = h.get("body_length")
    response: dict[str, Any] = {
        "body": text,
        "body_is_truncated": bool(h.get("body_truncated"))
        or (length is not None and len(text.encode("utf-8")) < length),
        "code": code or 0,
        "headers_list": headers,
        "headers": {k: v for k, v in reversed(headers)},  # the first value of each, as OONI
    }
    if length is not None and not h.get("body_truncated"):
        response["x_body_length"] = length
    return {
        "network": "tcp",
        "address": addr.endpoint(h["ip"], h["port"]) if h.get("ip") and h.get("port") else None,
        "alpn": None,
        "failure": failures.to_ooni(h.get("failure")),
        "request": {
            "body": "",
            "body_is_truncated": False,
            "headers_list": [],
            "headers": {},
            "method": "GET",
            "tor": {"exit_ip": None, "exit_name": None, "is_tor": False},
            "x_transport": "tcp",
            "url": h["url"],
        },
        "response": response,
        "t0": h.get("t0", 0.0),
        "t": h.get("t", 0.0),
        "tags": _tags(h.get("depth", 0), h.get("role") == "system"),
        "transaction_id": i,
    }


def _control(raw: str | None) -> tuple[dict[str, Any] | None, str | None]:
    """(control, control_failure) in OONI's shape, from stored control evidence."""
    c = _decode.decode(raw) if raw else None
    if c is None:
        return None, None
    if c.get("failure"):
        return {}, c["failure"]
    return {
        "tcp_connect": {
            ep: {"status": e["ok"], "failure": e.get("failure")}
            for ep, e in (c.get("tcp_connect") or {}).items()
        },
        "tls_handshake": {
            ep: {
                "server_name": e.get("server_name"),
                "status": e["ok"],
                "failure": e.get("failure"),
            }
            for ep, e in (c.get("tls_handshake") or {}).items()
        },
        "http_request": {
            "body_length": -1 if c.get("http_body_length") is None else c["http_body_length"],
            "failure": c.get("http_failure"),
            "title": c.get("http_title") or "",
            "headers": c.get("http_headers") or {},
            "status_code": c.get("http_status_code") or -1,
        },
        "dns": {"failure": c.get("dns_failure"), "addrs": list(c.get("dns_addrs") or [])},
    }, None


def _ooni_time(stored: str) -> str:
    return f"{stored[:10]} {stored[11:19]}"


def _flag(v: Any) -> bool | None:
    return None if v is None else bool(v)


def to_ooni(row: dict[str, Any], body: Callable[[str], str | None]) -> dict[str, Any]:
    """One stored measurement row -> an OONI Web Connectivity measurement (a dict)."""
    obs = _decode.decode(row["observations"])
    requests = []
    for i, h in enumerate(obs.get("http") or []):
        if h.get("failure") and h.get("failed_operation") not in HTTP_OPERATIONS:
            continue  # never reached HTTP: OONI has no request; DNS, TCP or TLS says why
        sha = h.get("body_sha256")
        requests.append(_request(h, i, body(sha) if sha else None))
    system = [r for r in requests if "classic" in r["tags"]]
    others = [r for r in requests if "classic" not in r["tags"]]
    control, control_failure = _control(row.get("control"))
    step, failure = row.get("failing_step"), row.get("failure")
    software = str(row.get("software") or "probe").partition("/")
    annotations = {
        "probe_measurement_id": row["id"],
        "probe_rule_id": row.get("rule_id") or "",
        "probe_rules_version": row.get("rules_version") or "",
        "probe_verdict": verdict_words(row),
    }
    if row.get("network_ok") is not None:
        annotations["probe_network_ok"] = "true" if row["network_ok"] else "false"
    if row.get("category"):
        annotations["probe_category"] = row["category"]
    started = _ooni_time(row["started_at"])
    return {
        "annotations": annotations,
        "data_format_version": "0.2.0",
        "input": row["url"],
        "measurement_start_time": started,
        "probe_asn": row.get("probe_asn") or "AS0",
        "probe_cc": row.get("probe_cc") or "ZZ",
        "probe_ip": "127.0.0.1",
        "report_id": row.get("round_id") or "",
        "software_name": software[0] or "probe",
        "software_version": software[2],
        "test_helpers": {},
        "test_keys": {
            "queries": [_query(q, i) for i, q in enumerate(obs.get("dns") or [])],
            "tcp_connect": [_tcp(c, i) for i, c in enumerate(obs.get("tcp") or [])],
            "tls_handshakes": [_tls(h, i) for i, h in enumerate(obs.get("tls") or [])],
            "requests": system[::-1] + others[::-1],  # latest first, as OONI lists them
            "control": control,
            "control_failure": control_failure,
            "dns_experiment_failure": failure if step == "dns" else None,
            "http_experiment_failure": (
                failures.to_ooni(failure) if step in ("tcp", "tls", "http") else None
            ),
            "dns_consistency": row.get("dns_consistency"),
            "body_length_match": _flag(row.get("body_length_match")),
            "body_proportion": row.get("body_proportion"),
            "status_code_match": _flag(row.get("status_code_match")),
            "headers_match": _flag(row.get("headers_match")),
            "title_match": _flag(row.get("title_match")),
            "blocking": blocking_from_db(row.get("blocking")),
            "accessible": _flag(row.get("accessible")),
        },
        "test_name": "web_connectivity",
        "test_runtime": row.get("runtime") or 0.0,
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
    for row in store.stream_dicts(f):
        out.write(encode(to_ooni(row, body)) + b"\n")
        n += 1
    return n
