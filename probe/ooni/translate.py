"""OONI Web Connectivity measurements (df-000 + ts-017 test keys) -> our observations.

Contract: ``from_ooni(measurement)`` is pure. It turns an OONI Web Connectivity measurement into
:class:`Observations` (system path: ``getaddrinfo``/``udp`` lookups and endpoints tagged
``classic``; control path: ``doh`` lookups and the other endpoints) and
:class:`ControlEvidence` (the test helper's ``control`` answer; None when the measurement says
no helper was asked: ``control`` and ``control_failure`` both null), plus OONI's own verdict,
kept apart so our classifier never sees it. probe's own export (:mod:`probe.analyst.export.ooni`)
comes back as it was: its resolver under test is tagged ``classic``, its control resolver
``probe_control``, ``x_body_length`` gives a whole body's length and the ``probe_network_ok``
annotation the round's ``network_ok``. OONI's ``quic_handshakes`` and its HTTP/3 requests
(``network`` "udp") become :attr:`Observations.quic`, so the HTTP/3 verdict can be made again
(probe's export tags each handshake's role; in OONI's own, an unverified handshake is a neutral
name's). It raises :class:`OONIFormatError` for input that is not
a Web Connectivity measurement, and nothing else.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urljoin, urlsplit

import msgspec

from probe import addr, failures
from probe.control import to_evidence
from probe.errors import OONIFormatError
from probe.model import (
    REDIRECT_STATUSES,
    ControlEvidence,
    DNSAnswer,
    DNSQuery,
    HTTPTransaction,
    Observations,
    QUICHandshake,
    QUICObservations,
    TCPConnect,
    TLSHandshake,
    no_address_failure,
)
from probe.pages import extract_title
from probe.words import N_

VERDICT_KEYS = (
    "dns_experiment_failure",
    "dns_consistency",
    "control_failure",
    "http_experiment_failure",
    "body_length_match",
    "body_proportion",
    "status_code_match",
    "headers_match",
    "title_match",
    "x_status",
    "x_dns_flags",
    "x_blocking_flags",
    "x_null_null_flags",
    "accessible",
    "blocking",
)
_DEPTH = re.compile(r"^depth=([0-9]{1,6})$")  # ASCII, and few: int() refuses 4300 digits


# -- OONI's measurement, as typed records: anything of another shape is an OONIFormatError --------
class _Tagged(msgspec.Struct):
    tags: list[str] | None = None
    t0: float | None = None
    t: float | None = None


class _Answer(msgspec.Struct):
    answer_type: str | None = None
    ipv4: str | None = None
    ipv6: str | None = None
    hostname: str | None = None
    ttl: int | None = None


class _Query(_Tagged):
    hostname: str | None = None
    query_type: str | None = None
    engine: str | None = None
    resolver_address: str | None = None
    answers: list[_Answer] | None = None
    failure: str | None = None


class _Status(msgspec.Struct):
    success: bool | None = None
    failure: str | None = None


class _Connect(_Tagged):
    ip: str | None = None
    port: int | None = None
    status: _Status | None = None


class _Handshake(_Tagged):
    address: str | None = None
    server_name: str | None = None
    tls_version: str | None = None
    cipher_suite: str | None = None
    negotiated_protocol: str | None = None
    failure: str | None = None


class _Body(msgspec.Struct):
    format: str | None = None
    data: str | None = None


class _Request(msgspec.Struct):
    url: str | None = None


class _Response(msgspec.Struct):
    code: int | None = None
    headers: dict[str, str] | None = None
    headers_list: list[tuple[str, str]] | None = None
    body: str | _Body | None = None
    body_is_truncated: bool | None = None
    x_body_length: int | None = None  # probe's export: the whole body's length


class _QUICHandshake(_Tagged):
    """An entry of OONI's ``quic_handshakes`` (df-006's TLS handshake shape, over UDP);
    probe-cli's netxlite traces also say ``negotiated_proto`` and ``started`` for the same."""

    address: str | None = None
    server_name: str | None = None
    tls_version: str | None = None
    cipher_suite: str | None = None
    negotiated_protocol: str | None = None
    negotiated_proto: str | None = None
    no_tls_verify: bool | None = None
    failure: str | None = None
    started: float | None = None
    x_quic_version: str | None = None  # probe's export
    x_answered: bool | None = None  # probe's export: did any datagram come back?


