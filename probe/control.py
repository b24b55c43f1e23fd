"""Control evidence from a Web Connectivity test helper: the client, and answers -> evidence.

Contract: ``HelperClient.query(url, endpoints)`` POSTs OONI's control request to a helper (ours
or OONI's) and always returns :class:`ControlEvidence`; when the helper cannot be reached or
answers nonsense, the evidence carries ``failure`` and the classifier falls back to local
evidence. ``to_evidence`` is pure and also serves the OONI importer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import httpx

from probe import failures
from probe.measure.steps import REQUEST_HEADERS
from probe.measure.throughput import HelperBulk
from probe.model import ControlEndpoint, ControlEvidence

MAX_ANSWER = 1024 * 1024


class HelperClient:
    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        ca_bundle: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        from probe.measure.steps import make_ssl_context

        self.url = url
        headers = {"content-type": "application/json", "user-agent": "probe"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        self._client = httpx.AsyncClient(
            verify=make_ssl_context(ca_bundle), timeout=timeout, headers=headers, trust_env=False
        )

    async def query(self, url: str, endpoints: list[str]) -> ControlEvidence:
        body = {
            "http_request": url,
            "http_request_headers": {
                k: [v] for k, v in REQUEST_HEADERS.items() if k.lower() != "accept-encoding"
            },
            "tcp_connect": endpoints[:32],
            "x_quic_enabled": False,
        }
        try:
            async with self._client.stream("POST", self.url, json=body) as r:
                raw = b""
                async for chunk in r.aiter_bytes():
                    raw += chunk
                    if len(raw) > MAX_ANSWER:
                        return ControlEvidence(failure="control_answer_too_large")
                if r.status_code != 200:
                    return ControlEvidence(failure=f"control_http_status_{r.status_code}")
            return to_evidence(json.loads(raw))
        except (ValueError, UnicodeDecodeError):
            return ControlEvidence(failure="control_malformed")
        except Exception as exc:
            return ControlEvidence(failure=failures.classify(exc, failures.OP_HTTP).failure)

    async def speed(self, url: str, max_bytes: int, max_seconds: float) -> dict[str, Any]:
        """The helper's own timed download of ``url`` (is the site slow everywhere?)."""
        base = self.url.rstrip("/")
        try:
            r = await self._client.post(
                f"{base}/speed",
                json={"url": url, "max_bytes": max_bytes, "max_seconds": max_seconds},
                timeout=max_seconds + 30,
            )
            doc = r.json() if r.status_code == 200 else None
        except (httpx.HTTPError, ValueError) as exc:
            return {"bps": None, "failure": f"helper_speed: {type(exc).__name__}"}
        if not isinstance(doc, dict):
            return {"bps": None, "failure": f"helper_speed_http_{r.status_code}"}
        bps = doc.get("bps")
        return {
            "bps": float(bps) if isinstance(bps, int | float) else None,
            "bytes": doc.get("bytes"),
            "seconds": doc.get("seconds"),
            "failure": doc.get("failure"),
            "bytes_used": 0,
        }

    def bulk(self, addresses: Sequence[str] = ()) -> HelperBulk | None:
        """The helper's bulk endpoint for the SNI A/B test: on ``addresses`` (one or two), or
        on the address its URL names. A helper known only by name gets no A/B test: resolving
        the name through a censored resolver would prove little."""
        import ipaddress

        u = httpx.URL(self.url)
        if not addresses:
            try:
                ipaddress.ip_address(u.host)
            except ValueError:
                return None
            addresses = (u.host,)
        return HelperBulk(
            base=self.url, addresses=tuple(addresses), port=u.port or 443, speed=self.speed
        )

    async def aclose(self) -> None:
        await self._client.aclose()


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
