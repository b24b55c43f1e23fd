"""Facts: what the rules look at, derived purely from observations and control evidence.

Contract: ``derive(obs, control, fingerprints, network_ok)`` compares the system path with the
control evidence (the control resolver's answers, a page fetched through a control address, and
a test helper's answer when there is one) and returns a :class:`Facts` value. No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from probe import addr, failures
from probe.classify.fingerprints import FingerprintSet
from probe.model import (
    REDIRECT_STATUSES,
    ControlEvidence,
    HTTPTransaction,
    Observations,
    no_address_failure,
    page_length,
)

DNS_DOWN_FAILURES = {failures.DNS_NXDOMAIN, failures.DNS_NO_ANSWER}
COMMON_HEADERS = frozenset(
    {
        "date",
        "content-type",
        "server",
        "cache-control",
        "vary",
        "set-cookie",
        "location",
        "expires",
        "x-powered-by",
        "content-encoding",
        "last-modified",
        "accept-ranges",
        "pragma",
        "x-frame-options",
        "etag",
        "x-content-type-options",
        "age",
        "via",
        "p3p",
        "x-xss-protection",
        "content-language",
        "cf-ray",
        "strict-transport-security",
        "link",
        "x-varnish",
    }
)
# Message framing, not content: every server sends some of these, so sharing them says nothing
# about whether two responses came from the same site (a blockpage and the real page both carry
# Content-Length). OONI counts Content-Length among the uncommon headers; its ``headers_match``
# is reported as OONI computes it, but the same-page decision never rests on these.
FRAMING_HEADERS = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "proxy-connection"}
)
STEP_OF_OPERATION = {
    failures.OP_RESOLVE: "dns",
    failures.OP_CONNECT: "tcp",
    failures.OP_TLS: "tls",
    failures.OP_HTTP: "http",
    failures.OP_READ: "http",
}


@dataclass(frozen=True, slots=True)
class Reference:
    """A page known to come from the real site: the helper's, or one fetched via control DNS."""

    status_code: int | None
    body_length: int | None
    title: str | None
    header_names: frozenset[str]
    location: str | None = None  # where a redirect sends the user


@dataclass(frozen=True, slots=True)
class HTTPDiff:
    body_proportion: float | None = None
    body_length_match: bool | None = None
    status_code_match: bool | None = None
    headers_match: bool | None = None  # OONI's definition (reported, for parity)
    title_match: bool | None = None
    site_headers_match: bool | None = None  # an uncommon header that is not framing is shared
    location_match: bool | None = None  # both redirect, to the same place

    @property
    def same_page(self) -> bool:
        """OONI's acceptance (status matches, and then body length, uncommon headers or title),
        where the headers must share one that is neither common nor framing; two redirects to
        the same Location are the same answer (they have no body or title to compare)."""
        return bool(self.status_code_match) and bool(
            self.body_length_match
            or self.site_headers_match
            or self.title_match
            or self.location_match
        )


