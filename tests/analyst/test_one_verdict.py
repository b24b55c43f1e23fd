"""One verdict in every view (issue 21): one stored history, run through every view a person or
an analyst reads, says the same thing of every measurement.

The history: a TLS block a helper confirmed, a DNS block with control evidence, a blockpage, a
TCP anomaly without control evidence, a page the rules cannot tell about whose throughput test
found it throttled (the "slowed site" of the issue), a throttled site, a slow server
(``target_slow_unattributed``), an accessible site, one compared with nothing (no helper), one
that cannot be told, an offline round and a control site. The views: the words
(:func:`probe.words.words`), ``probe status`` (its anomalies and the last round's count),
``probe events``, every export (JSON Lines, CSV, OONI, Parquet), the HTML report, and the SQL the
shipped Datasette metadata runs, executed with sqlite3 on the same database file.
"""

from __future__ import annotations

import csv
import json
import re
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from probe import words as V
from probe.analyst.datasette import metadata
from probe.analyst.export.records import stored_words
from probe.cli import main
from probe.daemon.status import status
from probe.model import Measurement, ThroughputAnalysis, ThroughputRecord
from probe.store import RowFilter, Store
from probe.store.rows import RoundRecord
from probe.timeutil import day_floor, iso
from tests.dbs import HELPER_DOWN, helper_saw_it_work, measurement

ROUND = "round-one-verdict"

# target: (golden scenario, the helper's answer, throughput tests as (throttled, label))
HISTORY: dict[str, tuple[str, Any, list[tuple[bool, str | None]]]] = {
    "blocked-tls": ("tls_reset_on_sni", "saw-it-work", []),
    "blocked-dns": ("dns_nxdomain", None, []),
    "blockpage": ("dns_blockpage_address", None, []),
    "tcp-anomaly": ("tcp_refused", None, []),
    "slowed": ("success_http", HELPER_DOWN, [(True, "sni_targeted")] * 2),
    "throttled": ("success_https", None, [(True, "ip_targeted")] * 2),
    "slow-server": ("success_https", None, [(True, "target_slow_unattributed")] * 2),
    "accessible": ("success_https", None, [(False, None)] * 2),
    "helper-less": ("success_http", None, []),
    "cant-tell": ("success_http_no_control", None, []),
    "offline": ("offline_round", None, []),
}
WANT = {  # what the words say: the reference every view is compared with
    "blocked-tls": "blocked (tls/http failure)",
    "blocked-dns": "blocked (dns)",
    "blockpage": "blockpage",
    "tcp-anomaly": "anomaly (tcp_ip)",
    "slowed": "throttled",
    "throttled": "throttled",
    "slow-server": "anomaly (slow)",
    "accessible": "accessible",
    "helper-less": "accessible (no control)",
    "cant-tell": "can't tell",
    "offline": "offline",
}


def _test(throttled: bool, label: str | None) -> ThroughputRecord:
    ratio = 0.2 if throttled else 0.95
    return ThroughputRecord(
        url="https://t.test/obj.bin",
        control="control-site",
        bytes_used=2_000_000,
        analysis=ThroughputAnalysis(
            throttled=throttled,
            label=label,
            bps=8e6 * ratio,
            control_bps=8e6,
            ratio=ratio,
            p_value=0.001 if throttled else 0.5,
            basis="trials",
        ),
    )


def _history(now: datetime) -> list[Measurement]:
    start = max(now - timedelta(minutes=30), day_floor(now))  # today, for "blocked today"
    out: list[Measurement] = []
    k = 0
    for target, (name, control, tests) in HISTORY.items():
        ctl = helper_saw_it_work(name) if control == "saw-it-work" else control
        for j in range(max(1, len(tests))):
            at = iso(start + timedelta(seconds=10 * k))
            m = measurement(
                name,
                f"{at[:10].replace('-', '')}T{k:06d}Z_{target}",
                started_at=at,
                control=ctl,
                target=target,
                round_id=ROUND,
                probe_asn="AS7552",
                probe_cc="VN",
            )
            if tests:
                thr, label = tests[j]
                m = replace(
                    m, throughput=_test(thr, label), verdict=replace(m.verdict, throttled=thr)
                )
            out.append(m)
            k += 1
    control = measurement("success_https", f"{iso(start)[:10].replace('-', '')}T999999Z_ctl")
    out.append(replace(control, target="control-site", is_control=True, round_id=ROUND))
    out[-1] = replace(out[-1], started_at=iso(start))
    return out


@pytest.fixture
def db(tmp_path: Path) -> tuple[Path, datetime]:
    now = datetime.now(UTC)
    path = tmp_path / "probe.db"
    store = Store.open(path)
    ms = _history(now)
    for m in ms:
        store.save(m)
    store.save_round(
        RoundRecord(
            id=ROUND,
            device_id="dev-1",
            started_at=min(m.started_at for m in ms),
            finished_at=max(m.started_at for m in ms),
            kind="run",
            targets=len(ms),
            status="ok",
        )
    )
    store.close()
    return path, now


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(args) == 0, args
    return capsys.readouterr().out


