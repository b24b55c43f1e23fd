"""Observation and verdict records: frozen values shared by measuring, classifying and storing.

Contract: every step of a measurement (each DNS query, TCP connect, TLS handshake and HTTP
transaction) is one record with its own timing (``t0`` and ``t``, seconds since the measurement
started) and, on failure, a df-007 ``failure`` string plus the raw error beside it. Records hold
only what the network showed; comparisons belong to :mod:`probe.classify`. The ``*_to_json``
and ``*_from_json`` functions (msgspec over these dataclasses: fast, and light on a daemon's
memory) round-trip everything the classifier needs, so a stored measurement can be reclassified
exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from probe import addr, failures
from probe.errors import BadValue


def N_(message: str) -> str:
    """:func:`probe.words.N_` (marks a message id for extraction), which this module cannot
    import: probe.words imports it."""
    return message


Blocking = Literal["dns", "tcp_ip", "http-failure", "http-diff"] | bool | None

# HTTP statuses whose Location the probe follows, hop by hop (OONI's set).
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True, slots=True)
class ResolverSpec:
    """A resolver to query, parsed once from its setting (:mod:`probe.config.resolver`) and
    used by the DNS step (:mod:`probe.measure.dns`); it lives here so that neither imports the
    other. ``str()`` is :attr:`address`, text the parser reads back to an equal value."""

    kind: Literal["udp", "dot", "doh"]
    host: str  # IP address for udp/dot; host name for doh
    port: int
    url: str | None = None  # the DoH URL
    server_name: str | None = None  # DoT: the name to verify, if given as tls://NAME@IP

    @property
    def address(self) -> str:
        if self.kind == "doh":
            return self.url or ""
        scheme = "tls" if self.kind == "dot" else "udp"
        name = f"{self.server_name}@" if self.server_name else ""
        return f"{scheme}://{name}{addr.endpoint(self.host, self.port)}"

    def __str__(self) -> str:
        return self.address


@dataclass(frozen=True, slots=True)
class DNSAnswer:
    type: str  # "A", "AAAA" or "CNAME"
    value: str
    ttl: int | None = None


@dataclass(frozen=True, slots=True)
class DNSQuery:
    hostname: str
    query_type: str  # "A" or "AAAA"
    resolver: str  # "system" (the resolver under test) or "control"
    resolver_address: str  # "udp://IP:PORT", "tls://IP:PORT", "https://HOST/dns-query"
    engine: str  # "udp", "tcp", "dot", "doh", "getaddrinfo"
    answers: tuple[DNSAnswer, ...] = ()
    rcode: str | None = None
    failure: str | None = None
    raw_failure: str | None = None
    t0: float = 0.0
    t: float = 0.0
    depth: int = 0
    bytes: int = 0

    @property
    def addrs(self) -> list[str]:
        return [a.value for a in self.answers if a.type in ("A", "AAAA")]


def no_address_query(queries: list[DNSQuery] | tuple[DNSQuery, ...]) -> DNSQuery | None:
    """The query whose failure explains why a name gave no address: None when any query gave
    one (or there were none); else the first that failed worse than having no answer (an
    NXDOMAIN explains more than a missing AAAA record), else the first."""
    if not queries or any(q.addrs for q in queries):
        return None
    return next(
        (q for q in queries if q.failure and q.failure != failures.DNS_NO_ANSWER), queries[0]
    )


def no_address_failure(queries: list[DNSQuery] | tuple[DNSQuery, ...]) -> str | None:
    """The df-007 failure that explains no address (see :func:`no_address_query`)."""
    q = no_address_query(queries)
    if q is None:
        return None
    return q.failure or failures.DNS_NO_ANSWER


@dataclass(frozen=True, slots=True)
class TCPConnect:
    ip: str
    port: int
    sources: tuple[str, ...] = ("system",)  # which resolvers gave this address
    failure: str | None = None
    raw_failure: str | None = None
    t0: float = 0.0
    t: float = 0.0
    depth: int = 0

    @property
    def ok(self) -> bool:
        return self.failure is None


@dataclass(frozen=True, slots=True)
class Certificate:
    subject: str
    issuer: str
    not_before: str | None = None
    not_after: str | None = None
    san: tuple[str, ...] = ()
    sha256: str = ""


@dataclass(frozen=True, slots=True)
class TLSHandshake:
    ip: str
    port: int
    server_name: str
    sources: tuple[str, ...] = ("system",)
    tls_version: str | None = None
    cipher_suite: str | None = None
    negotiated_protocol: str | None = None
    certificates: tuple[Certificate, ...] = ()
    failure: str | None = None
    raw_failure: str | None = None
    t0: float = 0.0
    t: float = 0.0
    depth: int = 0
    bytes: int = 0

    @property
    def ok(self) -> bool:
        return self.failure is None


@dataclass(frozen=True, slots=True)
class HTTPTransaction:
    url: str
    role: str = "system"  # "system": the path a user would take; "control": via control DNS
    ip: str | None = None
    port: int | None = None
    depth: int = 0
    status_code: int | None = None
    headers: tuple[tuple[str, str], ...] = ()
    title: str | None = None
    body_length: int | None = None
    body_sha256: str | None = None
    body_truncated: bool = False
    body: str | None = None  # decoded text, capped; the store keeps it deduplicated by hash
    location: str | None = None
    failure: str | None = None
    raw_failure: str | None = None
    failed_operation: str | None = None
    t0: float = 0.0
    t: float = 0.0
    bytes: int = 0

    def header(self, name: str) -> str | None:
        low = name.lower()
        for k, v in self.headers:
            if k.lower() == low:
                return v
        return None


def page_length(h: HTTPTransaction) -> int | None:
    """A response body's length: what was read, or, when reading stopped at the body cap, what
    the server declared (Content-Length of an unencoded body); None when unknown."""
    if not h.body_truncated:
        return h.body_length
    declared = h.header("content-length")
    encoding = (h.header("content-encoding") or "identity").strip().lower()
    if declared is None or encoding != "identity" or not declared.strip().isdigit():
        return None
    return int(declared.strip())


@dataclass(frozen=True, slots=True)
class H3Endpoint:
    """One way to reach a site over HTTP/3 that discovery found (issue 24)."""

    source: str  # "alt-svc" (the TCP response's header) or "https-rr" (the DNS HTTPS record)
    alpn: str  # "h3"
    port: int
    host: str | None = None  # another host named by the advertisement; None: the same


@dataclass(frozen=True, slots=True)
class QUICHandshake:
    """One QUIC handshake (TLS 1.3 inside QUIC) to one address, as OONI's ``quic_handshakes``.
    ``role``: "system" (the site's name as SNI, verified) or "neutral_sni" (a neutral name to
    the same address, unverified: did anything answer?)."""

    ip: str
    port: int
    server_name: str
    sources: tuple[str, ...] = ("system",)
    role: str = "system"
    alpn: tuple[str, ...] = ("h3",)  # what the client offered
    quic_version: str | None = None  # "0x00000001" (QUIC v1)
    tls_version: str | None = None
    cipher_suite: str | None = None
    negotiated_protocol: str | None = None
    certificates: tuple[Certificate, ...] = ()
    answered: bool = False  # any datagram came back (a handshake failure that was the server's)
    failure: str | None = None
    raw_failure: str | None = None
    t0: float = 0.0
    t: float = 0.0
    depth: int = 0
    bytes: int = 0

    @property
    def ok(self) -> bool:
        return self.failure is None


@dataclass(frozen=True, slots=True)
class QUICObservations:
    """The HTTP/3 part of a measurement: discovery, the handshakes and the HTTP/3 GET (its
    summary is an :class:`HTTPTransaction`). ``skipped``: why nothing was tried ("off": the
    setting; "no_https": no HTTPS hop; "not_advertised": neither Alt-Svc nor HTTPS record)."""

    host: str | None = None
    skipped: str | None = None
    discovery: tuple[H3Endpoint, ...] = ()
    dns: tuple[DNSQuery, ...] = ()  # the HTTPS (type 65) queries
    handshakes: tuple[QUICHandshake, ...] = ()
    http: tuple[HTTPTransaction, ...] = ()
    bytes: int = 0


@dataclass(frozen=True, slots=True)
class Observations:
    """Everything one measurement saw on the local network, step by step."""

    url: str
    dns: tuple[DNSQuery, ...] = ()
    tcp: tuple[TCPConnect, ...] = ()
    tls: tuple[TLSHandshake, ...] = ()
    http: tuple[HTTPTransaction, ...] = ()
    quic: QUICObservations | None = None  # HTTP/3 (issue 24); None: not measured


@dataclass(frozen=True, slots=True)
class ControlEndpoint:
    ok: bool
    failure: str | None = None
    server_name: str | None = None


@dataclass(frozen=True, slots=True)
class ControlEvidence:
    """What an uncensored vantage (a Web Connectivity test helper) saw for the same URL."""

    source: str = "helper"  # "helper" (ours or OONI's), "ooni" (imported)
    failure: str | None = None  # the helper could not be reached or its answer is unusable
    raw_failure: str | None = None  # the detail behind ``failure`` (a status, a parse error)
    dns_failure: str | None = None
    dns_addrs: tuple[str, ...] = ()
    tcp_connect: dict[str, ControlEndpoint] = field(default_factory=dict)
    tls_handshake: dict[str, ControlEndpoint] = field(default_factory=dict)
    http_failure: str | None = None
    http_status_code: int | None = None
    http_body_length: int | None = None
    http_title: str | None = None
    http_headers: dict[str, str] = field(default_factory=dict)
    # HTTP/3 from the helper (OONI's quic_handshake and http3_request; issue 24)
    quic_handshake: dict[str, ControlEndpoint] = field(default_factory=dict)
    http3_failure: str | None = None
    http3_status_code: int | None = None


@dataclass(frozen=True, slots=True)
class Sample:
    t: float  # seconds since the flow's request was sent
    bytes: int  # cumulative bytes received: TCP payload where Linux says, else body bytes
    rtt_us: int | None = None
    rcv_rtt_us: int | None = None
    min_rtt_us: int | None = None
    ooo: int | None = None  # out-of-order packets received (rcv_ooopack)
    segs_in: int | None = None


@dataclass(frozen=True, slots=True)
class Flow:
    role: str  # "target", "control", "ab_neutral", "ab_target", "ab_neutral2", "helper"
    url: str
    ip: str | None
    trial: int = 0
    start: float = 0.0  # seconds since the test began
    ttfb: float | None = None  # request sent -> response headers
    duration: float = 0.0
    bytes: int = 0
    wire_bytes: int = 0
    samples: tuple[Sample, ...] = ()
    failure: str | None = None
    raw_failure: str | None = None  # the detail: errno, status code
    connect_s: float | None = None  # request started -> TCP connected (probe.measure.edge)
    # The CDN's own locality headers of the first response (probe.measure.edge.LOCALITY)
    locality: tuple[tuple[str, str], ...] = ()


# What the size checks of one discovery may use: MAX_CHECKS (8) connections, each a TCP and TLS
# handshake (a certificate chain, a few KB) and a HEAD or a one-byte ranged GET.
DISCOVERY_BYTES = 128 * 1024


@dataclass(frozen=True, slots=True)
class Plan:
    """What one throughput test may use: bytes and seconds per flow, trials, and the SNI A/B
    test's flows."""

    max_bytes: int = 1024 * 1024
    max_seconds: float = 8.0
    trials: int = 3
    ab_bytes: int = 512 * 1024
    ab_seconds: float = 4.0
    # Named legs when the SNI A/B is the only evidence (no object): with 3-4 s legs, enough
    # 1-second rates for a significant difference after correcting for a round of 25 tests.
    ab_only_trials: int = 4

    @property
    def worst_case_bytes(self) -> int:
        """The most one test may use: the trials and a four-leg A/B (the site's name too, when
        its object is on another host), or the A/B on its own (``ab_only_trials`` named legs
        between neutral ones); plus one flow's worth of overshoot and the size checks of
        discovery (:data:`DISCOVERY_BYTES`)."""
        with_object = self.trials * 2 * self.max_bytes + 4 * self.ab_bytes
        ab_only = (2 * self.ab_only_trials + 1) * self.ab_bytes
        return max(with_object, ab_only) + self.max_bytes + DISCOVERY_BYTES

    @classmethod
    def profile(cls, name: str) -> Plan:
        if name == "mobile":
            return cls(
                max_bytes=256 * 1024, max_seconds=4.0, trials=2, ab_bytes=128 * 1024, ab_seconds=3.0
            )
        if name == "default":
            return cls()
        raise BadValue(N_("unknown profile {name} (default, mobile)"), name=repr(name))