def http_diff(probe: HTTPTransaction, ref: Reference) -> HTTPDiff:
    proportion = length_match = status_match = headers_match = title_match = None
    site_headers = None
    ours_length = page_length(probe)
    if (ref.body_length or 0) > 0 and ours_length:
        a, b = ours_length, ref.body_length or 0
        proportion = min(a, b) / max(a, b)
        length_match = proportion > 0.7
    ps, cs = probe.status_code or 0, ref.status_code or 0
    if ps > 0 and cs > 0 and (ps == cs or cs // 100 == 2):
        status_match = ps == cs
    ours = {k.lower() for k, _ in probe.headers}
    theirs = set(ref.header_names)
    if theirs and ps > 0:
        headers_match = ours == theirs or bool((ours & theirs) - COMMON_HEADERS)
        site_headers = bool((ours & theirs) - COMMON_HEADERS - FRAMING_HEADERS)
    if ps > 0 and cs > 0 and not probe.body_truncated and probe.title and ref.title:
        # OONI counts a word's UTF-8 bytes, not its letters: Vietnamese words are short in
        # letters ("chặn" is 4), and counting letters would leave short titles nothing to compare.
        words: dict[str, int] = {}
        for w in probe.title.split(" "):
            if len(w.encode()) >= 5:
                words[w.lower()] = words.get(w.lower(), 0) | 1
        for w in ref.title.split(" "):
            if len(w.encode()) >= 5:
                words[w.lower()] = words.get(w.lower(), 0) | 2
        title_match = all(v == 3 for v in words.values())
    location_match = None
    if ps in REDIRECT_STATUSES and cs in REDIRECT_STATUSES and probe.location and ref.location:
        location_match = probe.location == ref.location
    return HTTPDiff(
        proportion,
        length_match,
        status_match,
        headers_match,
        title_match,
        site_headers,
        location_match,
    )


@dataclass(frozen=True, slots=True)
class Facts:
    https: bool
    network_ok: bool | None
    has_helper: bool
    helper_ok: bool
    helper: ControlEvidence | None
    sys_addrs: tuple[str, ...]
    sys_dns_failure: str | None
    ref_addrs: tuple[str, ...]
    ref_dns_failure: str | None
    ref_dns_known: bool
    dns_consistency: str | None
    dns_validated: bool  # an inconsistent answer still led to the real site (TLS or same page)
    final: HTTPTransaction | None
    final_failure: str | None
    failing_step: str | None
    final_depth: int
    hop_control_failed: bool  # the final hop's name failed on the control resolver too
    tcp0_all_failed: bool
    helper_tcp_ok: bool | None
    reference: Reference | None
    diff: HTTPDiff
    dns_blockpage: str | None
    http_blockpage: str | None
    evidence: str


def _reference(control: ControlEvidence | None, obs: Observations) -> Reference | None:
    if control is not None and control.failure is None:
        if control.http_failure is None and (control.http_status_code or 0) > 0:
            headers = {k.lower(): v for k, v in control.http_headers.items()}
            return Reference(
                control.http_status_code,
                control.http_body_length,
                control.http_title,
                frozenset(headers),
                headers.get("location"),
            )
        return None
    ctl = [h for h in obs.http if h.role == "control"]
    if ctl and ctl[-1].failure is None:
        h = ctl[-1]
        return Reference(
            h.status_code,
            page_length(h),
            h.title,
            frozenset(k.lower() for k, _ in h.headers),
            h.location,
        )
    return None


def derive(
    obs: Observations,
    control: ControlEvidence | None,
    fingerprints: FingerprintSet,
    network_ok: bool | None,
) -> Facts:
    host_queries = [q for q in obs.dns if q.depth == 0]
    sys_q = [q for q in host_queries if q.resolver == "system"]
    ctl_q = [q for q in host_queries if q.resolver == "control"]
    sys_addrs = tuple(dict.fromkeys(a for q in sys_q for a in q.addrs))
    ctl_addrs = tuple(dict.fromkeys(a for q in ctl_q for a in q.addrs))

    sys_dns_failure = no_address_failure(sys_q)
    helper_ok = control is not None and control.failure is None
    ref_addrs = list(ctl_addrs)
    ref_failures = []
    if ctl_q:
        ref_failures.append(no_address_failure(ctl_q))
    if helper_ok and control is not None:
        ref_addrs += [a for a in control.dns_addrs if a not in ref_addrs]
        if control.dns_failure or not control.dns_addrs:
            ref_failures.append(_normalise_helper_dns_failure(control.dns_failure))
    ref_dns_known = bool(ctl_q) or helper_ok
    ref_dns_failure = None if ref_addrs else next((f for f in ref_failures if f), None)

    # DNS consistency (OONI's meaning: the answers, not what the addresses served).
    consistency: str | None = None
    if sys_q:
        if sys_dns_failure is not None:
            if ref_addrs:
                consistency = "inconsistent"
            elif ref_dns_failure in DNS_DOWN_FAILURES and sys_dns_failure in DNS_DOWN_FAILURES:
                consistency = "consistent"
        elif ref_addrs:
            # A shared address is consistent, so the same private answer from both is too; a
            # bogon or loopback answer where the control has public ones shares none.
            consistency = "consistent" if set(sys_addrs) & set(ref_addrs) else "inconsistent"
        elif ref_dns_failure == failures.DNS_NXDOMAIN:
            consistency = "inconsistent"  # the resolver under test invents a dead name

    system_http = [h for h in obs.http if h.role == "system"]
    final = system_http[-1] if system_http else None
    https = (final.url if final else obs.url).startswith("https://")
    final_failure = final.failure if final else sys_dns_failure
    failing_step = None
    if final is not None and final.failure is not None:
        failing_step = STEP_OF_OPERATION.get(final.failed_operation or "", "http")
    elif final is None and sys_dns_failure is not None:
        failing_step = "dns"

    # Was an inconsistent system address validated?
    sys_only = set(sys_addrs) - set(ref_addrs)
    tls_valid = any(t.ok and t.ip in sys_only and t.depth == 0 for t in obs.tls)
    reference = _reference(control, obs)
    diff = HTTPDiff()
    if final is not None and final.failure is None and reference is not None:
        diff = http_diff(final, reference)
    page_match = diff.same_page
    # A verified TLS handshake proves an address reaches the real site, but not that it serves
    # the real plaintext page (a transparent proxy can pass TLS through and rewrite port 80).
    served = final is not None and final.failure is None
    dns_validated = (
        consistency == "inconsistent" and bool(sys_only) and (page_match if served else tls_valid)
    )

    tcp0 = [t for t in obs.tcp if t.depth == 0 and "system" in t.sources]
    tcp0_all_failed = bool(tcp0) and not any(t.ok for t in tcp0)
    helper_tcp_ok = None
    if helper_ok and control is not None and tcp0:
        eps = [control.tcp_connect.get(addr.endpoint(t.ip, t.port)) for t in tcp0]
        known = [e for e in eps if e is not None]
        helper_tcp_ok = any(e.ok for e in known) if known else None

    dns_bp = fingerprints.match_dns(sys_addrs)
    http_bp = None
    for h in system_http:
        fp = fingerprints.match_http(h)
        if fp is not None:
            http_bp = fp.name
            break
    return Facts(
        https=https,
        network_ok=network_ok,
        has_helper=control is not None,
        helper_ok=helper_ok,
        helper=control,
        sys_addrs=sys_addrs,
        sys_dns_failure=sys_dns_failure,
        ref_addrs=tuple(ref_addrs),
        ref_dns_failure=ref_dns_failure,
        ref_dns_known=ref_dns_known,
        dns_consistency=consistency,
        dns_validated=dns_validated,
        final=final,
        final_failure=final_failure,
        failing_step=failing_step,
        final_depth=final.depth if final else 0,
        hop_control_failed=_hop_control_failed(obs, final),
        tcp0_all_failed=tcp0_all_failed,
        helper_tcp_ok=helper_tcp_ok,
        reference=reference,
        diff=diff,
        dns_blockpage=dns_bp.name if dns_bp else None,
        http_blockpage=http_bp,
        evidence="helper" if helper_ok else ("local" if ctl_q else "none"),
    )


def _hop_control_failed(obs: Observations, final: HTTPTransaction | None) -> bool:
    """Did the control resolver fail to give a usable address for the name the final
    (redirected) hop needed? Either it resolved nothing, or, where the hop was refused for a
    local answer (dns_bogon_error), it gave the same local answer as the resolver under test:
    the site's own redirect into a local network, not the resolver's lie. False when it gave
    other addresses or was never asked (OONI's data: its helper resolves only the first
    hop)."""
    if final is None or final.depth == 0:
        return False
    ctl = [q for q in obs.dns if q.depth == final.depth and q.resolver == "control"]
    if not ctl:
        return False
    if no_address_failure(ctl) is not None:
        return True
    system = {
        a for q in obs.dns if q.depth == final.depth and q.resolver == "system" for a in q.addrs
    }
    return final.failure == failures.DNS_BOGON and bool(system & {a for q in ctl for a in q.addrs})


def _normalise_helper_dns_failure(failure: str | None) -> str:
    """OONI's helper reports legacy names (dns_name_error); map them to df-007."""
    if not failure:
        return failures.DNS_NO_ANSWER
    return failures.DNS_NXDOMAIN if failure == "dns_name_error" else failure
