"""The evidence behind a verdict, in plain words (English, or a translation), for the report.

Contract: :func:`explain` is pure. From a stored measurement (a :class:`probe.store.Stored`: its
verdict, the observations, the control evidence and the throughput test) it returns sentences a
journalist can follow: which step failed and how (the df-007 failure in words, the raw string beside
it), what the control saw (the control resolver's answers, the page fetched through a control
address, or a test helper's view), the blockpage fingerprint or HTTP differences, the throughput
against a control, and the rule and rules version that decided. It states what was observed and
never more: a failure without a helper's view is said to be seen from this network only. The
sentences are English message ids, translated by :func:`probe.words.translator` (the catalogs in
probe/locale).
"""

from __future__ import annotations

from typing import Any

from probe import failures
from probe.classify import RULES
from probe.classify.quic import QUIC_RULES
from probe.model import DNSQuery, HTTPTransaction
from probe.store import Stored
from probe.words import N_, translator

_RULE_WHY = {r.id: r.why for r in RULES}
_QUIC_WHY = {r.id: r.why for r in QUIC_RULES}

FAILURE_WORDS: dict[str, str] = {
    failures.DNS_NXDOMAIN: N_("the name does not exist (NXDOMAIN)"),
    failures.DNS_NO_ANSWER: N_("no address in the answer"),
    failures.DNS_SERVFAIL: N_("the resolver failed (SERVFAIL)"),
    failures.DNS_REFUSED: N_("the resolver refused (REFUSED)"),
    failures.DNS_BOGON: N_("a private or loopback address, which leads nowhere"),
    failures.GENERIC_TIMEOUT: N_("no answer in time (timeout)"),
    failures.CONNECTION_RESET: N_("the connection was reset (RST)"),
    failures.CONNECTION_REFUSED: N_("the connection was refused"),
    failures.EOF_ERROR: N_("the connection was closed in the middle"),
    failures.SSL_INVALID_HOSTNAME: N_("the certificate is for another name"),
    failures.SSL_UNKNOWN_AUTHORITY: N_("the certificate is signed by an unknown authority"),
    failures.SSL_INVALID_CERTIFICATE: N_("the certificate is invalid"),
    failures.HTTP_TOO_MANY_REDIRECTS: N_("redirects without end"),
    failures.HTTP_INVALID_REDIRECT_LOCATION_HOST: N_("a redirect to an invalid address"),
    failures.HOST_UNREACHABLE: N_("the host is unreachable"),
    failures.NETWORK_UNREACHABLE: N_("the network is unreachable"),
}

# The sentences, by name; each is an English message id with named fields.
_T = {
    "dns_fail": N_("The resolver under test ({resolver}) gave no address for {host}: {failure}."),
    "dns_answer": N_("The resolver under test ({resolver}) answered {host} with {answers}."),
    "ctl_answer": N_("The control resolver ({resolver}) answered {answers}."),
    "ctl_fail": N_("The control resolver ({resolver}) gave no address either: {failure}."),
    "tcp_fail": N_("Every TCP connection to {endpoints} failed: {failure}."),
    "tls_fail": N_("The TLS handshake with {server} at {endpoint} failed: {failure}."),
    "http_fail": N_("The HTTP request for {url} failed: {failure}."),
    "helper": N_(
        "A test helper on another network measured the same URL: DNS {dns}; TCP {tcp}; HTTP {http}."
    ),
    "helper_down": N_(
        "The test helper could not be reached ({failure}): there is no outside view to compare."
    ),
    "no_helper": N_(
        "No test helper was asked: this is what this network showed, not a comparison with "
        "another vantage point."
    ),
    "blockpage": N_("The answer matched the known blockpage fingerprint {name}."),
    "diff": N_(
        "The page differed from the control's: status {status}, body length {length} "
        "(proportion {proportion}), title {title}."
    ),
    "throughput": N_(
        "Throughput was {ratio:.0%} of a control site's measured at the same moment "
        "(p = {p}; {label})."
    ),
    "offline": N_("The round's control sites failed too: the volunteer's own link was down."),
    "rule": N_("Decided by rule {rule} (rules {version}): {why}."),
    "quic_fail": N_("The QUIC handshake with {server} at {endpoint} failed: {failure}."),
    "quic_neutral": N_("With the neutral name {server}, the same address answered over QUIC."),
    "quic": N_("Over QUIC (HTTP/3): {why} (rule {rule})."),
    "same": N_("same"),
    "different": N_("different"),
    "unknown": N_("not compared"),
    "ok": N_("worked"),
    "nothing": N_("none"),
}