@dataclass(frozen=True, slots=True)
class HelperSpeed:
    """The test helper's own timed download of a target (is the site slow everywhere?)."""

    bps: float | None = None
    bytes: int | None = None
    seconds: float | None = None
    failure: str | None = None
    bytes_used: int = 0


@dataclass(frozen=True, slots=True)
class ThroughputAnalysis:
    """The throttling verdict of one test (probe.classify.throughput.analyse)."""

    throttled: bool | None = None
    label: str | None = None  # sni_targeted, ip_targeted, ..., congestion
    mechanism: str | None = None  # shaper or policer
    bps: float | None = None  # the target's steady rate, median over trials
    control_bps: float | None = None
    ratio: float | None = None  # median target/control ratio over trials
    p_value: float | None = None  # Bonferroni-corrected
    p_raw: float | None = None
    tests_in_round: int = 1
    burst_bytes: int | None = None
    ab: dict[str, float | None] = field(default_factory=dict)  # SNI A/B rates by role
    helper_bps: float | None = None
    reason: str | None = None  # why there is no verdict
    basis: str | None = None  # "trials" (an object against a control) or "sni_ab" (A/B only)
    ab_ratio: float | None = None  # the site's name over the neutral name, on the helper
    # HTTP/3 beside TCP (issue 24): the same object over QUIC in every trial (flows "h3")
    h3_bps: float | None = None  # HTTP/3's steady rate, median over trials
    h3_ratio: float | None = None  # median HTTP/3 / TCP ratio of the target's object
    h3_p_value: float | None = None  # HTTP/3's 1-second rates below TCP's (Bonferroni)
    h3_slower: bool | None = None  # None: not compared (no complete HTTP/3 trial)