class _Round(_Tagged):
    network: str | None = None  # "udp": an HTTP/3 request
    address: str | None = None
    request: _Request | None = None
    response: _Response | None = None
    failure: str | None = None


class _TestKeys(msgspec.Struct):
    queries: list[_Query] | None = None
    tcp_connect: list[_Connect] | None = None
    tls_handshakes: list[_Handshake] | None = None
    quic_handshakes: list[_QUICHandshake] | None = None
    requests: list[_Round] | None = None
    control: dict[str, Any] | None = None
    control_failure: str | None = None


class _Measurement(msgspec.Struct):
    test_name: str
    input: str
    test_keys: _TestKeys
    measurement_start_time: str | None = None
    probe_asn: str | None = None
    probe_cc: str | None = None
    report_id: str | None = None
    software_name: str | None = None
    software_version: str | None = None
    test_version: str | None = None
    measurement_uid: str | None = None
    annotations: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Imported:
    observations: Observations
    control: ControlEvidence | None
    ooni_verdict: dict[str, Any]
    meta: dict[str, Any]
    network_ok: bool | None = None  # probe's export: did the round's control sites load?


def _depth(tags: list[str] | None) -> int:
    for t in tags or []:
        m = _DEPTH.match(t)
        if m:
            return int(m.group(1))
    return 0


def _role(tags: list[str] | None) -> str:
    return "system" if tags is None or "classic" in tags else "control"


def _split_endpoint(text: str) -> tuple[str, int]:
    try:
        return addr.parse_endpoint(text)
    except addr.AddressError:
        return "", 0


def _body(resp: _Response) -> bytes:
    body = resp.body
    if body is None:
        return b""
    if isinstance(body, _Body):
        if body.format == "base64":
            try:
                return base64.b64decode(body.data or "", validate=True)
            except binascii.Error:
                raise OONIFormatError(N_("a response body is not valid base64")) from None
        return (body.data or "").encode("utf-8", "surrogateescape")
    return body.encode("utf-8", "surrogateescape")


def _headers(resp: _Response) -> tuple[tuple[str, str], ...]:
    if resp.headers_list:
        return tuple(resp.headers_list)
    return tuple((resp.headers or {}).items())


def _queries(tk: _TestKeys) -> list[DNSQuery]:
    out = []
    for q in tk.queries or []:
        engine = q.engine or "getaddrinfo"
        # OONI's classic analysis judges the system resolver (getaddrinfo). Its extra udp and
        # DoH lookups run from the probe through the network under test, so they are neither
        # the resolver under test nor an uncensored control: kept, but the classifier skips them.
        # probe's own export tags its resolver under test "classic" and its control resolver
        # "probe_control" (probe.analyst.export.ooni), so its measurements come back as they were.
        tags = q.tags or []
        role = "system" if engine == "getaddrinfo" or "classic" in tags else f"probe-{engine}"
        if "probe_control" in tags:
            role = "control"
        answers = []
        for a in q.answers or []:
            value = a.ipv4 or a.ipv6 or a.hostname
            if a.answer_type and value:
                answers.append(DNSAnswer(a.answer_type, value, a.ttl))
        out.append(
            DNSQuery(
                hostname=q.hostname or "",
                query_type=q.query_type or "A",
                resolver=role,
                resolver_address=q.resolver_address or engine,
                engine=engine,
                answers=tuple(answers),
                failure=_failure(q.failure),
                t0=q.t0 or 0.0,
                t=q.t or 0.0,
                depth=_depth(q.tags),
            )
        )
    return out


def _failure(text: str | None) -> str | None:
    return failures.from_ooni(text)