def t(key: str, lang: str, **kw: Any) -> str:
    """The sentence named ``key`` in ``lang``, its fields filled from ``kw``."""
    return translator(lang).gettext(_T[key]).format(**kw)


def failure_words(failure: str | None, lang: str) -> str:
    if not failure:
        return t("nothing", lang)
    words = FAILURE_WORDS.get(failure)
    return f"{translator(lang).gettext(words)} ({failure})" if words else failure


def _page(lang: str, page: HTTPTransaction, *, control: bool) -> str:
    """A fetched page (an HTTP observation) in a sentence: the system's or the control's."""
    ngettext = translator(lang).ngettext
    length = page.body_length
    n = length if isinstance(length, int) else 0  # an unknown length reads as plural
    if control:
        text = ngettext(
            "Fetched through the control resolver's address, the page was HTTP {status}, "
            "{length} byte, titled “{title}”.",
            "Fetched through the control resolver's address, the page was HTTP {status}, "
            "{length} bytes, titled “{title}”.",
            n,
        )
    else:
        text = ngettext(
            "{url} answered HTTP {status}, {length} byte, titled “{title}”.",
            "{url} answered HTTP {status}, {length} bytes, titled “{title}”.",
            n,
        )
    return text.format(
        url=page.url,
        status=page.status_code,
        length=length,
        title=page.title or "",
    )


def _answers(queries: list[DNSQuery]) -> list[str]:
    return sorted({a.value for q in queries for a in q.answers if a.type in ("A", "AAAA")})


def _match(v: Any, lang: str) -> str:
    return t("unknown", lang) if v is None else t("same" if v else "different", lang)