def _by_target(verdicts: dict[str, str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for mid, w in verdicts.items():
        out.setdefault(mid.rsplit("_", 1)[1], set()).add(w)
    return out


def test_every_view_says_the_same_of_every_measurement(
    db: tuple[Path, datetime], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, now = db
    store = Store.open(path, readonly=True)
    rows = [m for m in store.stored(RowFilter()) if not m.is_control]
    words = {m.id: stored_words(m) for m in rows}
    target_of = {m.id: m.target for m in rows}
    per_target = {t: {w} for t, w in WANT.items()}
    assert _by_target(words) == per_target, "the words themselves"
    anomalies = {t for t, w in WANT.items() if V.is_anomaly(w)}
    blocked = {mid for mid, w in words.items() if V.is_blocked(w)}
    throttled_words = {t for t, w in WANT.items() if w in (V.THROTTLED, V.ANOMALY_SLOW)}

    # probe status: the targets with an anomaly in the last 24 h, in the same words, and the
    # last round's count of anomalous measurements.
    doc = status(store, now)
    assert {a["target"]: a["verdict"] for a in doc["anomalous_24h"]} == {
        t: WANT[t] for t in anomalies
    }
    assert doc["last_round"]["anomalies"] == sum(V.is_anomaly(w) for w in words.values())
    # Its open throttling events, and probe events: the targets the words call throttled (or
    # slow), each named as the words name it.
    assert {e["target"]: e["verdict"] for e in doc["throttling_events"]} == {
        t: WANT[t] for t in throttled_words
    }
    events = [
        json.loads(line)
        for line in _cli(["events", "--db", str(path), "--format", "jsonl"], capsys).splitlines()
    ]
    assert {e["target"]: e["verdict"] for e in events} == {t: WANT[t] for t in throttled_words}
    store.close()

    # Every export.
    exports: dict[str, dict[str, str]] = {}
    out = tmp_path / "x.jsonl"
    _cli(["export", "--db", str(path), "--format", "jsonl", "-o", str(out)], capsys)
    recs = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    exports["jsonl"] = {r["id"]: r["verdict"] for r in recs if not r["is_control"]}
    for r in recs:  # the raw throughput field beside the words never contradicts them
        if r["throttled"] and not r["offline"]:
            assert r["verdict"] in (V.THROTTLED, V.ANOMALY_SLOW) or V.is_blocked(r["verdict"])
    out = tmp_path / "x.csv"
    _cli(["export", "--db", str(path), "--format", "csv", "-o", str(out)], capsys)
    with out.open(encoding="utf-8", newline="") as fh:
        exports["csv"] = {
            r["id"]: r["verdict"]
            for r in csv.DictReader(fh)
            if r["is_control"] in ("0", "false", "")
        }
    out = tmp_path / "x.ooni.jsonl"
    _cli(["export", "--db", str(path), "--format", "ooni", "-o", str(out)], capsys)
    ooni = [
        json.loads(line)["annotations"] for line in out.read_text(encoding="utf-8").splitlines()
    ]
    exports["ooni"] = {
        a["probe_measurement_id"]: a["probe_verdict"]
        for a in ooni
        if a["probe_measurement_id"] in words
    }
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "parquet"
    _cli(["export", "--db", str(path), "--format", "parquet", "-o", str(out)], capsys)
    table = pq.read_table(out).to_pylist()
    exports["parquet"] = {r["id"]: r["verdict"] for r in table if not r["is_control"]}
    for fmt, got in exports.items():
        assert got == words, fmt

    # The HTML report: one article per kind of anomaly, "target: verdict", and no other.
    out = tmp_path / "report.html"
    _cli(["report", "--db", str(path), "-o", str(out)], capsys)
    page = out.read_text(encoding="utf-8")
    articles = re.findall(r"<article[^>]*>\s*<h3>([^<:]+): ([^<]+) <small>", page)
    import html as h

    assert {(t, h.unescape(w)) for t, w in articles} == {(t, WANT[t]) for t in anomalies}
    assert ("No anomaly in this period." in page) is (not anomalies)

    # Datasette's canned queries, as shipped, run by sqlite3 on the same file.
    queries = metadata()["databases"]["probe"]["queries"]
    con = sqlite3.connect(path)
    con.row_factory = sqlite3.Row
    got = {r["id"] for r in con.execute(queries["blocked_today"]["sql"])}
    assert got == blocked, "blocked today: only what the words call blocked"
    assert {target_of[i] for i in got} == {"blocked-tls", "blocked-dns", "blockpage"}
    got_t = {r["target"] for r in con.execute(queries["throttled_targets_by_network"]["sql"])}
    assert got_t == {t for t, w in WANT.items() if w == V.THROTTLED}
    # The views Datasette (and sqlite3) show: the verdicts' words, the daily counts.
    assert {r["id"]: r["verdict"] for r in con.execute("SELECT id, verdict FROM verdicts")} == words
    daily = list(con.execute("SELECT * FROM daily_blocking"))
    assert sum(r["blocked"] for r in daily) == len(blocked)
    assert sum(r["anomalies"] for r in daily) == sum(V.is_anomaly(w) for w in words.values())
    assert sum(r["cant_tell"] for r in daily) == list(words.values()).count(V.CANT_TELL)
    # And the one table compiled to SQL says, row for row, what the words say.
    sql = f"SELECT id, {V.verdict_sql()} AS verdict FROM measurements WHERE is_control = 0"
    assert {r["id"]: r["verdict"] for r in con.execute(sql)} == words
    con.close()


def test_the_shipped_datasette_queries_are_generated_from_the_one_table() -> None:
    """probe/data/datasette.json (used as it is by ``datasette -m``) holds the SQL that
    :mod:`probe.analyst.datasette` generates from :data:`probe.words.CASES`."""
    from importlib import resources

    from probe.analyst.datasette import QUERIES

    shipped = json.loads(
        (resources.files("probe") / "data" / "datasette.json").read_text(encoding="utf-8")
    )["databases"]["probe"]["queries"]
    assert {k: q["sql"] for k, q in shipped.items()} == {k: q["sql"] for k, q in QUERIES.items()}
