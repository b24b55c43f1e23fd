"""The test helper's client: OONI's control request, the helper's /speed and its bulk endpoint.

Contract: ``HelperClient.query(url, endpoints)`` POSTs OONI's control request to a helper (ours
or OONI's) and always returns :class:`ControlEvidence`; when the helper cannot be reached or
answers nonsense, the evidence carries ``failure`` and the classifier falls back to local
evidence.
"""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec

from probe import failures
from probe.control import to_evidence
from probe.measure.edge import Where
from probe.measure.net import make_ssl_context
from probe.measure.steps import REQUEST_HEADERS
from probe.measure.throughput import HelperBulk
from probe.model import ControlEvidence, HelperSpeed
from probe.network import Network, normalise_asn, normalise_cc, recogniser
from probe.privacy import Recogniser

MAX_ANSWER = 1024 * 1024
# The helper downloads for up to max_seconds before it answers /speed: the request waits that
# long and this margin more (its own round trip, a slow start), then gives up.
SPEED_MARGIN = 30.0


@dataclass(frozen=True, slots=True)
class HelperNetwork:
    """The helper's answer about our network: what it found (None: its table has no entry, or
    it has none), and a recogniser of the address it saw; ``failure`` when it did not answer."""

    network: Network | None = None
    recognise: Recogniser | None = None
    failure: str | None = None


@dataclass(frozen=True, slots=True)
class _Failed:
    failure: str


MAX_EDGES = 64  # the helper's limit per /edges question (probe.helper.server.MAX_EDGES)


class HelperClient:
    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        ca_bundle: str | None = None,
        timeout: float = 60.0,
        quic: bool = False,
    ) -> None:
        self.url = url
        self.quic = quic  # ask the helper for its QUIC handshakes too (OONI's x_quic_enabled)
        self.token = token
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
            "x_quic_enabled": self.quic,
        }
        try:
            async with self._client.stream("POST", self.url, json=body) as r:
                raw = b""
                async for chunk in r.aiter_bytes():
                    raw += chunk
                    if len(raw) > MAX_ANSWER:
                        return ControlEvidence(
                            failure=failures.UNKNOWN_PREFIX + "answer too large",
                            raw_failure=f"over {MAX_ANSWER} bytes",
                        )
                if r.status_code != 200:
                    return ControlEvidence(
                        failure=failures.HTTP_REQUEST_FAILED, raw_failure=f"status:{r.status_code}"
                    )
        except failures.network_error_types() as exc:
            info = failures.classify(exc, failures.OP_HTTP)
            return ControlEvidence(failure=info.failure, raw_failure=info.raw)
        try:
            doc = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            return ControlEvidence(
                failure=failures.JSON_PARSE_ERROR, raw_failure=failures.scrub(str(exc))[:200]
            )
        return to_evidence(doc)

    async def _post_json(self, path: str, body: dict[str, Any], timeout: float) -> Any:
        """POST ``body`` to the helper's ``path``; its parsed JSON answer, or ``_Failed`` with
        the failure when it cannot be reached, does not answer 200 or answers no JSON."""
        try:
            r = await self._client.post(f"{self.url.rstrip('/')}{path}", json=body, timeout=timeout)
        except failures.network_error_types() as exc:
            return _Failed(failures.classify(exc, failures.OP_HTTP).failure)
        if r.status_code != 200:
            return _Failed(failures.HTTP_REQUEST_FAILED)
        try:
            return json.loads(r.content)
        except (ValueError, UnicodeDecodeError, RecursionError):  # deep nesting too
            return _Failed(failures.JSON_PARSE_ERROR)

    async def speed(self, url: str, max_bytes: int, max_seconds: float) -> HelperSpeed:
        """The helper's own timed download of ``url`` (is the site slow everywhere?)."""
        doc = await self._post_json(
            "/speed",
            {"url": url, "max_bytes": max_bytes, "max_seconds": max_seconds},
            timeout=max_seconds + SPEED_MARGIN,
        )
        if isinstance(doc, _Failed):
            return HelperSpeed(failure=doc.failure)
        try:
            return msgspec.convert(doc, type=HelperSpeed)
        except msgspec.ValidationError:
            return HelperSpeed(failure=failures.JSON_PARSE_ERROR)

    async def edges(self, addresses: Sequence[str]) -> dict[str, Where]:
        """The networks the helper's IP-to-ASN table gives servers' addresses (issue 25: where
        a site is served from); {} when it cannot say (no table, an older helper, a failure)."""
        wanted = list(dict.fromkeys(addresses))[:MAX_EDGES]
        if not wanted:
            return {}
        doc = await self._post_json("/edges", {"addresses": wanted}, timeout=10)
        found = doc.get("edges") if isinstance(doc, dict) else None
        if not isinstance(found, dict):
            return {}
        out = {}
        for address, e in found.items():
            if address not in wanted or not isinstance(e, dict):
                continue
            try:
                asn = normalise_asn(e["asn"]) if e.get("asn") else None
                cc = normalise_cc(e["cc"]) if e.get("cc") else None
            except (ValueError, TypeError):
                continue  # a field this probe cannot read: as if the table did not know
            if asn or cc:
                out[address] = Where(asn, cc, "helper")
        return out

    async def network(self) -> HelperNetwork:
        """The helper's view of our network, with a recogniser of our own public address (see
        :mod:`probe.network`). A fresh nonce each time; neither it nor the HMAC is kept."""
        nonce = secrets.token_bytes(32)
        doc = await self._post_json("/network", {"nonce": nonce.hex()}, timeout=10)
        if isinstance(doc, _Failed):
            return HelperNetwork(failure=doc.failure)
        return network_answer(doc, nonce)

    def bulk(self, addresses: Sequence[str] = ()) -> HelperBulk | None:
        """The helper's bulk endpoint for the SNI A/B test: on ``addresses`` (one or two), or
        on the address its URL names. A helper known only by name gets no A/B test: resolving
        the name through a censored resolver would prove little."""
        u = httpx.URL(self.url)
        if not addresses:
            try:
                ipaddress.ip_address(u.host)
            except ValueError:
                return None
            addresses = (u.host,)
        return HelperBulk(
            base=self.url,
            addresses=tuple(addresses),
            port=u.port or 443,
            speed=self.speed,
            token=self.token,
        )

    async def aclose(self) -> None:
        await self._client.aclose()


def network_answer(doc: Any, nonce: bytes) -> HelperNetwork:
    """A helper's ``/network`` answer (parsed JSON), checked field by field: an AS number, a
    two-letter country, a name (whitespace collapsed, at most 200 characters) and a SHA-256 in
    hex; anything else is a ``json_parse_error``, never an exception."""
    if not isinstance(doc, dict):
        return HelperNetwork(failure=failures.JSON_PARSE_ERROR)
    try:
        asn = normalise_asn(doc["asn"]) if doc.get("asn") else None
        cc = normalise_cc(doc["cc"]) if doc.get("cc") else None
    except (ValueError, TypeError):
        return HelperNetwork(failure=failures.JSON_PARSE_ERROR)
    raw_name = doc.get("network_name")
    name = " ".join(raw_name.split())[:200] or None if isinstance(raw_name, str) else None
    digest = doc.get("addr_hmac")
    if digest is not None and not (
        isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest)
    ):
        return HelperNetwork(failure=failures.JSON_PARSE_ERROR)
    found = Network(asn, cc, name, "helper") if asn or cc else None
    return HelperNetwork(found, recogniser(nonce, digest) if digest else None)
