"""A Web Connectivity test helper (OONI's ``oohelperd`` protocol), server and client.

Contract: :func:`parse_body` turns any request body into a :class:`ControlRequest` or raises
:class:`~probe.errors.BadRequest` with a one-line reason, whatever the bytes (JSON nested past
the recursion limit, numbers past Python's digit limit, any value in any field): nothing else
escapes it, so a client's body is a 400, never a 500. :func:`measure` answers one control
request exactly as OONI's helper does (field names, legacy failure strings, ``-1`` for an
absent status code or body length), measuring from the helper's own, uncensored network with
the probe's own measuring code. It never dials loopback, private, link-local or multicast
addresses, nor the helper's own, unless an allow-list says so (the lab), and never tells a
client an address that is not on the internet (:func:`tellable`: a private answer of its
upstream is a map of the network it sits in). The client side is :mod:`probe.control`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from probe import addr, failures
from probe.errors import BadRequest, URLError
from probe.measure import quic, steps
from probe.measure.config import MeasureConfig, allowed_network, skip_address
from probe.measure.net import Shared
from probe.measure.runner import TargetMeasurer
from probe.model import Observations, no_address_failure, page_length
from probe.urls import check_url

MAX_ENDPOINTS = 32
FORWARDED_HEADERS = {"user-agent", "accept", "accept-language"}

# ip_info flags, as OONI's helper sets them.
FLAG_RESOLVED_BY_PROBE, FLAG_RESOLVED_BY_TH, FLAG_BOGON, FLAG_VALID_FOR_DOMAIN = 1, 2, 4, 8


@dataclass(frozen=True, slots=True)
class ControlRequest:
    url: str
    headers: dict[str, str]
    endpoints: tuple[tuple[str, int], ...]
    quic: bool = False  # OONI's x_quic_enabled: measure HTTP/3 too (issue 24)


def shown(value: Any) -> str:
    """A client's value in a one-line message: a string's start, else its type (the text of a
    nested value can be as deep as the recursion limit, and as long as the body)."""
    if isinstance(value, str):
        return repr(value[:60])
    if isinstance(value, bool | int | float) or value is None:
        return json.dumps(value)[:60]
    return f"a JSON {'array' if isinstance(value, list) else 'object'}"


def decode_json(raw: bytes) -> Any:
    """The JSON value of a request body, or BadRequest."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise BadRequest("the body is nested too deeply") from None
    except ValueError:  # not JSON, not UTF-8, or a number past Python's digit limit
        raise BadRequest("the body is not valid JSON") from None


def parse_body(raw: bytes) -> ControlRequest:
    """A control request's body -> ControlRequest, or BadRequest (nothing else)."""
    return parse_request(decode_json(raw))


def _endpoint(text: Any) -> tuple[str, int]:
    if not isinstance(text, str):
        raise BadRequest(f"tcp_connect: {shown(text)} is not IP:PORT")
    try:
        return addr.parse_endpoint(text)
    except addr.AddressError as exc:
        raise BadRequest(f"tcp_connect: {exc}") from None


def parse_request(doc: Any) -> ControlRequest:
    if not isinstance(doc, dict):
        raise BadRequest("the body must be a JSON object")
    url = doc.get("http_request")
    if not isinstance(url, str):
        raise BadRequest("http_request: a URL string is required")
    try:
        check_url(url)  # the probe's own validator: what passes, the measuring code can use
    except URLError as exc:
        raise BadRequest(f"http_request: {exc}") from None
    raw_headers = doc.get("http_request_headers") or {}
    if not isinstance(raw_headers, dict):
        raise BadRequest("http_request_headers: must be an object of lists")
    headers = {}
    for k, v in raw_headers.items():
        if str(k).lower() in FORWARDED_HEADERS:
            value = v[0] if isinstance(v, list) and v else v
            if isinstance(value, str) and len(value) < 512:
                headers[str(k)] = value
    eps = doc.get("tcp_connect") or []
    if not isinstance(eps, list) or len(eps) > MAX_ENDPOINTS:
        raise BadRequest(f"tcp_connect: a list of at most {MAX_ENDPOINTS} IP:PORT strings")
    endpoints = tuple(dict.fromkeys(_endpoint(e) for e in eps))
    return ControlRequest(url, headers, endpoints, doc.get("x_quic_enabled") is True)


