"""Target lists: targets.yaml validation with file:line:field errors, Citizen Lab CSV import."""

from __future__ import annotations

import contextlib
import re
import sqlite3
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.config.targets import MAX_FILE_BYTES, import_citizenlab_csv, load_targets, read_targets
from probe.daemon import schedule
from probe.errors import TargetsError, URLError
from probe.timeutil import iso
from probe.urls import check_url
from tests.paths import FIXTURES, REPO
from tests.runs import FAST, mixed_targets, run_args, run_cli
from tests.runs import one_line_messages as _one_line_messages
from tests.runs import run_fresh as _run
from tests.world import World

VN = FIXTURES / "test-lists" / "vn.csv"


def test_default_targets_file_is_valid(repo_root: Path) -> None:
    tl = load_targets(repo_root / "targets.yaml")
    names = {t.name for t in tl.targets}
    assert {"facebook", "facebook-static-cdn", "youtube"} <= names
    assert len(tl.targets) >= 15 and all(t.category for t in tl.targets)
    assert len(tl.controls) >= 3 and all(c.is_control for c in tl.controls)
    hosts = {t.url.split("/")[2] for t in tl.controls}
    assert len(hosts) >= 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "targets:\n  - name: a\n    url: ftp://x/\n",
            "t.yaml:2: targets[0].url: 'ftp://x/' must start",
        ),
        (
            "targets:\n  - name: a\n    url: https://x/\n    category: NOPE\n",
            "t.yaml:2: targets[0].category: unknown Citizen Lab category code 'NOPE'",
        ),
        (
            "targets:\n  - name: a\n    url: https://x/\n  - name: b\n    colour: red\n    url: https://y/\n",
            "t.yaml:4: targets[1].colour: unknown field (allowed: name, url",
        ),
        ("targets:\n  - name: a\n", "t.yaml:2: targets[0].url: missing"),
        ("targets:\n  - name: a\n    url: 3\n", "targets[0].url: Expected 'str', got 'int'"),
        (
            "targets:\n  - name: a\n    url: https://x/\ncontrols:\n  - name: a\n    url: https://y/\n",
            "t.yaml:5: controls[0].name: 'a' is used twice",
        ),
        ("targets:\n  - name: a\n  url: [\n", "t.yaml:3"),
        ("targets: []\n", "'targets:' is empty"),
        ("hello: 1\n", "unknown top-level key 'hello'"),
        ("targets:\n  - https://x/\n", "each entry must be a mapping"),
        ("targets:\n  - name: 'bad name!'\n    url: https://x/\n", "targets[0].name"),
    ],
)
def test_bad_targets(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "t.yaml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(TargetsError) as err:
        load_targets(p)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_import_vn_test_list(repo_root: Path, tmp_path: Path) -> None:
    entries, skipped = import_citizenlab_csv(VN, load_targets(repo_root / "targets.yaml"))
    urls = [e["url"] for e in entries]
    assert len(urls) == len(set(urls)) and skipped >= 10  # default targets come from this list
    assert "https://www.rfa.org/vietnamese/" not in urls
    names = [e["name"] for e in entries]
    assert len(names) == len(set(names))
    assert all(e.get("category") for e in entries)
    # the output is a valid targets file
    out = tmp_path / "imported.yaml"
    out.write_text(yaml.safe_dump({"targets": entries}, allow_unicode=True), encoding="utf-8")
    assert len(load_targets(out).targets) == len(entries)


def test_import_rejects_a_bad_row(tmp_path: Path) -> None:
    p = tmp_path / "l.csv"
    p.write_text("url,category_code\nhttps://a.example/,NEWS\nnot a url,NEWS\n")
    with pytest.raises(TargetsError, match=r"l.csv:3: url:"):
        import_citizenlab_csv(p)


# -- hostile lists (issue 10) ----------------------------------------------------------------
HOSTILE_URLS = [
    "https://\U0001f600.example/",  # emoji host
    "https://\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com/",  # fullwidth host
    "https://xn--zz.example/",  # invalid IDNA (A-label)
    "https://a\x00b.example/",
    "https://a.example/\x01",
    "https://a.example/\r\nX-Injected: 1",
    "http://0177.0.0.1/",  # octal IPv4
    "https://a.example/" + "a" * 100_000,
    "https://exa mple.com/",
]


def _yaml_str(url: str) -> str:
    """A YAML double-quoted scalar holding exactly ``url`` (escapes for every control)."""
    out = []
    for c in url:
        if c == '"' or c == "\\":
            out.append("\\" + c)
        elif ord(c) < 32 or 0xD800 <= ord(c) <= 0xDFFF:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


@pytest.mark.parametrize("url", HOSTILE_URLS, ids=lambda u: ascii(u)[:40])
def test_hostile_url_is_a_broken_entry_with_its_line(tmp_path: Path, url: str) -> None:
    p = tmp_path / "t.yaml"
    p.write_text(
        f"targets:\n  - name: good\n    url: https://good.example/\n"
        f"  - name: bad\n    url: {_yaml_str(url)}\n",
        encoding="utf-8",
    )
    tl = read_targets(p)
    assert [t.name for t in tl.targets] == ["good"]
    (problem,) = map(str, tl.problems)
    assert problem.startswith(f"{p}:4: targets[1].url: ") and "\n" not in problem
    with pytest.raises(TargetsError, match=r"t.yaml:4: targets\[1\]\.url"):
        load_targets(p)


def test_every_broken_entry_is_reported(tmp_path: Path) -> None:
    p = tmp_path / "t.yaml"
    p.write_text(
        "targets:\n"
        "  - {name: a, url: 'https://a.example/'}\n"
        "  - {name: b, url: 'http://0177.0.0.1/'}\n"
        "  - {name: c, url: 'https://c.example/', category: NOPE}\n"
        "  - {name: a, url: 'https://d.example/'}\n"
        "  - just a string\n"
        "controls:\n"
        "  - {name: ctl, url: 'https://ctl.example/'}\n",
        encoding="utf-8",
    )
    tl = read_targets(p)
    assert [t.name for t in tl.targets] == ["a"] and [c.name for c in tl.controls] == ["ctl"]
    assert [str(x).split(": ")[0] for x in tl.problems] == [f"{p}:{n}" for n in (3, 4, 5, 6)]
    assert tl.broken == 4


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("targets: " + "[" * 5000 + "]" * 5000 + "\n", "t.yaml:1: exceeded maximum nesting depth"),
        ("targets: [{name: a, url: 'https://a.example/'}]\n---\nb: 2\n", "one YAML document"),
        ('targets: ["https://a\\ud800.example/"]\n', "t.yaml:1: found invalid Unicode"),
        ("- 1\n- 2\n", "expected a mapping"),
        ("targets: 3\n", "'targets:' must be a list"),
        ("\xff\xfe\x00garbage", "t.yaml"),
    ],
)
def test_unusable_file_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "t.yaml"
    p.write_bytes(text.encode("latin-1"))
    with pytest.raises(TargetsError) as err:
        read_targets(p)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_deep_nesting_inside_an_entry_is_that_entry_only(tmp_path: Path) -> None:
    p = tmp_path / "t.yaml"
    deep = "[" * 500 + "]" * 500
    p.write_text(
        f"targets:\n  - {{name: a, url: 'https://a.example/', tags: {deep}}}\n"
        "  - {name: b, url: 'https://b.example/'}\n",
        encoding="utf-8",
    )
    tl = read_targets(p)
    assert [t.name for t in tl.targets] == ["b"]
    assert "nested deeper than" in str(tl.problems[0])


