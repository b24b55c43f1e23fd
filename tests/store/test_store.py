"""Storage: migrations, WAL, one transaction per measurement, reclassification, bad databases."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from probe.classify import RULES_VERSION, classify
from probe.classify.fingerprints import FingerprintSet, builtin
from probe.errors import StoreError
from probe.model import (
    HTTPTransaction,
    Measurement,
    Observations,
    ThroughputAnalysis,
    ThroughputRecord,
    observations_from_json,
)
from probe.store import Store
from probe.store.reclassify import reclassify
from tests.paths import GOLDEN

GOLDEN = GOLDEN


def _measurement(name: str, mid: str = "m1") -> Measurement:
    doc = json.loads((GOLDEN / f"{name}.json").read_text(encoding="utf-8"))
    obs = observations_from_json(doc["observations"])
    return Measurement(
        id=mid,
        target=name,
        url=doc["url"],
        started_at="2026-11-29T00:00:00.000Z",
        observations=obs,
        verdict=classify(obs, network_ok=doc["network_ok"]),
        network_ok=doc["network_ok"],
        bytes_used=1234,
        category="NEWS",
    )


def test_schema_wal_device_id(tmp_path: Path) -> None:
    s = Store.open(tmp_path / "sub" / "p.db")
    assert s.db.journal_mode == "wal"
    assert {"measurements", "bodies", "rounds", "meta", "_sqlite_migrations"} <= set(
        s.db.table_names()
    )
    # the steps are views over the one record of observations, so they cannot disagree with it
    assert {"verdicts", "dns_queries", "tcp_connects", "tls_handshakes", "http_requests"} <= set(
        s.db.view_names()
    )
    dev = s.device_id
    s.close()
    assert Store.open(tmp_path / "sub" / "p.db").device_id == dev  # stable, migrations idempotent


def test_save_whole_measurement(tmp_path: Path) -> None:
    s = Store.open(tmp_path / "p.db")
    m = _measurement("dns_blockpage_address")
    s.save(m)
    row = next(s.rows())
    assert (row["blocking"], row["accessible"], row["rule_id"]) == ("dns", 0, "blockpage.http")
    assert row["rules_version"] == RULES_VERSION and row["bytes_used"] == 1234
    assert len(s.children("dns_queries", "m1")) == len(m.observations.dns)
    assert len(s.children("http_requests", "m1")) == len(m.observations.http)
    # body stored once, compressed, and restored for reclassification
    obs = s.observations(row)
    assert any(h.body and "bị chặn" in h.body for h in obs.http)


def test_a_failed_save_stores_nothing(tmp_path: Path) -> None:
    s = Store.open(tmp_path / "p.db")
    m = _measurement("success_http")
    s.save(m)
    bad = replace(_measurement("success_http", "m2"), target=None)  # type: ignore[arg-type]
    with pytest.raises(sqlite3.IntegrityError):
        s.save(bad)
    assert [r["id"] for r in s.rows()] == ["m1"]
    assert s.children("dns_queries", "m2") == []  # no orphan step rows either


def test_bodies_are_deduplicated(tmp_path: Path) -> None:
    """The store writes what it is given (the round scrubs the volunteer's addresses once,
    before classifying: tests/round/test_trust.py); a body is stored once per hash, compressed."""
    s = Store.open(tmp_path / "p.db")
    obs = Observations(
        "http://x.test/",
        http=(
            HTTPTransaction(
                url="http://x.test/",
                status_code=200,
                body="blocked by the filter at 10.10.34.34",
                body_sha256="ab" * 32,
                body_length=36,
                headers=(("Location", "http://10.0.0.1/block"),),
            ),
        ),
    )
    for i in range(3):
        s.save(
            Measurement(
                id=f"m{i}",
                target="x",
                url="http://x.test/",
                started_at="t",
                observations=obs,
                verdict=classify(obs),
            )
        )
    assert s.db["bodies"].count == 1
    assert s.body("ab" * 32) == "blocked by the filter at 10.10.34.34"  # evidence kept
    assert s.observations(next(s.rows())) == obs


def test_reclassify_uses_new_fingerprints(tmp_path: Path) -> None:
    s = Store.open(tmp_path / "p.db")
    m = _measurement("blockpage_injection_consistent_dns")
    # as if measured before the fingerprint existed
    s.save(
        replace(m, verdict=classify(m.observations, fingerprints=FingerprintSet(), network_ok=True))
    )
    assert next(s.rows())["blocking"] == "false"
    total, changed = reclassify(s, builtin())
    assert (total, changed) == (1, 1)
    row = next(s.rows())
    assert (row["blocking"], row["blockpage"]) == ("http-diff", "probe.vn_http_blocked_vi")


def test_not_a_database(tmp_path: Path) -> None:
    p = tmp_path / "junk.db"
    p.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=r"junk\.db: not a usable SQLite database"):
        Store.open(p)
    assert p.read_bytes() == b"this is not sqlite" * 100  # nothing written


def test_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "other.db"
    with sqlite3.connect(p) as c:
        c.execute("CREATE TABLE songs (id)")
    with pytest.raises(StoreError, match="not a probe database"):
        Store.open(p)


def test_missing_database_for_export(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no such database"):
        Store.open(tmp_path / "none.db", create=False)


def test_migration_from_the_first_schema(tmp_path: Path) -> None:
    """A database made by 0.1's first schema gains the throughput column, data intact."""
    from probe.store import migrations

    p = tmp_path / "old.db"
    from sqlite_utils import Database

    db = Database(str(p))
    migrations.apply(db, stop_before="m002_throughput")
    db.table("measurements").insert(
        {
            "id": "old",
            "target": "t",
            "url": "u",
            "started_at": "2026-01-01T00:00:00.000Z",
            "observations": "{}",
        }
    )
    db.close()
    s = Store.open(p)
    assert "throughput" in s.db.table("measurements").columns_dict
    assert [r["id"] for r in s.rows()] == ["old"]
    assert "throttle_label" in s.db.execute("SELECT * FROM verdicts").description[-2]