def tellable(ip: str, cfg: MeasureConfig) -> bool:
    """An address the helper may pass on from its upstream resolver (in a control response or
    through its DoH relay): on the internet (:func:`probe.addr.is_internet`), or in a network the
    lab allows. Its own public addresses are public; a private one (an intranet name's, or
    ``64:ff9b::a00:1``, which is 10.0.0.1) would tell strangers what lies behind the helper."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return addr.is_internet(address) or allowed_network(address, cfg)


def _or_minus_one(n: int | None) -> int:
    return -1 if n is None else n


def _legacy_dns(failure: str | None) -> str | None:
    if failure in (None, failures.DNS_NO_ANSWER):
        return None
    if failure == failures.DNS_NXDOMAIN:
        return "dns_name_error"
    if failure in (failures.DNS_REFUSED, failures.DNS_SERVER_MISBEHAVING, failures.DNS_SERVFAIL):
        return "dns_server_failure"
    return "unknown_error"


def _legacy_tcp(failure: str | None) -> str | None:
    return {
        None: None,
        failures.CONNECTION_REFUSED: "connection_refused_error",
        failures.CONNECTION_RESET: "connection_reset_error",
        failures.GENERIC_TIMEOUT: failures.GENERIC_TIMEOUT,
    }.get(failure, "unknown_error")


def _legacy_http(failure: str | None, operation: str | None) -> str | None:
    if failure is None:
        return None
    if operation == failures.OP_RESOLVE or (failure or "").startswith("dns_"):
        return "dns_lookup_error"
    if failure == failures.GENERIC_TIMEOUT:
        return failure
    if failure == failures.CONNECTION_REFUSED:
        return "connection_refused_error"
    return "unknown_error"


async def measure(shared: Shared, req: ControlRequest) -> dict[str, Any]:
    """The helper's answer to one control request (OONI's THResponse shape)."""
    cfg = shared.cfg
    parts = urlsplit(req.url)
    https = parts.scheme == "https"
    host = (parts.hostname or "").lower()
    measurer = TargetMeasurer(shared, req.url, request_headers=req.headers or None)
    run = asyncio.create_task(measurer.run())
    # The probe's endpoints, measured beside the helper's own (TLS where the URL is HTTPS).
    probe_eps = [(ip, port) for ip, port in req.endpoints if not skip_address(ip, cfg)]
    extra = await asyncio.gather(
        *(
            steps.tcp_tls_step(
                measurer.ctx, ip, port, host if https or port == 443 else None, ("probe",), 0
            )
            for ip, port in probe_eps
        )
    )
    obs, _, _ = await run
    if req.quic and cfg.quic:
        obs = replace(obs, quic=await quic.measure(shared, measurer.ctx, obs))
    return _response(obs, req, extra, cfg)


def _response(
    obs: Observations, req: ControlRequest, extra: list[Any], cfg: MeasureConfig
) -> dict[str, Any]:
    sys_q = [q for q in obs.dns if q.depth == 0 and q.resolver == "system"]
    addrs = list(dict.fromkeys(a for q in sys_q for a in q.addrs if tellable(a, cfg)))
    dns_failure = no_address_failure(sys_q)
    tcp: dict[str, Any] = {}
    tls: dict[str, Any] = {}
    for t in [t for t in obs.tcp if t.depth == 0] + [t for t, _ in extra]:
        tcp[addr.endpoint(t.ip, t.port)] = {"status": t.ok, "failure": _legacy_tcp(t.failure)}
    valid: set[str] = set()
    for h in [h for h in obs.tls if h.depth == 0] + [h for _, h in extra if h is not None]:
        tls[addr.endpoint(h.ip, h.port)] = {
            "server_name": h.server_name,
            "status": h.ok,
            "failure": h.failure,
        }
        if h.ok:
            valid.add(h.ip)
    final = next((h for h in reversed(obs.http) if h.role == "system"), None)
    if final is not None and final.failure is None:
        headers: dict[str, str] = {}
        for k, v in final.headers:
            headers.setdefault(k, v)
        http = {
            # A body read up to the cap reports the declared length, not the bytes read.
            "body_length": _or_minus_one(page_length(final)),
            "discovered_h3_endpoint": "",
            "failure": None,
            "title": final.title or "",
            "headers": headers,
            "status_code": final.status_code or -1,
        }
    else:
        http = {
            "body_length": -1,
            "discovered_h3_endpoint": "",
            "failure": _legacy_http(
                final.failure if final else "unknown_error",
                final.failed_operation if final else None,
            ),
            "title": "",
            "headers": {},
            "status_code": -1,
        }
    ip_info: dict[str, Any] = {}
    probe_ips = {ip for ip, _ in req.endpoints}
    for ip in dict.fromkeys([*addrs, *probe_ips]):
        flags = (FLAG_RESOLVED_BY_PROBE if ip in probe_ips else 0) | (
            FLAG_RESOLVED_BY_TH if ip in addrs else 0
        )
        try:
            if not addr.is_internet(ipaddress.ip_address(ip)):
                flags |= FLAG_BOGON
        except ValueError:
            continue
        if ip in valid:
            flags |= FLAG_VALID_FOR_DOMAIN
        ip_info[ip] = {"asn": 0, "flags": flags}
    quic_handshake, http3 = _quic_response(obs)
    if obs.quic is not None and obs.quic.discovery:
        first = obs.quic.discovery[0]
        http["discovered_h3_endpoint"] = f"{first.host or obs.quic.host}:{first.port}"
    return {
        "tcp_connect": tcp,
        "tls_handshake": tls,
        "quic_handshake": quic_handshake,
        "http_request": http,
        "http3_request": http3,
        "dns": {"failure": _legacy_dns(dns_failure), "addrs": addrs},
        "ip_info": ip_info,
    }


def _quic_response(obs: Observations) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """OONI's ``quic_handshake`` (endpoint -> server name, status, failure) and
    ``http3_request`` (shaped as ``http_request``; None when no HTTP/3 GET was sent)."""
    q = obs.quic
    if q is None:
        return {}, None
    handshakes = {
        addr.endpoint(h.ip, h.port): {
            "server_name": h.server_name,
            "status": h.ok,
            "failure": h.failure,
        }
        for h in q.handshakes
        if h.role == "system"
    }
    if not q.http:
        return handshakes, None
    get = q.http[0]
    headers: dict[str, str] = {}
    for k, v in get.headers:
        headers.setdefault(k, v)
    return handshakes, {
        "body_length": _or_minus_one(page_length(get)),
        "discovered_h3_endpoint": "",
        "failure": get.failure,
        "title": get.title or "",
        "headers": headers if get.failure is None else {},
        "status_code": get.status_code or -1,
    }
