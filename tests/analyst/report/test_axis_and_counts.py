"""The report's time axes follow the data (one throughput test does not stretch them over four
years: read from matplotlib's own axes, not from pixels), the helper's sentence says HTTP once,
the counts line says what each number counts, and the rules' reasons are translated."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import matplotlib.dates as mdates
import pytest

from probe.analyst.report import plots
from probe.analyst.report.evidence import explain
from probe.analyst.report.html import _measured
from probe.analyst.report.model import collect
from probe.classify import RULES
from probe.model import ThroughputAnalysis, ThroughputRecord
from probe.store import RowFilter, Store
from probe.timeutil import parse_iso
from probe.words import translate
from tests.dbs import helper_saw_it_work, measurement


def one_throughput_test(path: Path, *, days: int = 1) -> Path:
    """Pages of two targets on two networks over ``days`` days (and a control site each time);
    one throughput test among them, on the first day."""
    store = Store.open(path)
    for day in range(days):
        for hour in (2, 14):
            at = f"2026-11-{day + 1:02d}T{hour:02d}:00:00.000Z"
            for k, (target, asn) in enumerate([("news", "AS7552"), ("wiki", "AS45899")]):
                m = measurement(
                    "success_https",
                    f"202611{day + 1:02d}T{hour:02d}0000Z_{target}",
                    started_at=at,
                    target=target,
                    probe_asn=asn,
                )
                if day == 0 and hour == 14 and k == 0:
                    test = ThroughputRecord(
                        url="https://news.test/obj.bin",
                        analysis=ThroughputAnalysis(
                            throttled=True, label="sni_targeted", ratio=0.2, p_value=0.001
                        ),
                    )
                    m = replace(m, throughput=test, verdict=replace(m.verdict, throttled=True))
                store.save(m)
            ctl = measurement("success_https", f"202611{day + 1:02d}T{hour:02d}0000Z_c")
            store.save(replace(ctl, started_at=at, target="control", is_control=True))
    store.close()
    return path


def _xlim(fig: object) -> list[tuple[object, object]]:
    return [
        tuple(mdates.num2date(x) for x in ax.get_xlim())  # type: ignore[no-untyped-call]
        for ax in fig.axes  # type: ignore[attr-defined]
        if ax.axison
    ]


@pytest.mark.parametrize("days", [1, 3])
def test_the_time_axes_follow_the_data(tmp_path: Path, days: int) -> None:
    db = one_throughput_test(tmp_path / "p.db", days=days)
    data = collect(Store.open(db, readonly=True), RowFilter())
    first, last = parse_iso(data.first or ""), parse_iso(data.last or "")
    slack = timedelta(hours=13)  # at most half a day either side (a bin, a margin)
    figs = {
        "throughput": plots.throughput(data, "en"),
        "timeline": plots.timeline(data, "en"),
        "dns": plots.dns_answers(data, "en"),
    }
    for name, fig in figs.items():
        limits = _xlim(fig)
        assert limits, name
        for lo, hi in limits:
            assert first - slack <= lo <= first, (name, lo, first)  # type: ignore[operator]
            assert last <= hi <= last + slack + timedelta(seconds=data.bin_seconds), (name, hi)  # type: ignore[operator]
    # Every plot shares the period, so their columns line up down the page.
    assert len({lim for f in figs.values() for lim in _xlim(f)}) == 1


def test_a_single_measurement_gets_an_axis_of_hours_not_years(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "p.db")
    m = measurement("success_https", "20261101T020000Z_a", started_at="2026-11-01T02:00:00.000Z")
    test = ThroughputRecord(analysis=ThroughputAnalysis(throttled=False, ratio=0.9))
    store.save(replace(m, throughput=test, verdict=replace(m.verdict, throttled=False)))
    data = collect(store, RowFilter())
    for fig in (plots.throughput(data, "en"), plots.timeline(data, "en")):
        for lo, hi in _xlim(fig):
            assert timedelta(0) < hi - lo <= timedelta(days=1), (lo, hi)  # type: ignore[operator]


def test_the_helper_says_http_once(tmp_path: Path) -> None:
    m = measurement("tls_reset_on_sni", "m1", control=helper_saw_it_work("tls_reset_on_sni"))
    store = Store.open(tmp_path / "p.db")
    store.save(m)
    stored = next(iter(store.stored(RowFilter())))
    for lang in ("en", "vi"):
        text = " ".join(explain(stored, lang))
        assert "HTTP 200" in text and "HTTP HTTP" not in text, text


def test_the_counts_line_says_what_each_number_counts(tmp_path: Path) -> None:
    db = one_throughput_test(tmp_path / "p.db", days=2)
    data = collect(Store.open(db, readonly=True), RowFilter())
    assert (data.measurements, len(data.timeline), len(data.by_network), data.controls) == (
        8,
        2,
        2,
        4,
    )
    assert _measured(data, "en") == (
        "8 measurements of listed sites (2 sites, 2 networks), and 4 measurements of control "
        "sites, which show whether the volunteer's own link worked."
    )
    vi = _measured(data, "vi")
    assert "8" in vi and "4" in vi and "listed" not in vi
    data.controls = 0
    data.measurements = 1
    assert _measured(data, "en") == "1 measurement of listed sites (2 sites, 2 networks)."


def test_the_rules_reasons_are_translated(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "p.db")
    store.save(measurement("dns_nxdomain", "m1"))
    stored = next(iter(store.stored(RowFilter())))
    why = {r.id: r.why for r in RULES}[stored.verdict.rule_id or ""]
    en, vi = explain(stored, "en")[-1], explain(stored, "vi")[-1]
    assert why in en and why not in vi and translate(why, "vi") in vi
    for r in RULES:  # every reason the report can give has its Vietnamese
        assert translate(r.why, "vi") != r.why, r.id
