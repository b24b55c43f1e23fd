"""The HTTP/3 verdict: pure rules over a measurement's QUIC steps beside its TCP ones (issue 24).

Contract: :func:`judge` reads :attr:`Observations.quic` (probe.measure.quic), the TCP/TLS steps
to the same host and, when there is one, the test helper's own QUIC handshakes, and returns the
first :data:`QUIC_RULES` rule that holds: its ``label`` (``Verdict.quic``) and ``id``
(``Verdict.quic_rule``). The labels: ``ok``; ``blocked`` (QUIC to the site's addresses gets no
answer while TCP and TLS to them work: UDP endpoint blocking); ``sni_blocked`` (no answer on
the site's name, an answer from the same address on a neutral name: the filter reads the name
in the Initial packet); ``both_blocked`` (neither QUIC nor TCP gets through); ``down`` (the
helper cannot do QUIC to the site either); ``slower`` (``quic.slower.throughput``: in the
throughput test's trials, the same object over HTTP/3 beside TCP at the same moment was at most
half as fast, significantly, as :func:`probe.classify.throughput.compare_h3` judges; without such
a comparison, ``quic.slower.page``: HTTP/3 carried the same page at under a third of TCP's
rate, one GET after the other); ``failure`` (a server answered, and the handshake or the HTTP/3 GET
still failed); None (and no rule) when QUIC was not tried. No I/O; the rules are data with ids.
The throughput test runs after the page is classified: :func:`refine` is what its comparison
changes in a page's verdict (the same as :func:`judge` given the flows).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from probe.classify.throughput import H3Comparison, compare_h3
from probe.model import ControlEvidence, Flow, HTTPTransaction, Observations, QUICHandshake
from probe.words import N_

# The labels that say QUIC was blocked (the daemon's round events count them).
QUIC_BLOCKED = frozenset({"blocked", "sni_blocked", "both_blocked"})
# Rates compared only over a body this large: a small page's time is its round trips.
SLOWER_MIN_BYTES = 32 * 1024
SLOWER_RATIO = 3.0


@dataclass(frozen=True, slots=True)
class QUICFacts:
    measured: bool
    network_ok: bool | None
    system: tuple[QUICHandshake, ...]  # the site's name, to its addresses
    neutral: QUICHandshake | None  # a neutral name to the same address
    get: HTTPTransaction | None  # the HTTP/3 GET
    tcp_ok: bool | None  # TCP (and TLS) to the same host worked; None: not tried
    tcp_get: HTTPTransaction | None  # the TCP GET of the same URL
    helper_quic: bool | None  # the helper's QUIC handshakes: any worked; None: not asked
    helper_ab: tuple[QUICHandshake, QUICHandshake] | None = None  # the site's name, neutral
    compared: H3Comparison | None = None  # the throughput test's HTTP/3 beside TCP

    @property
    def throughput_slower(self) -> bool | None:
        """The throughput test's verdict on HTTP/3 against TCP; None: not compared."""
        return None if self.compared is None else self.compared.slower

    @property
    def quic_ok(self) -> bool:
        return any(h.ok for h in self.system)

    @property
    def unanswered(self) -> bool:
        """Every handshake on the site's name failed and nothing came back: a drop, a reject."""
        return bool(self.system) and not any(h.ok or h.answered for h in self.system)

    @property
    def neutral_answered(self) -> bool:
        return self.neutral is not None and (self.neutral.ok or self.neutral.answered)

    @property
    def helper_sni_blocked(self) -> bool:
        """To the helper's listener, the site's name got no answer and the neutral one did."""
        if self.helper_ab is None:
            return False
        named, neutral = self.helper_ab
        return not (named.ok or named.answered) and (neutral.ok or neutral.answered)

    @property
    def slower(self) -> bool:
        return _rate_ratio(self.get, self.tcp_get) >= SLOWER_RATIO


def _rate(h: HTTPTransaction | None) -> float | None:
    if h is None or h.failure is not None or not h.body_length or h.t <= h.t0:
        return None
    return h.body_length / (h.t - h.t0)


def _rate_ratio(h3: HTTPTransaction | None, tcp: HTTPTransaction | None) -> float:
    """TCP's rate over HTTP/3's for the same body (0.0 when they cannot be compared)."""
    a, b = _rate(h3), _rate(tcp)
    if a is None or b is None or h3 is None or tcp is None:
        return 0.0
    if (h3.body_length or 0) < SLOWER_MIN_BYTES or h3.body_sha256 != tcp.body_sha256:
        return 0.0
    return b / a


def derive(
    obs: Observations,
    control: ControlEvidence | None = None,
    network_ok: bool | None = None,
    flows: Sequence[Flow] = (),
    tests_in_round: int = 1,
) -> QUICFacts:
    q = obs.quic
    if q is None or q.skipped is not None or not q.handshakes:
        return QUICFacts(False, network_ok, (), None, None, None, None, None)
    system = tuple(h for h in q.handshakes if h.role == "system" and "system" in h.sources)
    neutral = next((h for h in q.handshakes if h.role == "neutral_sni"), None)
    ips = {h.ip for h in system}
    tls = [t for t in obs.tls if t.server_name == q.host and t.ip in ips]
    tcp = [t for t in obs.tcp if t.ip in ips]
    tcp_ok: bool | None = None
    if tls:
        tcp_ok = any(t.ok for t in tls)
    elif tcp:
        tcp_ok = False if not any(t.ok for t in tcp) else None
    get = q.http[0] if q.http else None
    tcp_get = next(
        (h for h in obs.http if get is not None and h.role == "system" and h.url == get.url), None
    )
    helper_quic: bool | None = None
    if control is not None and control.failure is None and control.quic_handshake:
        helper_quic = any(e.ok for e in control.quic_handshake.values())
    named = next((h for h in q.handshakes if h.role == "helper_sni"), None)
    other = next((h for h in q.handshakes if h.role == "helper_neutral"), None)
    ab = (named, other) if named is not None and other is not None else None
    compared = compare_h3(flows, tests_in_round=tests_in_round)
    return QUICFacts(
        True, network_ok, system, neutral, get, tcp_ok, tcp_get, helper_quic, ab, compared
    )


