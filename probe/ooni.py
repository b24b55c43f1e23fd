"""OONI Web Connectivity measurements (df-000 + ts-017 test keys) -> our observations.

Contract: ``from_ooni(measurement)`` is pure. It turns an OONI Web Connectivity measurement into
:class:`Observations` (system path: ``getaddrinfo``/``udp`` lookups and endpoints tagged
``classic``; control path: ``doh`` lookups and the other endpoints) and
:class:`ControlEvidence` (the test helper's ``control`` answer; None when the measurement says
no helper was asked: ``control`` and ``control_failure`` both null), plus OONI's own verdict,
kept apart so our classifier never sees it. probe's own export (:mod:`probe.export.ooni`) comes
back as it was: its resolver under test is tagged ``classic``, its control resolver
``probe_control``, ``x_body_length`` gives a whole body's length and the ``probe_network_ok``
annotation the round's ``network_ok``. It raises :class:`OONIFormatError` for input that is not
a Web Connectivity measurement.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, replace
from typing import Any

from probe import addr, failures
from probe.control import to_evidence
from probe.model import (
    REDIRECT_STATUSES,
    ControlEvidence,
    DNSAnswer,
    DNSQuery,
    HTTPTransaction,
    Observations,
    TCPConnect,
    TLSHandshake,
    no_address_failure,
)
from probe.pages import extract_title

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
_DEPTH = re.compile(r"^depth=(\d+)$")


class OONIFormatError(ValueError):
    pass


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


def _role(tags: list[str] | None, default_classic: bool) -> str:
    if tags is None:
        return "system" if default_classic else "control"
    return "system" if "classic" in tags else "control"


def _split_endpoint(text: str) -> tuple[str, int]:
    try:
        return addr.parse_endpoint(text)
    except addr.AddressError:
        return "", 0


def _body(resp: dict[str, Any]) -> bytes:
    body = resp.get("body")
    if body is None:
        return b""
    if isinstance(body, dict):
        if body.get("format") == "base64":
            return base64.b64decode(body.get("data") or "")
        return str(body.get("data") or "").encode()
    return str(body).encode("utf-8", "surrogateescape")


def _headers(resp: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    if resp.get("headers_list"):
        return tuple((str(k), str(v)) for k, v in resp["headers_list"])
    return tuple((str(k), str(v)) for k, v in (resp.get("headers") or {}).items())


def _queries(tk: dict[str, Any]) -> list[DNSQuery]:
    out = []
    for q in tk.get("queries") or []:
        engine = q.get("engine") or "getaddrinfo"
        tags = q.get("tags") or []
        # OONI's classic analysis judges the system resolver (getaddrinfo). Its extra udp and
        # DoH lookups run from the probe through the network under test, so they are neither
        # the resolver under test nor an uncensored control: kept, but the classifier skips them.
        # probe's own export tags its resolver under test "classic" and its control resolver
        # "probe_control" (probe.export.ooni), so its measurements come back as they were.
        role = "system" if engine == "getaddrinfo" or "classic" in tags else f"probe-{engine}"
        if "probe_control" in tags:
            role = "control"
        answers = []
        for a in q.get("answers") or []:
            kind = a.get("answer_type")
            value = a.get("ipv4") or a.get("ipv6") or a.get("hostname")
            if kind and value:
                answers.append(DNSAnswer(kind, value, a.get("ttl")))
        failure = q.get("failure")
        out.append(
            DNSQuery(
                hostname=q.get("hostname") or "",
                query_type=q.get("query_type") or "A",
                resolver=role,
                resolver_address=q.get("resolver_address") or engine,
                engine=engine,
                answers=tuple(answers),
                failure=failure,
                t0=q.get("t0") or 0.0,
                t=q.get("t") or 0.0,
                depth=_depth(q.get("tags")),
            )
        )
    return out


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
    wanted_port = 443 if url.startswith("https://") else 80
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


def _control(tk: dict[str, Any]) -> ControlEvidence | None:
    ctl = tk.get("control")
    if ctl is None and "control" in tk and tk.get("control_failure", "") is None:
        return None  # no test helper was asked (probe's export of a run without one)
    if not ctl:
        return ControlEvidence(
            source="ooni", failure=tk.get("control_failure") or "control_missing"
        )
    return replace(to_evidence(ctl, source="ooni"), failure=tk.get("control_failure"))


def from_ooni(m: dict[str, Any]) -> Imported:
    if not isinstance(m, dict) or m.get("test_name") != "web_connectivity":
        raise OONIFormatError("not a web_connectivity measurement")
    tk = m.get("test_keys")
    url = m.get("input")
    if not isinstance(tk, dict) or not isinstance(url, str):
        raise OONIFormatError("missing test_keys or input")
    dns = _queries(tk)
    tcp = []
    for t in tk.get("tcp_connect") or []:
        status = t.get("status") or {}
        tags = t.get("tags")
        tcp.append(
            TCPConnect(
                ip=t.get("ip") or "",
                port=int(t.get("port") or 0),
                sources=(_role(tags, True),),
                failure=status.get("failure"),
                t0=t.get("t0") or 0.0,
                t=t.get("t") or 0.0,
                depth=_depth(tags),
            )
        )
    tls = []
    for h in tk.get("tls_handshakes") or []:
        ip, port = _split_endpoint(h.get("address") or ":0")
        tags = h.get("tags")
        tls.append(
            TLSHandshake(
                ip=ip,
                port=port,
                server_name=h.get("server_name") or "",
                sources=(_role(tags, True),),
                tls_version=h.get("tls_version"),
                cipher_suite=h.get("cipher_suite"),
                negotiated_protocol=h.get("negotiated_protocol"),
                failure=h.get("failure"),
                t0=h.get("t0") or 0.0,
                t=h.get("t") or 0.0,
                depth=_depth(tags),
            )
        )
    http: list[HTTPTransaction] = []
    for r in reversed(tk.get("requests") or []):  # OONI lists the latest request first
        req = r.get("request") or {}
        resp = r.get("response") or {}
        body = _body(resp)
        code = resp.get("code")
        tags = r.get("tags")
        ip, port = _split_endpoint(r["address"]) if r.get("address") else ("", 0)
        failure = r.get("failure")
        headers = _headers(resp)
        location = dict((k.lower(), v) for k, v in headers).get("location")
        # probe's export: the whole body's length, where the body field holds only its start
        whole = resp.get("x_body_length")
        if not isinstance(whole, int) or isinstance(whole, bool) or whole < 0:
            whole = None
        http.append(
            HTTPTransaction(
                url=req.get("url") or url,
                role=_role(tags, True),
                ip=ip or None,
                port=port or None,
                depth=_depth(tags),
                status_code=code if isinstance(code, int) and code > 0 else None,
                headers=headers,
                title=extract_title(body) if body else None,
                body_length=whole if whole is not None else len(body) if code else None,
                body_sha256=hashlib.sha256(body).hexdigest() if code else None,
                body_truncated=bool(resp.get("body_is_truncated")) and whole is None,
                body=body[:65536].decode("utf-8", "replace") if body else None,
                location=location,
                failure=failure,
                failed_operation=failures.OP_HTTP if failure else None,
                t0=r.get("t0") or 0.0,
                t=r.get("t") or 0.0,
            )
        )
    http.sort(key=lambda h: (h.role != "system", h.depth))
    system = [h for h in http if h.role == "system"]
    last = system[-1] if system else None
    if last is None:
        http.insert(0, _chain_failure(0, dns, tcp, tls, url))
    elif last.failure is None and last.status_code in REDIRECT_STATUSES and last.location:
        nxt = _join(last.url, last.location)
        http.insert(len(system), _chain_failure(last.depth + 1, dns, tcp, tls, nxt))
    obs = Observations(url, tuple(dns), tuple(tcp), tuple(tls), tuple(http))
    verdict = {k: tk.get(k) for k in VERDICT_KEYS if k in tk}
    meta = {
        k: m.get(k)
        for k in (
            "probe_asn",
            "probe_cc",
            "report_id",
            "measurement_start_time",
            "software_name",
            "software_version",
            "test_version",
            "measurement_uid",
        )
    }
    notes = m.get("annotations")
    flag = notes.get("probe_network_ok") if isinstance(notes, dict) else None
    network_ok = {"true": True, "false": False}.get(str(flag))
    return Imported(obs, _control(tk), verdict, meta, network_ok)


def _join(base: str, location: str) -> str:
    import httpx

    try:
        return str(httpx.URL(base).join(location))
    except (httpx.InvalidURL, ValueError):
        return location
