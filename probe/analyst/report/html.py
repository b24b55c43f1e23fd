"""``probe report``: one self-contained HTML file a person would rather look at than read.

Contract: :func:`collect` reads the selected measurements once, oldest first, and keeps only
aggregates (memory bounded by targets x time bins, answer changes and kinds of anomaly, not by
measurements): the verdict timeline per target, verdict counts per category and per network,
the first and last measurement, the throughput ratios and throttling events
(:func:`probe.classify.events.find_events`), each target's DNS answers when they changed, and every
anomaly grouped by target, network, verdict, failing step, failure, rule and rules version, with
its count, first and last time and measurement ids, and its evidence in plain words
(:mod:`probe.analyst.report.evidence`). :func:`render` turns that into HTML with the plots inline
as SVG (:mod:`probe.analyst.report.plots`) and a Content-Security-Policy that forbids every
request: opening the file fetches nothing. Labels in English or Vietnamese (English message ids,
translated by :func:`probe.words.translator`). :func:`write_report` writes the file (never
half-written) and, with ``png_dir``, each plot as a PNG.
"""

from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from probe import __version__
from probe import words as V
from probe.analyst.export.files import destination
from probe.analyst.export.records import ExportError, verdict_words
from probe.analyst.report.evidence import explain
from probe.classify.events import Event, find_events
from probe.store import RowFilter, Store
from probe.timeutil import parse_iso
from probe.words import N_, translator

BINS = 150  # the timeline's resolution: at most this many columns
_STEPS_S = [3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400, 30 * 86400]
_COLUMNS = [
    "id",
    "target",
    "category",
    "is_control",
    "started_at",
    "network",
    "blocking",
    "accessible",
    "evidence",
    "offline",
    "throttled",
    "blockpage",
    "failing_step",
    "failure",
    "rule_id",
    "rules_version",
    "dns_consistency",
    "body_proportion",
    "body_length_match",
    "status_code_match",
    "headers_match",
    "title_match",
    "observations",
    "control",
    "throughput",
]


class _Answer(msgspec.Struct):
    type: str
    value: str


class _Query(msgspec.Struct):
    resolver: str = ""
    depth: int = 0
    answers: list[_Answer] = []
    failure: str | None = None


class _Observations(msgspec.Struct):
    dns: list[_Query] = []


@dataclass(slots=True)
class Anomaly:
    target: str
    network: str
    verdict: str
    count: int
    first_at: str
    last_at: str
    first_id: str
    last_id: str
    evidence: list[str]


@dataclass(slots=True)
class ReportData:
    lang: str = "en"
    first: str | None = None
    last: str | None = None
    measurements: int = 0
    controls: int = 0
    t0: datetime = field(default_factory=lambda: parse_iso("2000-01-01"))
    bin_seconds: int = 3600
    timeline: dict[str, dict[int, Counter[str]]] = field(default_factory=dict)
    by_category: dict[str, Counter[str]] = field(default_factory=dict)
    by_network: dict[str, Counter[str]] = field(default_factory=dict)
    throughput: dict[str, list[tuple[datetime, str, float]]] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    dns: dict[str, list[tuple[datetime, str, bool | None]]] = field(default_factory=dict)
    anomalies: dict[tuple[Any, ...], Anomaly] = field(default_factory=dict)


def _bin_seconds(first: str, last: str) -> int:
    span = (parse_iso(last) - parse_iso(first)).total_seconds()
    return next((s for s in _STEPS_S if span / s <= BINS), _STEPS_S[-1])


