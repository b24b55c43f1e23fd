"""The report's plots (matplotlib, no screen): a verdict timeline per target, the throughput
ratio with throttling events shaded, and the resolver's answers over time.

Contract: each function takes the report's aggregated data (:mod:`probe.analyst.report.html`) and
the language, and returns a matplotlib Figure; :func:`svg` renders one as an inline ``<svg>``
element (text in the page's own fonts: nothing is fetched when the page opens) and :func:`png`
as PNG bytes. An empty plot says so in words rather than being blank.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import matplotlib
import matplotlib.dates as mdates
from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state
from matplotlib.patches import Patch

from probe import words as V
from probe.words import N_, translator

if TYPE_CHECKING:
    from probe.analyst.report.model import ReportData

COLOURS = {
    V.BLOCKPAGE: "#7f0000",
    V.BLOCKED_DNS: "#d62728",
    V.BLOCKED_TCP_IP: "#e6550d",
    V.BLOCKED_TLS_HTTP: "#a63603",
    V.THROTTLED: "#6a3d9a",
    V.ANOMALY_DNS: "#ff9896",
    V.ANOMALY_TCP_IP: "#fdae6b",
    V.ANOMALY_TLS_HTTP: "#d9a27a",
    V.ANOMALY_HTTP_DIFF: "#e377c2",
    V.ANOMALY_SLOW: "#c5b0d5",
    V.ANOMALY: "#bcbd22",
    V.DOWN: "#636363",
    V.CANT_TELL: "#bdbdbd",
    V.OFFLINE: "#dadaeb",
    V.ACCESSIBLE_NO_CONTROL: "#a1d99b",
    V.ACCESSIBLE: "#31a354",
}
MAX_PANELS = 12  # throughput and DNS plots: the targets with the most to show

# The plots' labels, by name; each is an English message id.
_LABELS = {
    "time": N_("time (UTC)"),
    "ratio": N_("target / control throughput"),
    "event": N_("throttling event"),
    "threshold": N_("half the control's"),
    "no_throughput": N_("No throughput tests in this period."),
    "no_dns": N_("No answers from the resolver under test in this period."),
    "no_data": N_("No measurements in this period."),
    "consistent": N_("same as the control's"),
    "inconsistent": N_("differs from the control's"),
}


def label(key: str, lang: str) -> str:
    """The label named ``key`` in ``lang``."""
    return translator(lang).gettext(_LABELS[key])


def _empty(text: str) -> Figure:
    fig = Figure(figsize=(10, 1.6))
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=13, color="#444444")
    ax.set_axis_off()
    fig.patch.set_facecolor("#f7f7f7")
    return fig


def period(data: ReportData) -> tuple[datetime, datetime]:
    """The time every plot spans: the timeline's bins, from the first one's start to the last
    one's end. Set on every axis, so a lone point (one throughput test, one DNS answer) does
    not leave matplotlib to pad it by years, and the plots' columns line up down the page."""
    width = timedelta(seconds=data.bin_seconds)
    last = _dt(data.last) if data.last else data.t0
    bins = int((last - data.t0).total_seconds() // data.bin_seconds) + 1
    return data.t0, data.t0 + width * bins


def _time_axis(ax: Any, data: ReportData, lang: str, *, show: bool = True) -> None:
    lo, hi = period(data)
    ax.set_xlim(_num(lo), _num(hi))
    locator = mdates.AutoDateLocator(minticks=3, maxticks=9)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    if show:
        ax.set_xlabel(label("time", lang))


def timeline(data: ReportData, lang: str) -> Figure:
    """Targets down, time across, each time bin coloured by its verdict."""
    targets = sorted(data.timeline)
    if not targets:
        return _empty(label("no_data", lang))
    fig = Figure(figsize=(10, 1.6 + 0.32 * len(targets)), layout="constrained")
    ax = fig.add_subplot()
    width = timedelta(seconds=data.bin_seconds)
    used: set[str] = set()
    for y, target in enumerate(reversed(targets)):
        spans: dict[str, list[tuple[float, float]]] = {}
        for b, counts in sorted(data.timeline[target].items()):
            word = _dominant(counts)
            start = _num(data.t0 + width * b)
            spans.setdefault(word, []).append((start, _num(data.t0 + width * (b + 1)) - start))
        for word, xr in spans.items():
            ax.broken_barh(xr, (y - 0.4, 0.8), facecolors=COLOURS[word], linewidth=0)
            used.add(word)
    ax.set_yticks(range(len(targets)), list(reversed(targets)))
    ax.set_ylim(-0.6, len(targets) - 0.4)
    ax.xaxis_date()
    _time_axis(ax, data, lang)
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    order = [w for w in COLOURS if w in used]
    fig.legend(
        handles=[Patch(color=COLOURS[w], label=V.translate(w, lang)) for w in order],
        loc="outside lower center",
        ncols=min(4, len(order)),
        frameon=False,
    )
    return fig


def _dominant(counts: dict[str, int]) -> str:
    """The most frequent verdict of a bin; on a tie, the more severe (COLOURS' order)."""
    rank = {w: i for i, w in enumerate(COLOURS)}
    return min(counts, key=lambda w: (-counts[w], rank.get(w, len(rank))))


def throughput(data: ReportData, lang: str) -> Figure:
    """Per target, the throughput ratio against the control over time, one line per network,
    throttling events (probe events) shaded."""
    targets = sorted(data.throughput, key=lambda t: (-len(data.throughput[t]), t))[:MAX_PANELS]
    if not targets:
        return _empty(label("no_throughput", lang))
    fig = Figure(figsize=(10, 0.6 + 2.1 * len(targets)), layout="constrained")
    axes: Sequence[Any] = list(fig.subplots(len(targets), 1, sharex=True, squeeze=False)[:, 0])
    for ax, target in zip(axes, targets, strict=True):
        for network in sorted({p[1] for p in data.throughput[target]}):
            pts = sorted((p[0], p[2]) for p in data.throughput[target] if p[1] == network)
            ax.plot(
                [p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, lw=1.2, label=network
            )
        for e in data.events:
            if e.target == target:
                end = e.closed_at or data.last or e.opened_at
                ax.axvspan(_dt(e.opened_at), _dt(end), color="#6a3d9a", alpha=0.18, lw=0)
        ax.axhline(0.5, color="#999999", lw=0.8, ls="--")
        ax.set_yscale("log")
        # The ratios, the threshold and parity in view with a margin: a lone point sits
        # inside the frame, not on its edge.
        ratios = [p[2] for p in data.throughput[target] if p[2] > 0]
        ax.set_ylim(min([*ratios, 0.5]) / 1.6, max([*ratios, 1.0]) * 1.6)
        ax.set_title(target, loc="left", fontsize=10)
        ax.set_ylabel(label("ratio", lang), fontsize=8)
        ax.legend(fontsize=8, loc="lower left", frameon=False)
        _time_axis(ax, data, lang, show=ax is axes[-1])
    fig.legend(
        handles=[
            Patch(color="#6a3d9a", alpha=0.18, label=label("event", lang)),
            Patch(color="#999999", label=label("threshold", lang)),
        ],
        loc="outside lower center",
        ncols=2,
        frameon=False,
    )
    return fig


def dns_answers(data: ReportData, lang: str) -> Figure:
    """Per target, what the resolver under test answered over time: one row per distinct
    answer, a bar from each change to the next."""
    targets = sorted(data.dns, key=lambda t: (-len(data.dns[t]), t))[:MAX_PANELS]
    if not targets:
        return _empty(label("no_dns", lang))
    rows = [len({c[1] for c in data.dns[t]}) for t in targets]
    fig = Figure(figsize=(10, 0.8 + sum(0.9 + 0.3 * n for n in rows)), layout="constrained")
    axes: Sequence[Any] = list(
        fig.subplots(
            len(targets), 1, sharex=True, squeeze=False, height_ratios=[1 + 0.4 * n for n in rows]
        )[:, 0]
    )
    end = _dt(data.last) if data.last else None
    for ax, target in zip(axes, targets, strict=True):
        changes = data.dns[target]
        answers = list(dict.fromkeys(c[1] for c in changes))
        for i, (at, answer, consistent) in enumerate(changes):
            stop = changes[i + 1][0] if i + 1 < len(changes) else (end or at)
            x0 = _num(at)
            w = max(_num(stop) - x0, 1 / 96)
            colour = "#31a354" if consistent else "#d62728" if consistent is False else "#969696"
            ax.broken_barh([(x0, w)], (answers.index(answer) - 0.35, 0.7), facecolors=colour)
        ax.set_yticks(range(len(answers)), [a[:48] for a in answers], fontsize=8)
        ax.set_ylim(-0.6, len(answers) - 0.4)
        ax.set_title(target, loc="left", fontsize=10)
        ax.xaxis_date()
        _time_axis(ax, data, lang, show=ax is axes[-1])
    fig.legend(
        handles=[
            Patch(color="#31a354", label=label("consistent", lang)),
            Patch(color="#d62728", label=label("inconsistent", lang)),
        ],
        loc="outside lower center",
        ncols=2,
        frameon=False,
    )
    return fig


def _num(t: datetime) -> float:
    return float(mdates.date2num(t))  # type: ignore[no-untyped-call]


def _dt(text: str) -> datetime:
    from probe.timeutil import parse_iso

    return parse_iso(text)


def svg(fig: Figure) -> str:
    buf = io.StringIO()
    # Text as <text> in the page's fonts (no @font-face: nothing to fetch), selectable and
    # searchable, and several times faster to write than glyphs drawn as paths.
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg") :]


def png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=150)
    return buf.getvalue()
