"""Property tests over outside input (issue 10, "Done when"): generated targets files, flag
values and OONI lines. Whatever they hold, the probe exits 0 or 2 (never 1), prints no
traceback, every stderr line is one message, and every valid target in a file that also holds
broken ones is measured and stored.

``probe run`` runs in-process against the loopback world of ``tests/world.py``, with
PROBE_STRICT=1 (set for the session), so a bug in the probe's own code fails here instead of
being recorded as a target's failure. Generated URLs that the validator accepts are never
measured: they could name a real host; only the world's own URLs are.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe.cli import main
from probe.config.options import OPTIONS
from probe.errors import URLError
from probe.urls import check_url
from tests.runs import run_args
from tests.world import World

QA = Path(__file__).parent / "fixtures" / "ooni-qa"
FAST = settings(
    max_examples=25,
    deadline=None,  # a loaded 2-core CI machine: time is bench/'s business, not a test's
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_messages(code: int, err: str) -> None:
    assert code in (0, 2), err
    assert "Traceback" not in err
    for line in err.splitlines():
        assert line.startswith("probe: ") or " measurements stored in " in line, line


def _rejected(url: str) -> bool:
    try:
        check_url(url)
    except URLError:
        return True
    return False


hostile_urls = st.one_of(
    st.text(max_size=40),
    st.builds(
        lambda scheme, host, rest: f"{scheme}://{host}{rest}",
        st.sampled_from(["http", "https", "ftp", "HTTP", ""]),
        st.one_of(
            st.text(max_size=20),
            st.sampled_from(["0177.0.0.1", "127.1", "0x7f.1", "[::1", "exa mple.com", "a..b"]),
            st.just("\U0001f600.example"),
            st.just("xn--zz.example"),
        ),
        st.text(max_size=20),
    ),
).filter(_rejected)

broken_entries = st.one_of(
    st.builds(lambda u: {"url": u}, hostile_urls),  # name added below
    st.builds(lambda c: {"url": "https://a.example/", "category": c}, st.text(max_size=6)),
    st.builds(lambda v: {"url": v}, st.one_of(st.integers(), st.lists(st.integers()))),
    st.just({"colour": "red", "url": "https://a.example/"}),
    st.just({}),
    st.just({"url": "https://a.example/", "is_control": True}),
    st.builds(lambda n: {"url": "https://a.example/", "name": n}, st.text(max_size=70)).filter(
        lambda e: not str(e["name"]).isidentifier()
    ),
    st.builds(lambda u: {"url": "https://a.example/", "throughput_url": u}, hostile_urls),
)


@st.composite
def target_lists(draw: st.DrawFn, w: World) -> tuple[dict[str, Any], set[str]]:
    """A targets document mixing valid and broken entries, and the names that are valid."""
    kinds = draw(st.lists(st.booleans(), min_size=1, max_size=6))
    entries: list[Any] = []
    valid: set[str] = set()
    for i, ok in enumerate(kinds):
        if ok:
            host = draw(st.sampled_from(["news.test", "blocked.test", "down.test"]))
            entries.append({"name": f"v{i}", "url": w.http(host, f"/?{i}")})
            valid.add(f"v{i}")
        elif draw(st.integers(0, 9)) == 0:
            entries.append(draw(st.one_of(st.text(max_size=10), st.integers(), st.none())))
        else:
            entries.append({"name": f"b{i}", **draw(broken_entries)})
    if valid and draw(st.booleans()):
        entries.append({"name": sorted(valid)[0], "url": w.http("news.test")})  # a duplicate
    return {"targets": entries}, valid


@settings(FAST, max_examples=15)
@given(data=st.data())
def test_property_targets_files(
    data: st.DataObject, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    doc, valid = data.draw(target_lists(world))
    with tempfile.TemporaryDirectory() as tmp:
        p, db = Path(tmp) / "t.yaml", Path(tmp) / "r.db"
        p.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
        code, _, err = _run(run_args(world, p, db), capsys)
        _one_line_messages(code, err)
        broken = len(doc["targets"]) - len(valid)
        assert code == (2 if broken else 0), err
        stored: set[str] = set()
        if db.exists():
            con = sqlite3.connect(db)
            stored = {r[0] for r in con.execute("SELECT target FROM measurements")}
            con.close()
        assert stored == valid
        code, _, err = _run(["targets", "check", str(p)], capsys)
        _one_line_messages(code, err)
        errors = [x for x in err.splitlines() if x.startswith("probe: error:")]
        assert code == (2 if broken else 0) and len(errors) == (broken + 1 if broken else 0)
        if not broken:
            assert "has no controls" in err  # these lists have none: check says so


@FAST
@given(text=st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_property_garbage_targets_files(
    text: str | bytes, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        p, db = Path(tmp) / "t.yaml", Path(tmp) / "r.db"
        p.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
        code, _, err = _run(["targets", "check", str(p)], capsys)
        _one_line_messages(code, err)
        code, _, err = _run(run_args(world, p, db), capsys)
        _one_line_messages(code, err)
        assert code == 2  # no valid target (only the world's URLs are ever valid here)


FLAGS = [o.flag for o in OPTIONS if o.flag and not o.is_flag]
# Flags a run may take with any value: none of them sends traffic anywhere new.
RUN_FLAGS = ["--timeout", "--deadline", "--concurrency", "--max-bytes-per-day", "--only"]
values = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["nan", "inf", "-1", "0", "1e999", "²", "٣", "0x10", "1_000", "", " 5 "]),
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
)


@FAST
@given(flag=st.sampled_from(FLAGS), value=values)
def test_property_flag_values(
    flag: str, value: str, capsys: pytest.CaptureFixture[str], repo_root: Path
) -> None:
    code, _, err = _run(["config", "--json", flag, value], capsys)
    _one_line_messages(code, err)


@settings(FAST, max_examples=15)
@given(flag=st.sampled_from(RUN_FLAGS), value=values)
def test_property_run_flag_values(
    flag: str, value: str, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        p, db = Path(tmp) / "t.yaml", Path(tmp) / "r.db"
        p.write_text(f"targets:\n  - {{name: a, url: '{world.http('news.test')}'}}\n")
        code, _, err = _run([*run_args(world, p, db), flag, value], capsys)
        _one_line_messages(code, err)


@settings(FAST, max_examples=15)
@given(pem=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
def test_property_ca_bundle_contents(
    pem: bytes, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        p, db, ca = Path(tmp) / "t.yaml", Path(tmp) / "r.db", Path(tmp) / "ca.pem"
        p.write_text(f"targets:\n  - {{name: a, url: '{world.http('news.test')}'}}\n")
        ca.write_bytes(b"-----BEGIN CERTIFICATE-----\n" + pem + b"\n-----END CERTIFICATE-----\n")
        code, _, err = _run([*run_args(world, p, db), "--ca-bundle", str(ca)], capsys)
        _one_line_messages(code, err)
        assert code == 2 and not db.exists()


def _qa(name: str) -> str:
    return json.dumps(json.loads((QA / name / "measurement.json").read_text(encoding="utf-8")))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def _mutated(doc: dict[str, Any], key: str, value: Any) -> str:
    return json.dumps({**doc, key: value})


ooni_lines = st.one_of(
    st.sampled_from(["dnsBlockingNXDOMAIN", "dnsBlockingBOGON", "tcpBlockingConnectTimeout"]).map(
        _qa
    ),
    json_values.map(json.dumps),
    st.text(max_size=50),
    st.builds(
        _mutated,
        st.sampled_from([json.loads(_qa("dnsBlockingNXDOMAIN"))]),
        st.sampled_from(["test_keys", "input", "measurement_start_time", "test_name"]),
        json_values,
    ),
    st.integers(1, 3000).map(lambda n: "[" * n + "]" * n),
)


@FAST
@given(lines=st.lists(ooni_lines, min_size=0, max_size=6), gz=st.booleans())
def test_property_ooni_lines(
    lines: list[str], gz: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    import gzip

    with tempfile.TemporaryDirectory() as tmp:
        src, db = Path(tmp) / "m.jsonl", Path(tmp) / "o.db"
        data = "\n".join(lines).encode("utf-8", "surrogatepass")
        src.write_bytes(gzip.compress(data) if gz else data)
        code, out, err = _run(["import", "--format", "ooni", str(src), "--db", str(db)], capsys)
        _one_line_messages(code, err)
        if code == 0:
            imported, _, dup, *_ = out.replace(",", "").split()
            assert int(imported) + int(dup) > 0