def collect(store: Store, f: RowFilter, lang: str = "en") -> ReportData:
    first, last, count = store.span(f)
    data = ReportData(lang=lang, first=first, last=last)
    if not count or first is None or last is None:
        return data
    data.bin_seconds = _bin_seconds(first, last)
    start = parse_iso(first)
    data.t0 = start.replace(minute=0, second=0, microsecond=0)
    if data.bin_seconds >= 86400:
        data.t0 = data.t0.replace(hour=0)
    dns_of = msgspec.json.Decoder(_Observations).decode
    last_answer: dict[str, str] = {}
    for row in store.stream_dicts(f, _COLUMNS):
        if row["is_control"]:
            data.controls += 1
            continue
        data.measurements += 1
        target, at = row["target"], parse_iso(row["started_at"])
        word = verdict_words(row)
        b = int((at - data.t0).total_seconds() // data.bin_seconds)
        data.timeline.setdefault(target, {}).setdefault(b, Counter())[word] += 1
        data.by_category.setdefault(row["category"] or "-", Counter())[word] += 1
        data.by_network.setdefault(row["network"], Counter())[word] += 1
        _dns(data, last_answer, f"{target} ({row['network']})", at, row, dns_of)
        if row["throughput"]:
            analysis = msgspec.json.decode(row["throughput"]).get("analysis") or {}
            ratio = analysis.get("ratio")  # null when the test was skipped
            if ratio is not None:
                data.throughput.setdefault(target, []).append((at, row["network"], ratio))
        if V.is_anomaly(word):
            key = (
                target,
                row["network"],
                word,
                row["failing_step"],
                row["failure"],
                row["rule_id"],
                row["rules_version"],
                row["blockpage"],
            )
            group = data.anomalies.get(key)
            if group is None:
                data.anomalies[key] = Anomaly(
                    target,
                    row["network"],
                    word,
                    1,
                    row["started_at"],
                    row["started_at"],
                    row["id"],
                    row["id"],
                    explain(row, lang),
                )
            else:
                group.count += 1
                group.last_at, group.last_id = row["started_at"], row["id"]
    targets = [t for t in data.throughput]
    if targets:
        lo, hi = f.since or "", f.until or "\uffff"
        tests = [t for t in store.throughput_tests(targets) if lo <= t.at < hi]
        data.events = find_events(tests)
    return data


def _dns(
    data: ReportData,
    last_answer: dict[str, str],
    target: str,
    at: datetime,
    row: dict[str, Any],
    decode: Any,
) -> None:
    """Record the resolver's answer for ``target`` (a target on one network) when it differs
    from the last one."""
    obs = decode(row["observations"])
    system = [q for q in obs.dns if q.resolver == "system" and q.depth == 0]
    if not system:
        return
    addrs = sorted({a.value for q in system for a in q.answers if a.type in ("A", "AAAA")})
    failure = next((q.failure for q in system if q.failure), None)
    answer = ", ".join(addrs) if addrs else (failure or "no answer")
    if last_answer.get(target) == answer:
        return
    last_answer[target] = answer
    consistent = {"consistent": True, "inconsistent": False}.get(row["dns_consistency"] or "")
    data.dns.setdefault(target, []).append((at, answer, consistent))


# -- HTML ------------------------------------------------------------------------------------
# The report's labels, by name; each is an English message id (plural forms: ngettext where
# they are said).
_UI = {
    "title": N_("Network interference report"),
    "period": N_("Period"),
    "first": N_("first measurement"),
    "last": N_("last measurement"),
    "none": N_("No measurements match."),
    "summary": N_("Summary"),
    "by_category": N_("By category"),
    "by_network": N_("By network"),
    "category": N_("category"),
    "network": N_("network"),
    "timeline": N_("Verdicts over time"),
    "timeline_note": N_(
        "Each bar is {bin}; its colour is the verdict most measurements in it had."
    ),
    "throughput": N_("Throughput against a control"),
    "throughput_note": N_(
        "Below 1: slower than a control site measured at the same moment; shaded: throttling "
        "events found by probe events."
    ),
    "dns": N_("What the resolver under test answered"),
    "dns_note": N_("A new bar starts each time the answer changed."),
    "evidence": N_("Evidence for every anomaly"),
    "evidence_note": N_(
        "Anomalies of one kind (same target, network, verdict, failure and rule) are grouped; "
        "the evidence is that of the first."
    ),
    "ids": N_("Measurement ids"),
    "no_anomaly": N_("No anomaly in this period."),
    "words": N_(
        "Verdicts never say more than the evidence: “blocked” needs a control's view; "
        "“anomaly” is weaker evidence; “can't tell” is said as such."
    ),
    "generated": N_("Generated by probe {v}. Times are UTC."),
    "one_hour": N_("one hour"),
    "one_day": N_("one day"),
}
CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:64rem;padding:0 1rem;
color:#222}h1{margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ddd;padding:.2rem .5rem;
text-align:right}th:first-child,td:first-child{text-align:left}figure{margin:1rem 0}
figure svg{width:100%;height:auto}.note{color:#555;font-size:.9rem}article{border-left:4px solid
#d62728;padding:.2rem .9rem;margin:1rem 0;background:#fafafa}code{font-size:.85rem}
"""


def _u(key: str, lang: str, **kw: Any) -> str:
    """The label named ``key`` in ``lang``, its fields filled from ``kw``."""
    return translator(lang).gettext(_UI[key]).format(**kw)


def _measured(data: ReportData, lang: str) -> str:
    """How many measurements of how many targets on how many networks, each counted right."""
    tr = translator(lang)
    n, t, k = data.measurements, len(data.timeline), len(data.by_network)
    return tr.gettext("{measurements} of {targets} on {networks} ({controls})").format(
        measurements=tr.ngettext("{n} measurement", "{n} measurements", n).format(n=n),
        targets=tr.ngettext("{n} target", "{n} targets", t).format(n=t),
        networks=tr.ngettext("{n} network", "{n} networks", k).format(n=k),
        controls=tr.gettext("{n} of control sites").format(n=data.controls),
    )


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _span(seconds: int, lang: str) -> str:
    """A time bin's width: "one hour" (a word reads better than "1" here), "{n} hours"."""
    ngettext = translator(lang).ngettext
    if seconds % 86400 == 0:
        n = seconds // 86400
        return _u("one_day", lang) if n == 1 else ngettext("{n} day", "{n} days", n).format(n=n)
    n = seconds // 3600
    return _u("one_hour", lang) if n == 1 else ngettext("{n} hour", "{n} hours", n).format(n=n)


def _table(rows: dict[str, Counter[str]], head: str, lang: str) -> str:
    words = [w for w in V.VERDICTS if any(w in c for c in rows.values())]
    out = [f"<table><tr><th>{_e(head)}</th>"]
    out += [f"<th>{_e(V.translate(w, lang))}</th>" for w in words]
    out.append("</tr>")
    for name in sorted(rows):
        out.append(f"<tr><td>{_e(name)}</td>")
        out += [f"<td>{rows[name].get(w, 0)}</td>" for w in words]
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def _day(stored: str | None) -> str:
    return (stored or "")[:10]


def _when(stored: str) -> str:
    return f"{stored[:10]} {stored[11:16]}"


def render(data: ReportData, figures: dict[str, str]) -> str:
    """The HTML page: ``figures`` maps timeline, throughput and dns to inline SVG."""
    lang = data.lang
    head = (
        '<!doctype html>\n<html lang="{lang}"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">"
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        "<title>{title}</title><style>{css}</style></head><body>"
    ).format(lang=lang, title=_e(_u("title", lang)), css=CSS)
    out = [head, f"<h1>{_e(_u('title', lang))}</h1>"]
    if not data.measurements:
        out.append(f"<p>{_e(_u('none', lang))}</p>")
    else:
        out.append(
            f"<p><b>{_e(_u('period', lang))}:</b> {_e(_day(data.first))} – {_e(_day(data.last))}"
            f" ({_e(_u('first', lang))} {_e(_when(data.first or ''))} UTC, "
            f"{_e(_u('last', lang))} {_e(_when(data.last or ''))} UTC).<br>"
            + _e(_measured(data, lang))
            + "</p>"
        )
    out.append(f'<p class="note">{_e(_u("words", lang))}</p>')
    out.append(f'<h2 id="summary">{_e(_u("summary", lang))}</h2>')
    out.append(f"<h3>{_e(_u('by_category', lang))}</h3>")
    out.append(_table(data.by_category, _u("category", lang), lang))
    out.append(f"<h3>{_e(_u('by_network', lang))}</h3>")
    out.append(_table(data.by_network, _u("network", lang), lang))
    sections = [
        ("timeline", _u("timeline_note", lang, bin=_span(data.bin_seconds, lang))),
        ("throughput", _u("throughput_note", lang)),
        ("dns", _u("dns_note", lang)),
    ]
    for key, note in sections:
        out.append(f'<h2 id="{key}">{_e(_u(key, lang))}</h2><p class="note">{_e(note)}</p>')
        out.append(f'<figure id="plot-{key}">{figures[key]}</figure>')
    out.append(f'<h2 id="evidence">{_e(_u("evidence", lang))}</h2>')
    out.append(f'<p class="note">{_e(_u("evidence_note", lang))}</p>')
    groups = sorted(data.anomalies.values(), key=lambda a: (a.first_at, a.target))
    if not groups:
        out.append(f"<p>{_e(_u('no_anomaly', lang))}</p>")
    for a in groups:
        out.append(f'<article id="{_e(a.first_id)}">')
        out.append(
            f"<h3>{_e(a.target)}: {_e(V.translate(a.verdict, lang))} "
            f"<small>({_e(_u('network', lang))} {_e(a.network)})</small></h3>"
        )
        when = (
            translator(lang)
            .ngettext("{n} measurement, {a} to {b}", "{n} measurements, {a} to {b}", a.count)
            .format(n=a.count, a=_when(a.first_at), b=_when(a.last_at))
        )
        out.append(f"<p>{_e(when)} UTC</p><ul>")
        out += [f"<li>{_e(s)}</li>" for s in a.evidence]
        ids = f'<a href="#{_e(a.first_id)}"><code>{_e(a.first_id)}</code></a>'
        if a.last_id != a.first_id:
            ids += f" … <code>{_e(a.last_id)}</code>"
        out.append(f"</ul><p>{_e(_u('ids', lang))}: {ids}</p></article>")
    out.append(f'<p class="note">{_e(_u("generated", lang, v=__version__))}</p>')
    out.append("</body></html>\n")
    return "\n".join(out)


def write_report(
    store: Store,
    f: RowFilter,
    output: str,
    *,
    lang: str = "en",
    png_dir: str | None = None,
) -> str:
    """Write the report to ``output`` (and the plots to ``png_dir``); returns a summary."""
    from probe.analyst.report import plots

    if png_dir is not None:
        folder = Path(png_dir)
        if not folder.absolute().parent.is_dir():
            raise ExportError(f"{folder.absolute().parent}: no such folder (for --png {png_dir})")
        folder.mkdir(exist_ok=True)
    data = collect(store, f, lang)
    figs = {
        "timeline": plots.timeline(data, lang),
        "throughput": plots.throughput(data, lang),
        "dns": plots.dns_answers(data, lang),
    }
    page = render(data, {k: plots.svg(fig) for k, fig in figs.items()})
    with destination(output) as out:
        out.write(page.encode("utf-8"))
    if png_dir is not None:
        for name, fig in figs.items():
            (Path(png_dir) / f"{name}.png").write_bytes(plots.png(fig))
    # The terminal's line stays English until the CLI takes a language; its plurals are right.
    ngettext = translator("en").ngettext
    n, k = data.measurements, len(data.anomalies)
    summary = ngettext("{n} measurement", "{n} measurements", n).format(n=n)
    kinds = ngettext("{n} kind of anomaly", "{n} kinds of anomaly", k).format(n=k)
    return f"{output}: {summary}, {kinds}" + (f"; plots in {png_dir}" if png_dir else "")