def _chain_failure(
    depth: int, dns: list[DNSQuery], tcp: list[TCPConnect], tls: list[TLSHandshake], url: str
) -> HTTPTransaction:
    """Why the system chain stopped at ``depth`` before any HTTP request."""
    f = no_address_failure([q for q in dns if q.depth == depth and q.resolver == "system"])
    if f is not None:
        return HTTPTransaction(
            url=url, depth=depth, failure=f, failed_operation=failures.OP_RESOLVE
        )
    conns = [t for t in tcp if t.depth == depth and "system" in t.sources]
    wanted_port = addr.port_of_scheme(url.partition(":")[0])
    conns = [t for t in conns if t.port == wanted_port] or conns
    if conns and not any(t.ok for t in conns):
        return HTTPTransaction(
            url=url, depth=depth, failure=conns[0].failure, failed_operation=failures.OP_CONNECT
        )
    hands = [h for h in tls if h.depth == depth and "system" in h.sources]
    if hands and not any(h.ok for h in hands):
        return HTTPTransaction(
            url=url, depth=depth, failure=hands[0].failure, failed_operation=failures.OP_TLS
        )
    if not conns:  # no endpoint was tried: the only answers were bogons OONI does not dial
        return HTTPTransaction(
            url=url, depth=depth, failure=failures.DNS_BOGON, failed_operation=failures.OP_RESOLVE
        )
    return HTTPTransaction(
        url=url, depth=depth, failure=failures.GENERIC_TIMEOUT, failed_operation=failures.OP_HTTP
    )


def _control(tk: _TestKeys, raw: dict[str, Any]) -> ControlEvidence | None:
    if "control" in raw and raw["control"] is None and raw.get("control_failure", "") is None:
        return None  # no test helper was asked (probe's export of a run without one)
    if not tk.control:
        # OONI's own control_failure when it has one (e.g. "connection_refused"); a
        # measurement with neither has no control evidence at all.
        return ControlEvidence(
            source="ooni",
            failure=tk.control_failure or failures.UNKNOWN_PREFIX + "no control answer",
        )
    evidence = to_evidence(tk.control, source="ooni")
    if evidence.failure is not None:
        return evidence
    return replace(evidence, failure=tk.control_failure)


# -- HTTP/3 (issue 24) ------------------------------------------------------------------------
ROLE_H3 = "h3"  # probe.measure.quic.ROLE_H3
_QUIC_ROLES = ("system", "neutral_sni", "helper_sni", "helper_neutral")  # probe's export tags
# Failures that mean no datagram came back (a drop, or ICMP): "nothing answered", when the
# measurement does not say (probe's own export does, as x_answered).
_SILENT = frozenset(
    {
        failures.GENERIC_TIMEOUT,
        failures.CONNECTION_REFUSED,
        failures.HOST_UNREACHABLE,
        failures.NETWORK_UNREACHABLE,
    }
)


def _quic_role(h: _QUICHandshake) -> str:
    """probe's export tags the role; in OONI's own, a handshake that did not verify the
    certificate is a neutral name's, any other the site's."""
    for t in h.tags or []:
        if t in _QUIC_ROLES:
            return t
    return "neutral_sni" if h.no_tls_verify else "system"


def _quic(entries: list[_QUICHandshake], h3: list[HTTPTransaction], url: str) -> QUICObservations:
    handshakes = []
    for h in entries:
        ip, port = _split_endpoint(h.address or ":0")
        failure = _failure(h.failure)
        role = _quic_role(h)
        answered = h.x_answered if h.x_answered is not None else failure not in _SILENT
        handshakes.append(
            QUICHandshake(
                ip=ip,
                port=port,
                server_name=h.server_name or "",
                sources=("helper",) if role.startswith("helper") else ("system",),
                role=role,
                quic_version=h.x_quic_version,
                tls_version=h.tls_version,
                cipher_suite=h.cipher_suite,
                negotiated_protocol=h.negotiated_protocol or h.negotiated_proto,
                answered=answered,
                failure=failure,
                t0=h.t0 if h.t0 is not None else h.started or 0.0,
                t=h.t or 0.0,
                depth=_depth(h.tags),
            )
        )
    system = next((h.server_name for h in handshakes if h.role == "system" and h.server_name), None)
    host = system or (urlsplit(url).hostname or "").lower() or None
    return QUICObservations(host=host, handshakes=tuple(handshakes), http=tuple(h3))


