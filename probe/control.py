"""Control evidence: a Web Connectivity test helper's answer (ours or OONI's) as data.

Contract: ``to_evidence(answer)`` is pure: it turns OONI's test-helper response shape into
:class:`ControlEvidence`, for the live client (:mod:`probe.measure.helper_client`) and the OONI
importer alike. Nothing here touches the network.
"""

from __future__ import annotations

from typing import Any

import msgspec

from probe import failures
from probe.model import ControlEndpoint, ControlEvidence


class _Endpoint(msgspec.Struct):
    status: bool | None = None
    failure: str | None = None
    server_name: str | None = None


class _DNS(msgspec.Struct):
    failure: str | None = None
    addrs: list[str] | None = None


class _HTTP(msgspec.Struct):
    failure: str | None = None
    status_code: int | None = None
    body_length: int | None = None
    title: str | None = None
    headers: dict[str, str] | None = None


class _Answer(msgspec.Struct):
    """OONI's test-helper response (oohelperd), the parts the classifier uses; others ignored."""

    tcp_connect: dict[str, _Endpoint] | None = None
    tls_handshake: dict[str, _Endpoint] | None = None
    http_request: _HTTP | None = None
    dns: _DNS | None = None
    quic_handshake: dict[str, _Endpoint] | None = None
    http3_request: _HTTP | None = None


def to_evidence(resp: Any, source: str = "helper") -> ControlEvidence:
    """ControlEvidence from a helper's decoded JSON answer (ours or OONI's). An answer that is
    not of that shape is evidence of nothing: ``failure`` json_parse_error, the reason kept."""
    try:
        answer = msgspec.convert(resp, type=_Answer)
    except msgspec.ValidationError as exc:
        return ControlEvidence(
            source=source,
            failure=failures.JSON_PARSE_ERROR,
            raw_failure=f"not a test helper answer: {str(exc)[:200]}",
        )
    dns = answer.dns or _DNS()
    http = answer.http_request or _HTTP()

    def eps(section: dict[str, _Endpoint] | None) -> dict[str, ControlEndpoint]:
        return {
            k: ControlEndpoint(bool(v.status), v.failure, v.server_name)
            for k, v in (section or {}).items()
        }

    status, length = http.status_code, http.body_length
    return ControlEvidence(
        source=source,
        failure=None,
        dns_failure=dns.failure,
        dns_addrs=tuple(dns.addrs or ()),
        tcp_connect=eps(answer.tcp_connect),
        tls_handshake=eps(answer.tls_handshake),
        http_failure=http.failure,
        http_status_code=status if status is not None and status > 0 else None,
        http_body_length=length if length is not None and length >= 0 else None,
        http_title=http.title or None,
        http_headers=dict(http.headers or {}),
        quic_handshake=eps(answer.quic_handshake),
        http3_failure=answer.http3_request.failure if answer.http3_request else None,
        http3_status_code=_status(answer.http3_request),
    )


def _status(http: _HTTP | None) -> int | None:
    status = http.status_code if http is not None else None
    return status if status is not None and status > 0 else None
