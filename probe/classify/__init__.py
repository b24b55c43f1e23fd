"""Pure, rule-based classification: (observations, control evidence, fingerprints) -> Verdict.

Contract: ``classify`` does no I/O and depends only on its arguments, so a stored measurement can
be replayed (``probe reclassify``) when the rules change. Rules are ordered data
(:data:`RULES`): the first whose condition holds decides ``blocking`` and ``accessible`` with
OONI Web Connectivity's meaning (false/true accessible; false/false down for everyone;
"dns"/"tcp_ip"/"http-failure"/"http-diff" with false: blocked that way; null/null: cannot tell).
Every verdict names its ``rule_id`` and :data:`RULES_VERSION`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from probe import failures
from probe.classify import quic
from probe.classify.facts import DNS_DOWN_FAILURES, Facts, derive
from probe.classify.fingerprints import FingerprintSet, builtin
from probe.model import NO_CONTROL, Blocking, ControlEvidence, Observations, Verdict
from probe.words import N_

RULES_VERSION = "2026.12.4"  # .2: HTTP/3 (issue 24); .3: local answers without a fetch;
# .4: quic.slower.throughput and quic.slower.page (issue 24)


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    why: str  # an English message id: the report says it in the reader's language
    when: Callable[[Facts], bool]
    blocking: Callable[[Facts], Blocking]
    accessible: bool | None
    evidence: str | None = None  # what the verdict rests on, when not the facts' own


def _success(f: Facts) -> bool:
    return f.final is not None and f.final.failure is None


RULES: tuple[Rule, ...] = (
    Rule(
        "offline",
        N_("the round's control sites failed too: the volunteer's own link is down"),
        lambda f: f.network_ok is False,
        lambda f: None,
        None,
    ),
    Rule(
        "blockpage.dns",
        N_("the resolver answered with a known blockpage address"),
        lambda f: f.dns_blockpage is not None,
        lambda f: "dns",
        False,
    ),
    Rule(
        "blockpage.http",
        N_("a response matched a known blockpage fingerprint"),
        lambda f: f.http_blockpage is not None,
        lambda f: "dns" if f.dns_consistency == "inconsistent" else "http-diff",
        False,
    ),
    Rule(
        "https.success",
        N_("verified TLS reached the site and it answered: content is authentic"),
        lambda f: _success(f) and f.https,
        lambda f: False,
        True,
    ),
    Rule(
        "dns.down_for_everyone",
        N_("the name does not resolve for the control either"),
        lambda f: f.sys_dns_failure in DNS_DOWN_FAILURES and f.ref_dns_failure in DNS_DOWN_FAILURES,
        lambda f: False,
        False,
    ),
    Rule(
        "dns.failure",
        N_("the resolver under test failed where the control resolved the name"),
        lambda f: f.sys_dns_failure is not None and bool(f.ref_addrs),
        lambda f: "dns",
        False,
    ),
    Rule(
        "dns.failure.unknown",
        N_("the resolver failed and there is no control answer to compare"),
        lambda f: f.sys_dns_failure is not None,
        lambda f: None,
        None,
    ),
    Rule(
        "dns.inconsistent.same_page",
        N_("another address, but it served the control's page"),
        lambda f: _success(f) and f.dns_consistency == "inconsistent" and f.dns_validated,
        lambda f: False,
        True,
    ),
    Rule(
        "dns.inconsistent.diff",
        N_(
            "another address, and it served a different page (or the "
            "control says the name does not exist)"
        ),
        lambda f: (
            _success(f)
            and f.dns_consistency == "inconsistent"
            and (f.reference is not None or f.ref_dns_failure == failures.DNS_NXDOMAIN)
        ),
        lambda f: "dns",
        False,
    ),
    Rule(
        "dns.inconsistent.unverified",
        N_("another address served a page we cannot compare"),
        lambda f: _success(f) and f.dns_consistency == "inconsistent",
        lambda f: None,
        None,
    ),
    Rule(
        "dns.inconsistent.failure",
        N_("the lying answer led nowhere"),
        lambda f: (
            f.final_failure is not None
            and f.dns_consistency == "inconsistent"
            and not f.dns_validated
        ),
        lambda f: "dns",
        False,
    ),
    Rule(
        "down.helper_failed_too",
        N_("the test helper could not load the page either"),
        lambda f: (
            f.final_failure is not None
            and f.helper_ok
            and f.helper is not None
            and f.helper.http_failure is not None
        ),
        lambda f: False,
        False,
    ),
    Rule(
        "down.bad_certificate",
        N_("the site's own certificate is bad on its real address"),
        lambda f: (
            not f.helper_ok
            and f.final_failure in failures.CERT_FAILURES
            and f.dns_consistency == "consistent"
        ),
        lambda f: False,
        False,
    ),
    Rule(
        "down.redirect_loop",
        N_("the site redirects without end"),
        lambda f: not f.helper_ok and f.final_failure == failures.HTTP_TOO_MANY_REDIRECTS,
        lambda f: False,
        False,
    ),
    Rule(
        "tcp.blocked",
        N_("every address of the site refused or dropped our connection"),
        lambda f: (
            f.failing_step == "tcp"
            and f.final_depth == 0
            and f.tcp0_all_failed
            and f.helper_tcp_ok is not False
        ),
        lambda f: "tcp_ip",
        False,
    ),
    Rule(
        "down.redirect_dns",
        N_("a redirect leads to a name the control resolver cannot resolve either"),
        lambda f: f.failing_step == "dns" and f.final_depth > 0 and f.hop_control_failed,
        lambda f: False,
        False,
    ),
    Rule(
        "dns.redirect_hop",
        N_("a redirect led to a name the resolver under test would not resolve"),
        lambda f: f.failing_step == "dns" and f.final_depth > 0,
        lambda f: "dns",
        False,
    ),
    Rule(
        "down.local_address",
        N_(
            "the control resolver gives the same local address: the name points into a "
            "local network"
        ),
        lambda f: f.failing_step == "dns" and f.dns_consistency == "consistent",
        lambda f: False,
        False,
    ),
    Rule(
        "dns.bogon.unknown",
        N_(
            "the resolver answered a local or reserved address and there is no control "
            "answer to compare"
        ),
        lambda f: f.failing_step == "dns",
        lambda f: None,
        None,
    ),
    Rule(
        "http.failure",
        N_("TCP worked, then TLS or HTTP was reset, cut or timed out"),
        lambda f: f.final_failure is not None,
        lambda f: "http-failure",
        False,
    ),
    Rule(
        "http.same_page",
        N_("the page matches the control's"),
        lambda f: _success(f) and f.reference is not None and f.diff.same_page,
        lambda f: False,
        True,
    ),
    Rule(
        "http.diff",
        N_("the page differs from the control's (status, length, headers, title)"),
        lambda f: _success(f) and f.reference is not None,
        lambda f: "http-diff",
        False,
    ),
    Rule(
        "http.no_control",
        N_("the page loaded, but the helper failed: nothing to compare with"),
        lambda f: _success(f) and f.has_helper,
        lambda f: None,
        None,
    ),
    Rule(
        "http.success.local",
        N_(
            "the page loaded over consistent DNS and is no known blockpage; with no page to "
            "compare it with, a transparent proxy's unknown blockpage would read the same"
        ),
        lambda f: _success(f) and f.dns_consistency == "consistent",
        lambda f: False,
        True,
        evidence=NO_CONTROL,
    ),
    Rule("undetermined", N_("no rule could decide"), lambda f: True, lambda f: None, None),
)


def classify(
    obs: Observations,
    *,
    control: ControlEvidence | None = None,
    fingerprints: FingerprintSet | None = None,
    network_ok: bool | None = None,
) -> Verdict:
    fps = builtin() if fingerprints is None else fingerprints
    f = derive(obs, control, fps, network_ok)
    rule = next(r for r in RULES if r.when(f))
    blocking = rule.blocking(f)
    failure = f.final_failure
    quic_label, quic_rule = quic.judge(obs, control, network_ok)
    return Verdict(
        blocking=blocking,
        accessible=rule.accessible,
        rule_id=rule.id,
        rules_version=RULES_VERSION,
        evidence=rule.evidence or f.evidence,
        dns_consistency=f.dns_consistency,
        failing_step=f.failing_step,
        failure=failure,
        blockpage=f.dns_blockpage or f.http_blockpage,
        body_proportion=f.diff.body_proportion,
        body_length_match=f.diff.body_length_match,
        status_code_match=f.diff.status_code_match,
        headers_match=f.diff.headers_match,
        title_match=f.diff.title_match,
        offline=rule.id == "offline",
        quic=quic_label,
        quic_rule=quic_rule,
    )


__all__ = ["NO_CONTROL", "RULES", "RULES_VERSION", "FingerprintSet", "Rule", "classify"]
