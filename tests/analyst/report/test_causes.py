"""Why it was slow, in words (probe.analyst.report.causes), and in the report: a removed cache
stored as real measurements, read back, attributed and told in English and Vietnamese."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from probe.analyst.report.causes import figure, sentence
from probe.analyst.report.html import render
from probe.analyst.report.model import collect
from probe.classify.events import Event
from probe.model import EdgeFact, ThroughputAnalysis, ThroughputRecord
from probe.store import RowFilter, Store
from tests.classify.test_attribution import SCENARIOS
from tests.dbs import measurement


def _moved() -> Event:
    side = {"tests": 20, "bps": 12e6, "rtt_ms": 8.2, "edge_asn": "AS7552", "on_net": True}
    after = {"tests": 6, "bps": 2.04e6, "rtt_ms": 45.4, "edge_asn": "AS32934", "on_net": False}
    return Event(
        "Facebook",
        "AS7552",
        "2026-03-12T08:00:00Z",
        cause="local_cache_removed",
        rule_id="cache.removed",
        basis="no rule explains the slowdown",
        evidence={"before": side, "after": after, "foreign_origins": {"slow": 0}},
    )


def test_a_removed_cache_is_told_in_one_sentence_in_english_and_vietnamese() -> None:
    assert sentence(_moved()) == (
        "on 12 March, Facebook's edges moved from inside AS7552 to AS32934, round trips rose "
        "from 8.2 to 45 ms and downloads fell from 12 to 2 Mbit/s, while other foreign sites "
        "kept their speed"
    )
    assert sentence(_moved(), "vi") == (
        "vào ngày 12 tháng 3, các máy chủ biên của Facebook chuyển từ bên trong AS7552 sang "
        "AS32934, thời gian khứ hồi tăng từ 8.2 lên 45 ms và tốc độ tải xuống giảm từ 12 xuống "
        "2 Mbit/s, trong khi các trang nước ngoài khác vẫn giữ tốc độ"
    )
    assert sentence(Event("a", "AS1", "2026-03-12T08:00:00Z")) is None  # no cause, no sentence


@pytest.mark.parametrize(
    ("cause", "words"),
    [
        ("international_degraded", "together with 2 other foreign sites"),
        ("congestion", "congestion of the volunteer's own link"),
        ("targeted", "address or name throttled"),
        ("unknown", "no rule tells why"),
    ],
)
def test_every_cause_has_its_sentence(cause: str, words: str) -> None:
    e = replace(
        _moved(),
        cause=cause,
        evidence={**_moved().evidence, "foreign_origins": {"slow": 3, "names": ["Facebook"]}},
    )
    told = sentence(e) or ""
    assert words in told and "fell from 12 to 2 Mbit/s" in told


def test_figures_are_said_as_a_person_would() -> None:
    assert [figure(x) for x in (12.4, 2.04, 0.25, 180.0, None)] == ["12", "2", "0.2", "180", "?"]


def _store(tmp_path: Path) -> Store:
    """The golden removed-cache scenario as stored measurements: each site's test with its
    rate, class and the edge its object came from."""
    store = Store.open(tmp_path / "p.db")
    for i, t in enumerate(SCENARIOS["local_cache_removed"][0]):
        m = measurement(
            "success_https",
            f"{t.at[:13].replace('-', '')}0000Z_{i:04d}",
            started_at=t.at.replace("Z", ".000Z"),
            target=t.target,
            probe_asn="AS7552",
            probe_cc="VN",
        )
        edge = EdgeFact(
            "192.0.2.1", roles=("target",), asn=t.edge_asn, on_net=t.on_net, rtt_ms=t.rtt_ms
        )
        test = ThroughputRecord(
            analysis=ThroughputAnalysis(bps=t.bps, ratio=1.0, throttled=False),
            edges=(edge,),
            target_class=t.target_class,
            class_basis="served",
        )
        store.save(replace(m, throughput=test))
    return store


def test_the_report_tells_why_it_was_slow(tmp_path: Path) -> None:
    store = _store(tmp_path)
    try:
        (t,) = [t for t in store.edge_tests(["facebook"]) if t.at.startswith("2026-03-02T03")]
        assert (t.edge_asn, t.on_net, t.target_class) == ("AS32934", False, "foreign_origin")
        data = collect(store, RowFilter())
        vi = collect(store, RowFilter(), "vi")
    finally:
        store.close()
    assert [(c.target, c.cause) for c in data.causes] == [("facebook", "local_cache_removed")]
    page = render(data, {"timeline": "", "throughput": "", "dns": ""})
    assert "Why it was slow" in page and 'data-cause="local_cache_removed"' in page
    assert "On 2 March, facebook&#x27;s edges moved from inside AS7552 to AS32934" in page
    assert "ngày 2 tháng 3, các máy chủ biên của facebook" in render(
        vi, {"timeline": "", "throughput": "", "dns": ""}
    )


def test_probe_events_why_tells_each_slowdown_and_its_cause(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from probe.cli import main

    _store(tmp_path).close()
    db = str(tmp_path / "p.db")
    assert main(["events", "--db", db, "--why", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["count"] == 1
    (s,) = doc["slowdowns"]
    assert (s["target"], s["cause"], s["rule_id"]) == (
        "facebook",
        "local_cache_removed",
        "cache.removed",
    )
    assert s["evidence"]["after"]["edge_asn"] == "AS32934"
    assert s["sentence"].startswith("on 2 March, facebook's edges moved from inside AS7552")
    assert main(["--lang", "vi", "events", "--db", db, "--why", "--target", "bbc", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 0  # bbc kept its speed
    assert main(["--lang", "vi", "events", "--db", db, "--why", "--format", "jsonl"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert "máy chủ biên của facebook" in json.loads(line)["sentence"]
    assert main(["--lang", "vi", "events", "--db", db, "--why"]) == 0
    assert "1 lần chậm lại" in capsys.readouterr().out  # the table, in Vietnamese