@dataclass(frozen=True, slots=True)
class ThroughputObject:
    """What a throughput test downloads, and where the choice came from."""

    url: str
    size: int | None = None  # bytes it answered with when checked; None: never checked (pinned)
    content_type: str | None = None
    source: str = "pinned"  # "pinned" (targets file), "stored" (found before, still there),
    # or "discovered" (found on the page this round)
    found_at: str | None = None  # UTC ISO-8601, when discovery chose it
    repeat: int = 1  # requests per flow: a smaller object is fetched again on the connection


@dataclass(frozen=True, slots=True)
class ObjectChoice:
    """A target's stored throughput object: what discovery chose from its page, and when."""

    target: str
    site_url: str  # the target's URL when it was chosen (another URL: discover again)
    url: str | None  # None: none found (kept a day, then discovery runs again)
    size: int | None = None
    content_type: str | None = None
    found_at: str = ""  # UTC ISO-8601
    why: str = ""


# Where a site is served from, relative to the volunteer (issue 25): a domestic site, a foreign
# site served from inside the volunteer's network (an off-net cache), a foreign origin.
TARGET_CLASSES = ("domestic", "foreign_on_net", "foreign_origin")


@dataclass(frozen=True, slots=True)
class EdgeFact:
    """Where one address a throughput test dialled is served from (probe.measure.edge): its
    network, whether that is the volunteer's own, how far away it is, and what the CDN says."""

    ip: str
    roles: tuple[str, ...] = ()  # the flows' roles that used it ("target", "control", ...)
    asn: str | None = None  # "AS32934"
    cc: str | None = None
    network_source: str = "none"  # "helper", "local" (a table on this machine) or "none"
    on_net: bool | None = None  # inside the volunteer's own network; None: cannot tell
    on_net_basis: str | None = None  # "probe_asn", "cache_prefix", "other_network"
    connect_s: float | None = None  # median TCP connect time of its flows
    rtt_ms: float | None = None  # median smoothed RTT (TCP_INFO tcpi_rtt) of its flows
    min_rtt_ms: float | None = None  # the least RTT the kernel saw (tcpi_min_rtt)
    pop: str | None = None  # the CDN's point of presence, from its own headers
    locality: tuple[tuple[str, str], ...] = ()  # those headers, as evidence