@dataclass(frozen=True, slots=True)
class QUICRule:
    id: str
    why: str  # an English message id
    when: Callable[[QUICFacts], bool]
    label: str | None


QUIC_RULES: tuple[QUICRule, ...] = (
    QUICRule(
        "quic.offline",
        N_("the round's control sites failed too: the volunteer's own link is down"),
        lambda f: f.network_ok is False,
        None,
    ),
    QUICRule(
        "quic.sni_blocked",
        N_("QUIC with the site's name got no answer; the same address answered a neutral name"),
        lambda f: f.unanswered and f.neutral_answered,
        "sni_blocked",
    ),
    QUICRule(
        "quic.sni_blocked.helper",
        N_(
            "QUIC with the site's name got no answer, from the site nor from the test helper; "
            "the helper answered a neutral name"
        ),
        lambda f: f.unanswered and f.helper_sni_blocked,
        "sni_blocked",
    ),
    QUICRule(
        "quic.down_for_everyone",
        N_("the test helper could not do QUIC with the site either"),
        lambda f: not f.quic_ok and f.helper_quic is False,
        "down",
    ),
    QUICRule(
        "quic.blocked",
        N_("QUIC to the site's addresses got no answer while TCP and TLS to them worked"),
        lambda f: f.unanswered and f.tcp_ok is True,
        "blocked",
    ),
    QUICRule(
        "quic.both_blocked",
        N_("neither QUIC nor TCP reached the site's addresses"),
        lambda f: f.unanswered and f.tcp_ok is False,
        "both_blocked",
    ),
    QUICRule(
        "quic.handshake_failure",
        N_("a QUIC server answered, but the handshake failed"),
        lambda f: not f.quic_ok and not f.unanswered,
        "failure",
    ),
    QUICRule(
        "quic.http3_failure",
        N_("the QUIC handshake worked, then the HTTP/3 request failed"),
        # (no GET at all: an imported OONI measurement that only handshook; probe always GETs)
        lambda f: f.quic_ok and f.get is not None and f.get.failure is not None,
        "failure",
    ),
    QUICRule(
        "quic.slower.throughput",
        N_(
            "HTTP/3 carried the throughput test's object at most half as fast as TCP did at the "
            "same moment, significantly"
        ),
        lambda f: f.quic_ok and f.throughput_slower is True,
        "slower",
    ),
    QUICRule(
        "quic.slower.page",
        N_("HTTP/3 carried the same page at under a third of TCP's rate"),
        lambda f: f.quic_ok and f.throughput_slower is None and f.slower,
        "slower",
    ),
    QUICRule(
        "quic.ok",
        N_("the QUIC handshake and the HTTP/3 request worked"),
        lambda f: f.quic_ok,
        "ok",
    ),
    QUICRule("quic.undetermined", N_("no rule could decide"), lambda f: True, None),
)


def judge(
    obs: Observations,
    control: ControlEvidence | None = None,
    network_ok: bool | None = None,
    flows: Sequence[Flow] = (),
    tests_in_round: int = 1,
) -> tuple[str | None, str | None]:
    """(label, rule id) of a measurement's HTTP/3 steps: the first rule that holds; (None,
    None) when HTTP/3 was not tried (turned off, not HTTPS, not advertised). ``flows``: the
    throughput test's, for HTTP/3 beside TCP."""
    f = derive(obs, control, network_ok, flows, tests_in_round)
    if not f.measured:
        return None, None
    rule = next(r for r in QUIC_RULES if r.when(f))
    return rule.label, rule.id


# The rules a page's verdict can have reached that the throughput comparison decides between
# (every rule before them reads the page's steps only).
_REFINED = ("quic.slower.throughput", "quic.slower.page", "quic.ok")


def refine(
    label: str | None, rule: str | None, flows: Sequence[Flow], tests_in_round: int = 1
) -> tuple[str | None, str | None]:
    """A page's QUIC verdict once its throughput test is known: :func:`judge` with the flows,
    from the page's (label, rule id) alone (the round holds no observations by then). Only the
    last rules read the comparison, so a verdict decided before them stays; so does one the
    test could not compare (no HTTP/3 flow, or none complete)."""
    slower = None if (c := compare_h3(flows, tests_in_round=tests_in_round)) is None else c.slower
    if rule not in _REFINED or slower is None:
        return label, rule
    return ("slower", "quic.slower.throughput") if slower else ("ok", "quic.ok")


__all__ = [
    "QUIC_BLOCKED",
    "QUIC_RULES",
    "QUICFacts",
    "QUICRule",
    "derive",
    "judge",
    "refine",
]
