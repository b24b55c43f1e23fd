"""Pure throttling analysis: flows (and a test helper's view) -> throttled, label, mechanism.

Contract: ``analyse(flows, ...)`` is a pure function of the recorded samples. Per flow it drops
the slow-start transient, finds a downward level shift (a throttle that starts after a burst,
whose bytes before the shift are ``burst_bytes``) and takes the steady goodput after it. Per
test: the median target/control goodput ratio over trials, and a one-sided Mann-Whitney U test
of the target's 1-second block rates against the control's, Bonferroni-corrected for the number
of targets tested in the round. Throttled only when the ratio is at most 0.5 *and* the test is
significant. The label says whose doing it is; the mechanism, how. A test with no trials (the
site offers no object) is judged on the SNI A/B alone (``basis`` "sni_ab"): see ``_analyse_ab``.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace

from probe.model import Flow, HelperSpeed, ThroughputAnalysis

TRANSIENT = 0.5  # seconds after the first byte: slow start
RATIO_MAX = 0.5
ALPHA = 0.05
STALL = 2.0  # seconds without a byte, mid-flow
AB_ROLES = ("ab_neutral", "ab_target", "ab_neutral2", "ab_site")
NEUTRAL_ROLES = ("ab_neutral", "ab_neutral2")
LABELS = (
    "sni_targeted",
    "ip_targeted",
    "handshake_throttled",
    "stall",
    "target_slow_unattributed",
    "congestion",
)


@dataclass(frozen=True, slots=True)
class FlowStats:
    bps: float  # steady goodput, bit/s
    peak_bps: float
    burst_bytes: int | None  # bytes before a downward level shift
    blocks: tuple[float, ...]  # 1-second block rates (bit/s) of the steady part
    stalled: bool
    ttfb: float | None


def _rates(points: list[tuple[float, int]]) -> list[tuple[float, float, int]]:
    """(time, bit/s over the interval ending then, cumulative bytes) between samples."""
    out = []
    for (t0, b0), (t1, b1) in itertools.pairwise(points):
        if t1 > t0:
            out.append((t1, (b1 - b0) * 8 / (t1 - t0), b1))
    return out


def _level_shift(points: list[tuple[float, int]]) -> int | None:
    """Index k of ``points`` where a fast start gives way to a rate at most half as fast for
    the rest of the flow. Medians, not means: a throttled flow stalls and catches up, and one
    catch-up must not hide the shift. A burst must also be worth the name: more than two
    seconds' worth of the rate that follows (slow start's first window is not a burst)."""
    rates = [r for _, r, _ in _rates(points)]
    best = None
    for k in range(1, len(rates) // 2 + 1):
        if statistics.median(rates[k:]) <= RATIO_MAX * min(rates[:k]):
            best = k  # the latest interval that is still fast
    if best is None:
        return None
    (t_k, b_k), (t_end, b_end) = points[best], points[-1]
    after_bps = (b_end - b_k) * 8 / max(t_end - t_k, 1e-3)
    return best if b_k * 8 >= 2 * after_bps else None


def _burst_bytes(points: list[tuple[float, int]], k: int) -> int:
    """Bytes before the shift. The burst ends inside the interval after ``points[k]``; the
    steady line fitted to what follows, read back at ``points[k]``, says where."""
    after = points[k + 1 :]
    lo, hi = points[k][1], points[k + 1][1]
    if len(after) < 2:
        return lo
    ts, bs = [t for t, _ in after], [b for _, b in after]
    slope, intercept = statistics.linear_regression(ts, bs)
    return int(min(max(intercept + slope * points[k][0], lo), hi))


def _longest_pause(points: list[tuple[float, int]], total: int) -> float:
    """Longest time without a byte, after the first byte and before the last."""
    longest, since = 0.0, None
    for (t0, b0), (t1, b1) in itertools.pairwise(points):
        if b1 == b0 and 0 < b0 < total:
            since = t0 if since is None else since
            longest = max(longest, t1 - since)
        else:
            since = None
    return longest


def flow_stats(flow: Flow) -> FlowStats | None:
    if flow.failure is not None or flow.bytes == 0:
        return None
    # From the moment the request left, every 250 ms sample.
    points = [(0.0, 0)] + [(s.t, s.bytes) for s in flow.samples]
    first = next((t for t, b in points if b > 0), None)
    if first is None:
        return None
    stalled = _longest_pause(points, flow.bytes) >= STALL
    while len(points) > 2 and points[-1][1] == points[-2][1]:
        points.pop()  # a sampler tick after the last byte adds nothing
    burst = None
    rates = _rates(points)
    k = _level_shift(points) if len(rates) >= 4 else None
    if k is not None:
        # A throttle that starts after a burst: the steady part is what follows the burst.
        burst = _burst_bytes(points, k)
        steady = [(t, b) for t, b in points if t >= points[k][0]]
    else:
        # Otherwise drop the slow-start transient.
        steady = [(t, b) for t, b in points if t >= first + TRANSIENT] or points
    if len(steady) >= 2 and steady[-1][0] > steady[0][0]:
        bps = (steady[-1][1] - steady[0][1]) * 8 / (steady[-1][0] - steady[0][0])
    else:  # finished within the transient: the whole body over the whole time
        bps = flow.bytes * 8 / max(flow.duration - (flow.ttfb or 0.0), 1e-3)
    blocks: list[float] = []
    if len(steady) >= 2:
        edge, last_t, last_b = steady[0][0] + 1.0, steady[0][0], steady[0][1]
        for t, b in steady[1:]:
            if t >= edge:
                blocks.append((b - last_b) * 8 / (t - last_t))
                edge, last_t, last_b = t + 1.0, t, b
    peak = max((r for _, r, _ in rates), default=bps)
    return FlowStats(bps, peak, burst, tuple(blocks) or (bps,), stalled, flow.ttfb)


def _mechanism(flows: Sequence[Flow]) -> str | None:
    """policer: packets dropped (out-of-order arrivals) without queueing delay; shaper: a queue
    (round-trip time far above the path's minimum)."""
    rtts, mins, ooo = [], [], 0
    for f in flows:
        for s in f.samples:  # the receiver's own RTT estimate: what a queue inflates
            if s.rcv_rtt_us and s.min_rtt_us:
                rtts.append(s.rcv_rtt_us)
                mins.append(s.min_rtt_us)
        if f.samples and f.samples[-1].ooo:
            ooo += f.samples[-1].ooo or 0
    if not rtts:
        return None
    inflation = statistics.median(rtts) / max(min(mins), 1)
    if inflation >= 3:
        return "shaper"
    if ooo > 0 and inflation < 2:
        return "policer"
    return None


def _median_bps(stats: list[FlowStats]) -> float | None:
    return statistics.median(s.bps for s in stats) if stats else None


def analyse(
    flows: Sequence[Flow],
    *,
    tests_in_round: int = 1,
    helper_speed: HelperSpeed | None = None,
    alpha: float = ALPHA,
) -> ThroughputAnalysis:
    """The throttling verdict for one target's test."""
    by_trial: dict[int, dict[str, FlowStats]] = {}
    stats_of: dict[str, list[FlowStats]] = {}
    for f in flows:
        st = flow_stats(f)
        if (
            st is None
            and f.role.startswith("ab_")
            and f.bytes == 0
            and f.failure in (None, "generic_timeout_error")
        ):
            # Nothing at all within the time cap, where the neutral name got everything: for
            # the A/B comparison that is a rate of zero, not a missing measurement.
            st = FlowStats(0.0, 0.0, None, (0.0,), True, f.ttfb)
        if st is None:
            continue
        stats_of.setdefault(f.role, []).append(st)
        if f.role in ("target", "control"):
            by_trial.setdefault(f.trial, {})[f.role] = st
    target, control = stats_of.get("target", []), stats_of.get("control", [])
    ab = {r: _median_bps(stats_of.get(r, [])) for r in AB_ROLES if r != "ab_site"}
    if "ab_site" in stats_of:
        ab["ab_site"] = _median_bps(stats_of["ab_site"])
    base = ThroughputAnalysis(
        bps=_median_bps(target),
        control_bps=_median_bps(control),
        tests_in_round=tests_in_round,
        ab=ab,
        helper_bps=helper_speed.bps if helper_speed is not None else None,
        ab_ratio=_ab_ratio(ab),
        basis="trials",
    )
    h3 = compare_h3(flows, tests_in_round=tests_in_round, alpha=alpha)
    if h3 is not None:
        base = replace(
            base, h3_bps=h3.h3_bps, h3_ratio=h3.ratio, h3_p_value=h3.p_value, h3_slower=h3.slower
        )
    if not any(f.role in ("target", "control") for f in flows):
        return _analyse_ab(flows, stats_of, replace(base, basis="sni_ab"), alpha)
    ratios = [
        t["target"].bps / t["control"].bps
        for t in by_trial.values()
        if "target" in t and "control" in t and t["control"].bps > 0
    ]
    if not ratios:
        return replace(base, reason="no complete trial (a download failed)")
    from scipy.stats import mannwhitneyu  # lazy: scipy is heavy, and only needed here

    t_blocks = [b for s in target for b in s.blocks]
    c_blocks = [b for s in control for b in s.blocks]
    p_raw = float(mannwhitneyu(t_blocks, c_blocks, alternative="less").pvalue)
    p_adj = min(1.0, p_raw * max(1, tests_in_round))
    ratio = statistics.median(ratios)
    throttled = ratio <= RATIO_MAX and p_adj < alpha
    bursts = [s.burst_bytes for s in target if s.burst_bytes]
    out = replace(
        base,
        ratio=ratio,
        p_value=p_adj,
        p_raw=p_raw,
        throttled=throttled,
        burst_bytes=int(statistics.median(bursts)) if bursts else None,
    )
    if throttled:
        return replace(
            out,
            label=_label(target, control, out.ab, out.helper_bps),
            mechanism=_mechanism([f for f in flows if f.role == "target"]),
        )
    if _common_slowdown(target, control):
        return replace(out, label="congestion")
    return out


def _ab_ratio(ab: dict[str, float | None]) -> float | None:
    """The slower named leg (the object's host, or the site's) over the neutral name's rate."""
    neutral = ab.get("ab_neutral")
    named = [v for k, v in ab.items() if k in ("ab_target", "ab_site") and v is not None]
    if not neutral or not named:
        return None
    return min(named) / neutral


def _analyse_ab(
    flows: Sequence[Flow],
    stats_of: dict[str, list[FlowStats]],
    base: ThroughputAnalysis,
    alpha: float,
) -> ThroughputAnalysis:
    """The SNI A/B as the whole test (the site offers no object to download): the site's name
    against a neutral one, same helper, same path. Throttled only when the named legs are at
    most half as fast as the neutral ones (median), every named leg is at most half as fast as
    every neutral leg (a passing slowdown of the path cannot fall on the named legs alone: they
    alternate with neutral ones), and the named legs' 1-second rates are significantly lower
    (one-sided Mann-Whitney U, Bonferroni-corrected for the round)."""
    named = stats_of.get("ab_target", [])
    neutral = [s for r in NEUTRAL_ROLES for s in stats_of.get(r, [])]
    n_named = sum(1 for f in flows if f.role == "ab_target")
    n_neutral = sum(1 for f in flows if f.role in NEUTRAL_ROLES)
    if not named or len(neutral) < 2 or len(named) < n_named or len(neutral) < n_neutral:
        return replace(base, reason="SNI A/B incomplete (a download failed)")
    from scipy.stats import mannwhitneyu

    ratio = statistics.median(s.bps for s in named) / max(
        statistics.median(s.bps for s in neutral), 1e-9
    )
    t_blocks = [b for s in named for b in s.blocks]
    n_blocks = [b for s in neutral for b in s.blocks]
    p_raw = float(mannwhitneyu(t_blocks, n_blocks, alternative="less").pvalue)
    p_adj = min(1.0, p_raw * max(1, base.tests_in_round))
    every = max(s.bps for s in named) <= RATIO_MAX * min(s.bps for s in neutral)
    throttled = ratio <= RATIO_MAX and every and p_adj < alpha
    out = replace(base, ab_ratio=ratio, p_value=p_adj, p_raw=p_raw, throttled=throttled)
    if throttled:
        named_flows = [f for f in flows if f.role == "ab_target"]
        return replace(out, label="sni_targeted", mechanism=_mechanism(named_flows))
    return out


def looks_slow(flows: Sequence[Flow]) -> bool:
    """Worth attributing (the A/B and the helper's download cost data): the target's median
    rate is at most half the control's."""
    t = [s.bps for f in flows if f.role == "target" and (s := flow_stats(f))]
    c = [s.bps for f in flows if f.role == "control" and (s := flow_stats(f))]
    return bool(t and c) and statistics.median(t) <= RATIO_MAX * statistics.median(c)


def _label(
    target: list[FlowStats],
    control: list[FlowStats],
    ab: dict[str, float | None],
    helper_bps: float | None,
) -> str:
    t_bps = statistics.median(s.bps for s in target)
    neutral, named = ab.get("ab_neutral"), ab.get("ab_target")
    site = ab.get("ab_site")
    if neutral and any(v is not None and v <= RATIO_MAX * neutral for v in (named, site)):
        return "sni_targeted"  # same server and path: only the name differed
    fast_elsewhere = helper_bps is not None and helper_bps >= 2 * t_bps
    if neutral and named is not None and fast_elsewhere:
        return "ip_targeted"  # the name is not the trigger, and the site is fast elsewhere
    t_ttfb = [s.ttfb for s in target if s.ttfb is not None]
    c_ttfb = [s.ttfb for s in control if s.ttfb is not None]
    if t_ttfb and c_ttfb and statistics.median(t_ttfb) >= max(1.0, 4 * statistics.median(c_ttfb)):
        return "handshake_throttled"
    if any(s.stalled for s in target):
        return "stall"
    return "target_slow_unattributed"


def _common_slowdown(target: list[FlowStats], control: list[FlowStats]) -> bool:
    """Target and control both well below their own peaks: the link, not the site."""

    def slowed(stats: list[FlowStats]) -> bool:
        return bool(stats) and statistics.median(s.bps / max(s.peak_bps, 1) for s in stats) < 0.5

    return slowed(target) and slowed(control)


# -- HTTP/3 beside TCP (issue 24) ---------------------------------------------------------------
H3_ROLE = "h3"  # probe.measure.h3flow.ROLE
# HTTP/3's rate above which "slower" is not read: the probe's QUIC stack (aioquic, pure Python)
# tops out at tens of Mbit/s on a small machine (bench/quic.py: about 80 Mbit/s on loopback,
# alone), so beside a faster TCP it could be the probe's own CPU that is slow, not the path.
H3_CEILING_BPS = 20e6


@dataclass(frozen=True, slots=True)
class H3Comparison:
    """The target's object over HTTP/3 against the same object over TCP, fetched at the same
    moment in each trial. ``slower``: None when no trial has both flows complete."""

    trials: int  # trials with both flows complete
    h3_bps: float | None = None
    tcp_bps: float | None = None
    ratio: float | None = None  # median over trials of HTTP/3's rate over TCP's
    p_value: float | None = None  # one-sided Mann-Whitney U, Bonferroni-corrected
    p_raw: float | None = None
    slower: bool | None = None


def compare_h3(
    flows: Sequence[Flow], *, tests_in_round: int = 1, alpha: float = ALPHA
) -> H3Comparison | None:
    """HTTP/3 slower than TCP, with the throttling verdict's care: the median per-trial ratio
    of HTTP/3's steady rate to TCP's at most :data:`RATIO_MAX`, *and* HTTP/3's 1-second block
    rates significantly below TCP's (one-sided Mann-Whitney U, Bonferroni-corrected for the
    round's tests), *and* HTTP/3's median rate under :data:`H3_CEILING_BPS` (above it the
    probe's own QUIC stack may be the limit). None when the test had no HTTP/3 flow."""
    if not any(f.role == H3_ROLE for f in flows):
        return None
    by_trial: dict[int, dict[str, FlowStats]] = {}
    for f in flows:
        if f.role in ("target", H3_ROLE) and (st := flow_stats(f)) is not None:
            by_trial.setdefault(f.trial, {})[f.role] = st
    pairs = [t for t in by_trial.values() if "target" in t and H3_ROLE in t]
    pairs = [t for t in pairs if t["target"].bps > 0]
    if not pairs:
        return H3Comparison(0)
    from scipy.stats import mannwhitneyu

    h3 = [t[H3_ROLE] for t in pairs]
    tcp = [t["target"] for t in pairs]
    ratio = statistics.median(t[H3_ROLE].bps / t["target"].bps for t in pairs)
    h_blocks = [b for s in h3 for b in s.blocks]
    t_blocks = [b for s in tcp for b in s.blocks]
    p_raw = float(mannwhitneyu(h_blocks, t_blocks, alternative="less").pvalue)
    p_adj = min(1.0, p_raw * max(1, tests_in_round))
    h3_bps = statistics.median(s.bps for s in h3)
    return H3Comparison(
        len(pairs),
        h3_bps=h3_bps,
        tcp_bps=_median_bps(tcp),
        ratio=ratio,
        p_value=p_adj,
        p_raw=p_raw,
        slower=ratio <= RATIO_MAX and p_adj < alpha and h3_bps < H3_CEILING_BPS,
    )