@dataclass(frozen=True, slots=True)
class ThroughputRecord:
    """One throughput test of a target against a control: what ran, and what it showed."""

    skipped: str | None = None  # "data_cap", "no_address", "no_object": the test did not run
    url: str | None = None
    control_url: str | None = None
    control: str | None = None  # the control target's name
    plan: Plan | None = None
    tests_in_round: int = 1
    helper_speed: HelperSpeed | None = None
    flows: tuple[Flow, ...] = ()
    bytes_used: int = 0
    analysis: ThroughputAnalysis | None = None
    object: ThroughputObject | None = None  # the target's (None: the SNI A/B only)
    control_object: ThroughputObject | None = None
    discovery: str | None = None  # one line: how the object was chosen, or why there is none
    edges: tuple[EdgeFact, ...] = ()  # where each dialled address is served from
    target_class: str | None = None  # TARGET_CLASSES: the target's, when the test ran
    class_basis: str | None = None  # "declared" (targets.yaml) or "served" (from its edges)


@dataclass(frozen=True, slots=True)
class Network:
    """The probe's network for a round (see probe.network). ``source``: "helper", "settings"
    or "none". Never an address."""

    asn: str | None = None  # "AS7552"
    cc: str | None = None  # ISO 3166-1 alpha-2, upper case
    name: str | None = None  # the AS's name, as the helper's table has it
    source: str = "none"