def explain(m: Stored, lang: str = "en") -> list[str]:
    """Plain sentences for one stored measurement."""
    v, obs, control = m.verdict, m.observations, m.control
    out: list[str] = []
    if v.offline:
        out.append(t("offline", lang))
    step, failure = v.failing_step, v.failure
    dns0 = [q for q in obs.dns if q.depth == 0]
    system = [q for q in dns0 if q.resolver == "system"]
    ctl = [q for q in dns0 if q.resolver == "control"]
    host = system[0].hostname if system else (ctl[0].hostname if ctl else "")
    sys_answers, ctl_answers = _answers(system), _answers(ctl)
    if system:
        resolver = system[0].resolver_address or ""
        if sys_answers:
            out.append(
                t("dns_answer", lang, resolver=resolver, host=host, answers=", ".join(sys_answers))
            )
        else:
            fail = next((q.failure for q in system if q.failure), None)
            out.append(
                t("dns_fail", lang, resolver=resolver, host=host, failure=failure_words(fail, lang))
            )
    if ctl:
        resolver = ctl[0].resolver_address or ""
        if ctl_answers:
            out.append(t("ctl_answer", lang, resolver=resolver, answers=", ".join(ctl_answers)))
        else:
            fail = next((q.failure for q in ctl if q.failure), None)
            out.append(t("ctl_fail", lang, resolver=resolver, failure=failure_words(fail, lang)))
    http = obs.http
    final = next((h for h in reversed(http) if h.role == "system"), None)
    if step == "tcp":
        tcp0 = [c for c in obs.tcp if "system" in c.sources]
        eps = ", ".join(f"{c.ip}:{c.port}" for c in tcp0) or "?"
        out.append(t("tcp_fail", lang, endpoints=eps, failure=failure_words(failure, lang)))
    elif step == "tls":
        hs = next((h for h in obs.tls if h.failure), None)
        server = hs.server_name if hs else host
        endpoint = f"{hs.ip}:{hs.port}" if hs else "?"
        out.append(
            t(
                "tls_fail",
                lang,
                server=server,
                endpoint=endpoint,
                failure=failure_words(failure, lang),
            )
        )
    elif step == "http" and final is not None:
        out.append(t("http_fail", lang, url=final.url, failure=failure_words(failure, lang)))
    elif final is not None and final.status_code:
        out.append(_page(lang, final, control=False))
    ctl_page = next((h for h in reversed(http) if h.role == "control"), None)
    if ctl_page is not None and ctl_page.status_code and control is None:
        out.append(_page(lang, ctl_page, control=True))
    if v.blockpage:
        out.append(t("blockpage", lang, name=v.blockpage))
    if v.blocking == "http-diff":
        prop = v.body_proportion
        out.append(
            t(
                "diff",
                lang,
                status=_match(v.status_code_match, lang),
                length=_match(v.body_length_match, lang),
                proportion="?" if prop is None else f"{prop:.2f}",
                title=_match(v.title_match, lang),
            )
        )
    if control is not None and control.failure:
        out.append(t("helper_down", lang, failure=control.failure))
    elif control is not None:
        tcp_ok = [ep for ep, e in control.tcp_connect.items() if e.ok]
        http_part = (  # the sentence says "HTTP" once: "HTTP 200", "HTTP none"
            str(control.http_status_code)
            if control.http_status_code
            else failure_words(control.http_failure, lang)
        )
        out.append(
            t(
                "helper",
                lang,
                dns=", ".join(control.dns_addrs) or failure_words(control.dns_failure, lang),
                tcp=(t("ok", lang) + ": " + ", ".join(tcp_ok)) if tcp_ok else t("nothing", lang),
                http=http_part,
            )
        )
    elif v.blocking not in (None, False):
        out.append(t("no_helper", lang))
    analysis = m.throughput.analysis if m.throughput is not None else None
    if analysis is not None and analysis.ratio is not None and v.throttled:
        p = analysis.p_value
        out.append(
            t(
                "throughput",
                lang,
                ratio=analysis.ratio,
                p="?" if p is None else f"{p:.2g}",
                label=analysis.label or "?",
            )
        )
    out += _quic(m, lang)
    rule = v.rule_id or "?"
    out.append(
        t(
            "rule",
            lang,
            rule=rule,
            version=v.rules_version or "?",
            why=translator(lang).gettext(_RULE_WHY[rule]) if rule in _RULE_WHY else "?",
        )
    )
    return out


def _quic(m: Stored, lang: str) -> list[str]:
    """The HTTP/3 sentences (issue 24): the first failed handshake on the site's name, whether
    a neutral name got through to the same address, and the QUIC verdict's reason."""
    q, v = m.observations.quic, m.verdict
    if q is None or v.quic_rule is None:
        return []
    out: list[str] = []
    failed = next((h for h in q.handshakes if h.role == "system" and h.failure), None)
    if failed is not None:
        endpoint = f"{failed.ip}:{failed.port}"
        words = failure_words(failed.failure, lang)
        out.append(
            t("quic_fail", lang, server=failed.server_name, endpoint=endpoint, failure=words)
        )
    neutral = next((h for h in q.handshakes if h.role == "neutral_sni"), None)
    if neutral is not None and (neutral.ok or neutral.answered):
        out.append(t("quic_neutral", lang, server=neutral.server_name))
    why = _QUIC_WHY.get(v.quic_rule)
    out.append(t("quic", lang, why=translator(lang).gettext(why) if why else "?", rule=v.quic_rule))
    return out