def test_aliases_are_refused(tmp_path: Path) -> None:
    p = tmp_path / "t.yaml"
    p.write_text(
        "targets:\n  - &x {name: a, url: 'https://a.example/'}\n  - *x\n", encoding="utf-8"
    )
    tl = read_targets(p)
    assert [t.name for t in tl.targets] == ["a"] and "aliases" in str(tl.problems[0])


def test_oversized_file_is_refused_before_reading(tmp_path: Path) -> None:
    p = tmp_path / "t.yaml"
    with p.open("wb") as fh:
        fh.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(TargetsError, match="larger than 16 MiB"):
        read_targets(p)


def test_a_fifo_is_capped_while_reading(tmp_path: Path) -> None:
    import os
    import threading

    p = tmp_path / "fifo.yaml"
    os.mkfifo(p)

    def feed() -> None:
        with p.open("wb") as fh, contextlib.suppress(BrokenPipeError):
            fh.write(b"targets:\n  - {name: a, url: 'https://a.example/'}\n# ")
            for _ in range(MAX_FILE_BYTES // 2**16 + 2):  # one endless comment
                fh.write(b"x" * 2**16)

    t = threading.Thread(target=feed)
    t.start()
    with pytest.raises(TargetsError, match="larger than 16 MiB"):
        read_targets(p)
    t.join(30)


# -- target lists -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- b\n", "expected a mapping with 'targets:' and 'controls:' lists"),
        ("targets:\n  - name: a\n    url: http:///x\n", "targets[0].url: 'http:///x' has no host"),
        ("targets:\n  - name: a\n    url: http://x:99999/\n", "Port out of range 0-65535"),
        ("targets:\n  - name: a\n    url: http://x/\n    is_control: true\n", "is_control"),
    ],
)
def test_more_bad_targets(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "t.yaml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(TargetsError, match=re.escape(message)):
        load_targets(p)


def test_unreadable_targets_and_lists(tmp_path: Path) -> None:
    with pytest.raises(TargetsError, match="no such file"):
        load_targets(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"targets:\n  - name: \xff\n")
    with pytest.raises(TargetsError, match=re.escape("bad.yaml: invalid leading UTF-8 octet")):
        load_targets(bad)
    with pytest.raises(TargetsError, match="cannot read"):
        import_citizenlab_csv(tmp_path / "none.csv")
    nourl = tmp_path / "l.csv"
    nourl.write_text("address,category_code\nhttps://a.example/,NEWS\n", encoding="utf-8")
    with pytest.raises(TargetsError, match=re.escape("l.csv:1: header must have a 'url' column")):
        import_citizenlab_csv(nourl)
    code = tmp_path / "c.csv"
    code.write_text("url,category_code\nhttps://a.example/,NOPE\n", encoding="utf-8")
    with pytest.raises(
        TargetsError, match=re.escape("c.csv:2: category_code: unknown code 'NOPE'")
    ):
        import_citizenlab_csv(code)


def test_citizenlab_names_are_unique_and_notes_kept(tmp_path: Path) -> None:
    p = tmp_path / "l.csv"
    p.write_text(
        "url,category_code,notes\n"
        "https://news.example/a,NEWS,first\n"
        "https://news.example/b,NEWS,\n"
        "https://news.example/a/,NEWS,a duplicate\n",
        encoding="utf-8",
    )
    entries, skipped = import_citizenlab_csv(p)
    assert skipped == 1
    assert [e["name"] for e in entries] == ["news.example-a", "news.example-b"]
    assert entries[0] == {
        "name": "news.example-a",
        "url": "https://news.example/a",
        "category": "NEWS",
        "notes": "first",
    }


@given(st.text(max_size=200))
def test_targets_loader_raises_only_its_error(scratch_yaml: Path, text: str) -> None:
    scratch_yaml.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_targets(scratch_yaml)
    except TargetsError as exc:
        assert "\n" not in str(exc)


@pytest.fixture(scope="module")
def scratch_yaml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("targets") / "t.yaml"


# -- generated targets files (property tests over outside input, issue 10) ----------------------
# ``probe run`` in-process against the loopback world; generated URLs that the validator accepts
# are never measured: they could name a real host; only the world's own URLs are.
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


# -- hostile files through the commands (issue 10) ----------------------------------------------
def test_targets_check_reports_every_broken_entry(
    tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    p = mixed_targets(tmp_path, world)
    code, out, err = run_cli(["targets", "check", str(p)], capsys)
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert len(lines) == 5 and all(x.startswith("probe: error: ") for x in lines)
    assert "mixed.yaml:6: targets[4].url: 'https://exa mple.com/'" in lines[3]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"url,category_code\nhttps://caf\xe9.example/,NEWS\n", "l.csv:2: not UTF-8"),
        (b"url,notes\nhttps://a.example/," + b"n" * 200_000 + b"\n", "l.csv:2: field larger"),
        (b"url\nhttps://a.example/\x00\n", "l.csv:2: url: "),
    ],
    ids=["latin-1", "huge-field", "nul"],
)
def test_targets_import_hostile_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: bytes, reason: str
) -> None:
    src = tmp_path / "l.csv"
    src.write_bytes(data)
    code, out, err = run_cli(["targets", "import", str(src)], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1 and reason in err, err


def test_targets_import_oversized_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "l.csv"
    with src.open("wb") as fh:
        fh.write(b"url\n")
        fh.truncate(17 * 2**20)
    code, _, err = run_cli(["targets", "import", str(src)], capsys)
    assert code == 2 and err.count("\n") == 1 and "l.csv: larger than 16 MiB" in err


# -- intervals, and the targets commands ----------------------------------------------------
def test_target_interval_is_validated_with_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "t.yaml"
    p.write_text("targets:\n  - name: a\n    url: https://x/\n    interval: soon\n")
    with pytest.raises(TargetsError, match=r"t.yaml:2: targets\[0\].interval: 'soon' is not"):
        load_targets(p)
    p.write_text("targets:\n  - name: a\n    url: https://x/\n    interval: 6h\n")
    assert load_targets(p).targets[0].interval_seconds == 6 * 3600


def test_targets_check_warns_without_controls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = tmp_path / "t.yaml"
    p.write_text("targets:\n  - name: a\n    url: https://x.example/\n")
    code, _, err = run_cli(["targets", "check", str(p)], capsys)
    assert code == 0 and "has no controls" in err


def test_targets_import_writes_a_complete_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "vn.yaml"
    csv_path = REPO / "tests" / "fixtures" / "test-lists" / "vn.csv"
    code, _, err = run_cli(["targets", "import", str(csv_path), "-o", str(out)], capsys)
    assert code == 0, err
    tl = load_targets(out)
    defaults = load_targets(REPO / "targets.yaml")
    assert tl.targets and [c.url for c in tl.controls] == [c.url for c in defaults.controls]
    code, _, err = run_cli(["targets", "check", str(out)], capsys)
    assert code == 0 and "no controls" not in err


def test_per_tag_intervals_apply_where_the_target_sets_none(tmp_path: Path) -> None:
    """``intervals:`` maps tags to mean gaps: a target with no interval of its own takes the
    shortest of its tags' (it is measured as often as its most watched tag asks), before or
    after the lists in the file."""
    p = tmp_path / "t.yaml"
    body = (
        "targets:\n"
        "  - {name: fb, url: 'https://a.example/', tags: [social, facebook]}\n"
        "  - {name: news, url: 'https://b.example/', tags: [news]}\n"
        "  - {name: own, url: 'https://c.example/', tags: [facebook], interval: 2h}\n"
        "  - {name: plain, url: 'https://d.example/'}\n"
        "controls:\n"
        "  - {name: ctl, url: 'https://e.example/', tags: [news]}\n"
    )
    for text in (
        body + "intervals: {social: 6h, facebook: 15m, news: 90m}\n",
        "intervals:\n  social: 6h\n  facebook: 15m\n  news: 90m\n" + body,
    ):
        p.write_text(text)
        tl = load_targets(p)
        got = {t.name: t.interval_seconds for t in (*tl.targets, *tl.controls)}
        assert got == {"fb": 900, "news": 5400, "own": 7200, "plain": None, "ctl": 5400}
    now = datetime(2026, 11, 29, 12, tzinfo=UTC)
    ago = {t.name: iso(now - timedelta(minutes=20)) for t in tl.targets}
    assert [t.name for t in schedule.due(list(tl.targets), ago, now, 2700)] == ["fb"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("intervals: [6h]\n", r"t.yaml:\d+: 'intervals:' must map tags to durations"),
        ("intervals:\n  news: soon\n", r"t.yaml:\d+: intervals.news: 'soon' is not"),
        ("intervals:\n  news: {a: 1}\n", r"t.yaml:\d+: intervals.news: "),
    ],
)
def test_a_bad_tag_interval_names_file_line_and_tag(
    tmp_path: Path, text: str, message: str
) -> None:
    p = tmp_path / "t.yaml"
    p.write_text("targets:\n  - {name: a, url: 'https://x.example/', tags: [news]}\n" + text)
    with pytest.raises(TargetsError, match=message):
        load_targets(p)


def test_a_target_may_state_its_class_and_a_bad_one_names_the_field(tmp_path: Path) -> None:
    """``class:`` (issue 25): where the site is served from, when its edges cannot say (a
    domestic site hosted by the volunteer's own ISP reads as on-net)."""
    p = tmp_path / "t.yaml"
    p.write_text("targets:\n  - name: a\n    url: https://x/\n    class: domestic\n")
    assert load_targets(p).targets[0].target_class == "domestic"
    p.write_text("targets:\n  - name: a\n    url: https://x/\n    class: abroad\n")
    with pytest.raises(TargetsError) as e:
        load_targets(p)
    assert str(e.value) == (
        f"{p}:2: targets[0].class: unknown class 'abroad' "
        "(domestic, foreign_on_net, foreign_origin)"
    )