# ``Verdict.evidence`` of a verdict that compared the page with nothing (rule
# http.success.local): the classifier sets it and the verdict words read it.
NO_CONTROL = "no control"


@dataclass(frozen=True, slots=True)
class Verdict:
    blocking: Blocking
    accessible: bool | None
    rule_id: str
    rules_version: str
    evidence: str  # "helper", "local", "none" or NO_CONTROL
    dns_consistency: str | None = None  # "consistent", "inconsistent" or None
    failing_step: str | None = None  # "dns", "tcp", "tls", "http" or None
    failure: str | None = None
    blockpage: str | None = None  # the fingerprint name that matched
    body_proportion: float | None = None
    body_length_match: bool | None = None
    status_code_match: bool | None = None
    headers_match: bool | None = None
    title_match: bool | None = None
    offline: bool = False
    throttled: bool | None = None  # None until throughput is measured
    quic: str | None = None  # the HTTP/3 verdict (probe.classify.quic): "ok", "blocked", ...
    quic_rule: str | None = None  # the QUIC rule that decided it


@dataclass(frozen=True, slots=True)
class Measurement:
    id: str
    target: str
    url: str
    started_at: str  # UTC ISO-8601
    observations: Observations
    verdict: Verdict
    runtime: float = 0.0
    round_id: str | None = None
    device_id: str | None = None
    category: str | None = None
    is_control: bool = False
    resolver: str | None = None
    control_resolver: str | None = None
    network_ok: bool | None = None  # did the round's control targets load?
    control: ControlEvidence | None = None
    throughput: ThroughputRecord | None = None
    bytes_used: int = 0
    source: str = "probe"  # "probe" or "ooni" (imported)
    probe_asn: str | None = None
    probe_cc: str | None = None
    software: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    network_name: str | None = None  # the probe's network (its AS's name), as the helper says
    resolver_kind: str | None = None  # the resolver under test: "isp", "public", "local", "other"


def observations_to_json(obs: Observations, *, with_bodies: bool = False) -> Any:
    data = msgspec.to_builtins(obs)
    if not with_bodies:
        for h in data["http"]:
            h.pop("body", None)
    if data.get("quic", 0) is None:
        del data["quic"]  # not measured: the record reads as it did before HTTP/3 (issue 24)
    return data


def observations_from_json(data: Any) -> Observations:
    return msgspec.convert(data, type=Observations)


def control_to_json(control: ControlEvidence | None) -> Any:
    if control is None:
        return None
    data = msgspec.to_builtins(control)
    asked = control.quic_handshake or control.http3_failure or control.http3_status_code
    if not asked:
        for key in ("quic_handshake", "http3_failure", "http3_status_code"):
            del data[key]  # no HTTP/3 asked: the record reads as before issue 24
    return data


def control_from_json(data: Any) -> ControlEvidence | None:
    return None if data is None else msgspec.convert(data, type=ControlEvidence)


def throughput_to_json(test: ThroughputRecord | None) -> Any:
    return None if test is None else msgspec.to_builtins(test)


def throughput_from_json(data: Any) -> ThroughputRecord | None:
    return None if data is None else msgspec.convert(data, type=ThroughputRecord)