def from_ooni(doc: Any) -> Imported:
    if not isinstance(doc, dict):
        raise OONIFormatError(N_("not a JSON object"))
    if doc.get("test_name") != "web_connectivity":
        raise OONIFormatError(N_("not a web_connectivity measurement"))
    try:
        m = msgspec.convert(doc, type=_Measurement, strict=False)
    except msgspec.ValidationError as exc:
        raise OONIFormatError(
            N_("not an OONI measurement: {problem}"), problem=str(exc)[:200]
        ) from None
    tk, url = m.test_keys, m.input
    dns = _queries(tk)
    tcp = [
        TCPConnect(
            ip=t.ip or "",
            port=t.port or 0,
            sources=(_role(t.tags),),
            failure=_failure((t.status or _Status()).failure),
            t0=t.t0 or 0.0,
            t=t.t or 0.0,
            depth=_depth(t.tags),
        )
        for t in tk.tcp_connect or []
    ]
    tls = []
    for h in tk.tls_handshakes or []:
        ip, port = _split_endpoint(h.address or ":0")
        tls.append(
            TLSHandshake(
                ip=ip,
                port=port,
                server_name=h.server_name or "",
                sources=(_role(h.tags),),
                tls_version=h.tls_version,
                cipher_suite=h.cipher_suite,
                negotiated_protocol=h.negotiated_protocol,
                failure=_failure(h.failure),
                t0=h.t0 or 0.0,
                t=h.t or 0.0,
                depth=_depth(h.tags),
            )
        )
    http: list[HTTPTransaction] = []
    h3: list[HTTPTransaction] = []
    for r in reversed(tk.requests or []):  # OONI lists the latest request first
        resp = r.response or _Response()
        body = _body(resp)
        code = resp.code
        ip, port = _split_endpoint(r.address) if r.address else ("", 0)
        failure = _failure(r.failure)
        headers = _headers(resp)
        location = dict((k.lower(), v) for k, v in headers).get("location")
        # probe's export: the whole body's length, where the body field holds only its start
        whole = resp.x_body_length if (resp.x_body_length or -1) >= 0 else None
        (h3 if r.network == "udp" else http).append(
            HTTPTransaction(
                url=(r.request.url if r.request else None) or url,
                role=ROLE_H3 if r.network == "udp" else _role(r.tags),
                ip=ip or None,
                port=port or None,
                depth=_depth(r.tags),
                status_code=code if code is not None and code > 0 else None,
                headers=headers,
                title=extract_title(body) if body else None,
                body_length=whole if whole is not None else len(body) if code else None,
                body_sha256=hashlib.sha256(body).hexdigest() if code else None,
                body_truncated=bool(resp.body_is_truncated) and whole is None,
                body=body[:65536].decode("utf-8", "replace") if body else None,
                location=location,
                failure=failure,
                failed_operation=failures.OP_HTTP if failure else None,
                t0=r.t0 or 0.0,
                t=r.t or 0.0,
            )
        )
    http.sort(key=lambda h: (h.role != "system", h.depth))
    system = [h for h in http if h.role == "system"]
    last = system[-1] if system else None
    if last is None:
        http.insert(0, _chain_failure(0, dns, tcp, tls, url))
    elif last.failure is None and last.status_code in REDIRECT_STATUSES and last.location:
        nxt = urljoin(last.url, last.location)
        # A redirect to a literal non-internet address ends the chain (probe never follows
        # one); any other redirect that ends it stopped for a reason the next hop says.
        if addr.non_internet_literal(urlsplit(nxt).hostname or "") is None:
            http.insert(len(system), _chain_failure(last.depth + 1, dns, tcp, tls, nxt))
    obs = Observations(url, tuple(dns), tuple(tcp), tuple(tls), tuple(http))
    if tk.quic_handshakes or h3:
        obs = replace(obs, quic=_quic(tk.quic_handshakes or [], h3, url))
    raw_keys = doc["test_keys"]
    verdict = {k: raw_keys[k] for k in VERDICT_KEYS if k in raw_keys}
    meta = {
        "probe_asn": m.probe_asn,
        "probe_cc": m.probe_cc,
        "report_id": m.report_id,
        "measurement_start_time": m.measurement_start_time,
        "software_name": m.software_name,
        "software_version": m.software_version,
        "test_version": m.test_version,
        "measurement_uid": m.measurement_uid,
    }
    flag = (m.annotations or {}).get("probe_network_ok")
    network_ok = {"true": True, "false": False}.get(str(flag))
    return Imported(obs, _control(tk, raw_keys), verdict, meta, network_ok)