def test_events_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from probe.cli import main

    s = Store.open(tmp_path / "e.db")
    base = _measurement("success_http")
    ratios = [1.0, 0.9, 1.1, 1.0, 0.95, 1.05, 0.1, 0.1, 0.12]
    for i, r in enumerate(ratios):
        s.save(
            replace(
                base,
                id=f"m{i}",
                started_at=f"2026-11-{i + 1:02d}T00:00:00.000Z",
                target="facebook",
                resolver="udp://192.0.2.53:53",
                throughput=ThroughputRecord(
                    analysis=ThroughputAnalysis(ratio=r, label="sni_targeted")
                ),
            )
        )
    code = main(["events", "--db", str(tmp_path / "e.db"), "--format", "jsonl", "--open"])
    out = capsys.readouterr().out
    assert code == 0
    (ev,) = [json.loads(line) for line in out.splitlines()]
    assert ev["target"] == "facebook" and ev["closed_at"] is None and ev["tests"] == 3
    assert ev["network"] == "udp://192.0.2.53:53" and ev["label"] == "sni_targeted"


def test_migration_to_one_record_of_observations(tmp_path: Path) -> None:
    """m003: the step tables become views over the observations JSON, and header values that
    older versions kept raw in that JSON are scrubbed of addresses (Location kept)."""
    from sqlite_utils import Database

    from probe.store import migrations

    p = tmp_path / "old.db"
    db = Database(str(p))
    migrations.apply(db, stop_before="m003_one_record_of_observations")
    obs = {
        "url": "http://x.test/",
        "http": [
            {
                "url": "http://x.test/",
                "headers": [["X-Your-IP", "203.0.113.5"], ["Location", "http://10.0.0.1/b"]],
            }
        ],
    }
    db.table("measurements").insert(
        {"id": "old", "target": "t", "url": "u", "started_at": "s", "observations": json.dumps(obs)}
    )
    db.table("http_requests").insert({"measurement_id": "old", "seq": 0, "url": "http://x.test/"})
    db.close()
    s = Store.open(p)
    assert "http_requests" in s.db.view_names() and "http_requests" not in s.db.table_names()
    (row,) = s.children("http_requests", "old")
    assert row["url"] == "http://x.test/" and row["seq"] == 0
    assert json.loads(row["headers"]) == [
        ["X-Your-IP", "[scrubbed]"],
        ["Location", "http://10.0.0.1/b"],
    ]
    assert "203.0.113.5" not in next(s.rows())["observations"]


def test_the_readme_names_every_table_the_privacy_section_speaks_for(
    tmp_path: Path, repo_root: Path
) -> None:
    """The README's Storage section (which its privacy paragraph speaks for) names every table
    and view a probe database has: a new table fails here until the README says what it
    holds."""
    readme = (repo_root / "README.md").read_text(encoding="utf-8")
    start = readme.index("## Storage")
    section = readme[start : readme.index("\n## ", start + 1)]
    assert "### Privacy: what is stored, and what never is" in section
    s = Store.open(tmp_path / "p.db")
    names = (set(s.db.table_names()) | set(s.db.view_names())) - {"_sqlite_migrations"}
    missing = sorted(n for n in names if f"`{n}`" not in section)
    assert missing == [], f"README's Storage section does not say what these hold: {missing}"


def test_reclassify_reanalyses_throughput_tests(tmp_path: Path) -> None:
    """A test stored with an analysis of older rules (here: none that says throttled) gets the
    current analysis, and the verdict's ``throttled`` follows it; a second pass changes nothing."""
    from probe.classify.throughput import analyse
    from probe.model import ThroughputAnalysis, ThroughputRecord
    from tests.flows import const, trials

    flows = tuple(trials(const(0.3e6), const(8e6)))
    assert analyse(list(flows), tests_in_round=1).throttled is True
    stale = ThroughputAnalysis(throttled=False, label="congestion")
    m = _measurement("success_http")
    s = Store.open(tmp_path / "p.db")
    s.save(
        replace(
            m,
            throughput=ThroughputRecord(url="https://target.test/tp", flows=flows, analysis=stale),
        )
    )
    assert s.verdict(next(s.rows())).throttled is None
    assert reclassify(s, builtin()) == (1, 1)
    row = next(s.rows())
    tp = s.throughput(row)
    assert tp is not None and tp.analysis is not None
    assert (tp.analysis.throttled, s.verdict(row).throttled) == (True, True)
    assert reclassify(s, builtin()) == (1, 0)
