"""Control evidence: a Web Connectivity test helper's answer (ours or OONI's) as data.

Contract: ``to_evidence(answer)`` is pure: it turns OONI's test-helper response shape into
:class:`ControlEvidence`, for the live client (:mod:`probe.measure.helper_client`) and the OONI
importer alike. Nothing here touches the network.
"""

from __future__ import annotations

from typing import Any

from probe.model import ControlEndpoint, ControlEvidence


def to_evidence(resp: dict[str, Any], source: str = "helper") -> ControlEvidence:
    """ControlEvidence from a helper's answer (ours or OONI's)."""
    if not isinstance(resp, dict):
        return ControlEvidence(source=source, failure="control_malformed")
    dns = resp.get("dns") or {}
    http = resp.get("http_request") or {}

    def eps(section: str) -> dict[str, ControlEndpoint]:
        out = {}
        for k, v in (resp.get(section) or {}).items():
            if isinstance(v, dict):
                out[str(k)] = ControlEndpoint(
                    bool(v.get("status")), v.get("failure"), v.get("server_name")
                )
        return out

    status = http.get("status_code")
    length = http.get("body_length")
    return ControlEvidence(
        source=source,
        failure=None,
        dns_failure=dns.get("failure"),
        dns_addrs=tuple(str(a) for a in dns.get("addrs") or ()),
        tcp_connect=eps("tcp_connect"),
        tls_handshake=eps("tls_handshake"),
        http_failure=http.get("failure"),
        http_status_code=status if isinstance(status, int) and status > 0 else None,
        http_body_length=length if isinstance(length, int) and length >= 0 else None,
        http_title=http.get("title") or None,
        http_headers={str(k): str(v) for k, v in (http.get("headers") or {}).items()},
    )
