"""The evidence behind a verdict, in plain words (English, or a translation), for the report.

Contract: :func:`explain` is pure. From a stored measurement row (its verdict columns, the
observations and the control evidence) it returns sentences a journalist can follow: which step
failed and how (the df-007 failure in words, the raw string beside it), what the control saw
(the control resolver's answers, the page fetched through a control address, or a test helper's
view), the blockpage fingerprint or HTTP differences, the throughput against a control, and the
rule and rules version that decided. It states what was observed and never more: a failure
without a helper's view is said to be seen from this network only. The sentences are English
message ids, translated by :func:`probe.words.translator` (the catalogs in probe/locale).
"""

from __future__ import annotations

from typing import Any

import msgspec

from probe import failures
from probe.classify import RULES
from probe.words import N_, translator

_RULE_WHY = {r.id: r.why for r in RULES}

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
    "same": N_("same"),
    "different": N_("different"),
    "unknown": N_("not compared"),
    "ok": N_("worked"),
    "nothing": N_("none"),
}

_decode = msgspec.json.Decoder()


def t(key: str, lang: str, **kw: Any) -> str:
    """The sentence named ``key`` in ``lang``, its fields filled from ``kw``."""
    return translator(lang).gettext(_T[key]).format(**kw)


def failure_words(failure: str | None, lang: str) -> str:
    if not failure:
        return t("nothing", lang)
    words = FAILURE_WORDS.get(failure)
    return f"{translator(lang).gettext(words)} ({failure})" if words else failure


def _page(lang: str, page: dict[str, Any], *, control: bool) -> str:
    """A fetched page (an HTTP observation) in a sentence: the system's or the control's."""
    ngettext = translator(lang).ngettext
    length = page.get("body_length")
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
        url=page.get("url"),
        status=page.get("status_code"),
        length=length,
        title=page.get("title") or "",
    )


def _answers(queries: list[dict[str, Any]]) -> list[str]:
    return sorted(
        {a["value"] for q in queries for a in q.get("answers") or [] if a["type"] in ("A", "AAAA")}
    )


def _match(v: Any, lang: str) -> str:
    return t("unknown", lang) if v is None else t("same" if v else "different", lang)


def explain(row: dict[str, Any], lang: str = "en") -> list[str]:
    """Plain sentences for one stored measurement row (``observations`` and ``control`` as
    stored, JSON text or bytes)."""
    obs = _decode.decode(row["observations"]) if row.get("observations") else {}
    control = _decode.decode(row["control"]) if row.get("control") else None
    out: list[str] = []
    if row.get("offline"):
        out.append(t("offline", lang))
    step, failure = row.get("failing_step"), row.get("failure")
    dns0 = [q for q in obs.get("dns") or [] if q.get("depth", 0) == 0]
    system = [q for q in dns0 if q.get("resolver") == "system"]
    ctl = [q for q in dns0 if q.get("resolver") == "control"]
    host = system[0]["hostname"] if system else (ctl[0]["hostname"] if ctl else "")
    sys_answers, ctl_answers = _answers(system), _answers(ctl)
    if system:
        resolver = system[0].get("resolver_address") or ""
        if sys_answers:
            out.append(
                t("dns_answer", lang, resolver=resolver, host=host, answers=", ".join(sys_answers))
            )
        else:
            fail = next((q.get("failure") for q in system if q.get("failure")), None)
            out.append(
                t("dns_fail", lang, resolver=resolver, host=host, failure=failure_words(fail, lang))
            )
    if ctl:
        resolver = ctl[0].get("resolver_address") or ""
        if ctl_answers:
            out.append(t("ctl_answer", lang, resolver=resolver, answers=", ".join(ctl_answers)))
        else:
            fail = next((q.get("failure") for q in ctl if q.get("failure")), None)
            out.append(t("ctl_fail", lang, resolver=resolver, failure=failure_words(fail, lang)))
    http = obs.get("http") or []
    final = next((h for h in reversed(http) if h.get("role") == "system"), None)
    if step == "tcp":
        tcp0 = [c for c in obs.get("tcp") or [] if "system" in (c.get("sources") or [])]
        eps = ", ".join(f"{c['ip']}:{c['port']}" for c in tcp0) or "?"
        out.append(t("tcp_fail", lang, endpoints=eps, failure=failure_words(failure, lang)))
    elif step == "tls":
        hs = next((h for h in obs.get("tls") or [] if h.get("failure")), None)
        server = hs.get("server_name") if hs else host
        endpoint = f"{hs['ip']}:{hs['port']}" if hs else "?"
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
        out.append(t("http_fail", lang, url=final.get("url"), failure=failure_words(failure, lang)))
    elif final is not None and final.get("status_code"):
        out.append(_page(lang, final, control=False))
    ctl_page = next((h for h in reversed(http) if h.get("role") == "control"), None)
    if ctl_page is not None and ctl_page.get("status_code") and control is None:
        out.append(_page(lang, ctl_page, control=True))
    if row.get("blockpage"):
        out.append(t("blockpage", lang, name=row["blockpage"]))
    if row.get("blocking") == "http-diff":
        prop = row.get("body_proportion")
        out.append(
            t(
                "diff",
                lang,
                status=_match(row.get("status_code_match"), lang),
                length=_match(row.get("body_length_match"), lang),
                proportion="?" if prop is None else f"{prop:.2f}",
                title=_match(row.get("title_match"), lang),
            )
        )
    if control is not None and control.get("failure"):
        out.append(t("helper_down", lang, failure=control["failure"]))
    elif control is not None:
        tcp_ok = [ep for ep, e in (control.get("tcp_connect") or {}).items() if e.get("ok")]
        http_part = (
            f"HTTP {control['http_status_code']}"
            if control.get("http_status_code")
            else failure_words(control.get("http_failure"), lang)
        )
        out.append(
            t(
                "helper",
                lang,
                dns=", ".join(control.get("dns_addrs") or [])
                or failure_words(control.get("dns_failure"), lang),
                tcp=(t("ok", lang) + ": " + ", ".join(tcp_ok)) if tcp_ok else t("nothing", lang),
                http=http_part,
            )
        )
    elif row.get("blocking") not in (None, "false", False):
        out.append(t("no_helper", lang))
    tp = _decode.decode(row["throughput"]) if row.get("throughput") else None
    analysis = (tp or {}).get("analysis") or {}
    if analysis.get("ratio") is not None and row.get("throttled"):
        p = analysis.get("p_value")
        out.append(
            t(
                "throughput",
                lang,
                ratio=analysis["ratio"],
                p="?" if p is None else f"{p:.2g}",
                label=analysis.get("label") or "?",
            )
        )
    rule = row.get("rule_id") or "?"
    out.append(
        t(
            "rule",
            lang,
            rule=rule,
            version=row.get("rules_version") or "?",
            why=_RULE_WHY.get(rule, "?"),
        )
    )
    return out
