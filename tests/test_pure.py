"""The small pure modules, case by case: fingerprint matching and loading, page titles and text,
UTC timestamps, host:port errors, and the target-list loader's remaining errors."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from probe import addr, timeutil
from probe.classify import fingerprints
from probe.classify.fingerprints import Fingerprint, FingerprintSet
from probe.config.targets import import_citizenlab_csv, load_targets
from probe.errors import FingerprintError, TargetsError
from probe.model import HTTPTransaction
from probe.pages import decode_text, extract_title

HEADER = "name,scope,location_found,pattern_type,pattern,confidence_no_fp\n"


def fp(location: str, ptype: str, pattern: str, scope: str = "isp") -> Fingerprint:
    f = fingerprints._rows(Path("x.csv"), HEADER + f"n,{scope},{location},{ptype},{pattern},5\n")
    return (*f.dns, *f.http)[0]


@pytest.mark.parametrize(
    ("ptype", "pattern", "value", "match"),
    [
        ("full", "blocked", "blocked", True),
        ("full", "blocked", "blocked!", False),
        ("prefix", "http://blk.", "http://blk.vn/x", True),
        ("prefix", "http://blk.", "https://blk.vn/", False),
        ("contains", "bị chặn", "<h1>Trang web bị chặn</h1>", True),
        ("contains", "bị chặn", "<h1>Trang web</h1>", False),
        ("regexp", "blocked-[0-9]+", "page blocked-42 here", True),
        ("regexp", "^blocked", "not blocked", False),
    ],
)
def test_pattern_types(ptype: str, pattern: str, value: str, match: bool) -> None:
    assert fp("body", ptype, pattern).matches(value) is match


def test_matching_by_location_and_false_positives() -> None:
    body = fp("body", "contains", "Access restricted")
    server = fp("header.server", "full", "Blocker/1.0")
    ignored = fp("body", "contains", "restricted", scope="fp")
    dns = fp("dns", "full", "203.0.113.9")
    dns_fp = fp("dns", "full", "192.0.2.1", scope="fp")
    fps = FingerprintSet((dns_fp, dns), (ignored, server, body))
    page = HTTPTransaction("http://x/", body="<p>Access restricted</p>")
    assert fps.match_http(page) is body  # the "fp" row is skipped, not matched
    by_header = HTTPTransaction("http://x/", headers=(("SERVER", "Blocker/1.0"),))
    assert fps.match_http(by_header) is server  # header names are case-insensitive
    assert fps.match_http(HTTPTransaction("http://x/", body="fine")) is None
    assert fps.match_http(HTTPTransaction("http://x/")) is None  # no body, no header
    assert fps.match_dns(["198.51.100.1", "203.0.113.9"]) is dns
    assert fps.match_dns(["192.0.2.1"]) is None
    both = FingerprintSet((dns,), ()) + FingerprintSet((), (body,))
    assert (both.dns, both.http) == ((dns,), (body,))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name,scope\nx,isp\n", "x.csv:1: missing column 'location_found'"),
        (HEADER + "n,isp,body,glob,x,5\n", "x.csv:2: pattern_type: 'glob' is not one of"),
        (HEADER + "n,isp,body,full,,5\n", "x.csv:2: pattern: empty"),
        (HEADER + "n,isp,cookie,full,x,5\n", "x.csv:2: location_found: 'cookie'"),
        (HEADER + "n,isp,body,regexp,(,5\n", "x.csv:2: pattern: bad regexp"),
        (HEADER + "n,isp,body,full,x,high\n", "x.csv:2: confidence_no_fp: not a number"),
        (HEADER + 'a,isp,body,full,"two\nlines",5\nb,isp,body,glob,x,5\n', "x.csv:4:"),
    ],
)
def test_fingerprint_errors_name_file_line_field(text: str, message: str) -> None:
    with pytest.raises(FingerprintError) as err:
        fingerprints._rows(Path("x.csv"), text)
    assert str(err.value).startswith(message)


def test_fingerprint_files(tmp_path: Path) -> None:
    with pytest.raises(FingerprintError, match="cannot read"):
        fingerprints.load(tmp_path / "missing.csv")
    latin = tmp_path / "latin.csv"
    latin.write_bytes(HEADER.encode() + "n,isp,body,full,caf\xe9,5\n".encode("latin-1"))
    with pytest.raises(FingerprintError, match="cannot read"):
        fingerprints.load(latin)
    crlf = tmp_path / "crlf.csv"
    crlf.write_bytes((HEADER.replace("\n", "\r\n") + 'n,isp,body,contains,"a\r\nb",\r\n').encode())
    (only,) = fingerprints.load(crlf).http
    assert (only.pattern, only.confidence) == ("a\nb", 5)  # default confidence
    assert fingerprints.builtin().http  # the shipped set loads


def test_fingerprint_messages_in_full() -> None:
    for text, message in [
        (
            HEADER + "n,isp,body,glob,x,5\n",
            "x.csv:2: pattern_type: 'glob' is not one of contains, full, prefix, regexp",
        ),
        (
            HEADER + "n,isp,body,,x,5\n",
            "x.csv:2: pattern_type: '' is not one of contains, full, prefix, regexp",
        ),
        (HEADER + "n,isp,,full,x,5\n", "x.csv:2: location_found: '' (dns, body or header.NAME)"),
    ]:
        with pytest.raises(FingerprintError) as err:
            fingerprints._rows(Path("x.csv"), text)
        assert str(err.value) == message


def test_fingerprint_rows_as_written(tmp_path: Path) -> None:
    f = fingerprints._rows(Path("x.csv"), HEADER + ",,DNS,full,203.0.113.9,5\n")
    assert f.http == () and len(f.dns) == 1  # "DNS" is the dns location, any case
    (d,) = f.dns
    assert (d.name, d.scope, d.location, d.regex) == ("", "", "dns", None)
    # a lone carriage return inside a quoted pattern is part of it, read from a file too
    text = HEADER + 'n,isp,body,contains,"a\rb",5\n'
    assert fingerprints._rows(Path("x.csv"), text).http[0].pattern == "a\rb"
    p = tmp_path / "cr.csv"
    p.write_bytes(text.encode())
    assert fingerprints.load(p).http[0].pattern == "a\rb"


# -- pages --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "title"),
    [
        (b"<html><head><title>  Independent \n News  </title>", "Independent News"),
        (b"<TITLE lang=vi>Tin t\xe1\xbb\xa9c</TITLE>", "Tin tức"),
        (b"<title></title>", None),
        (b"<title>   </title>", None),
        (b"no title here", None),
        (b"<title>" + b"x" * 300 + b"</title>", None),  # longer than 256: not a title
        (b"<title>" + b"y" * 250 + b"</title>", "y" * 200),
    ],
)
def test_extract_title(body: bytes, title: str | None) -> None:
    assert extract_title(body) == title


@pytest.mark.parametrize(
    ("body", "content_type", "text"),
    [
        ("Tin tức".encode(), None, "Tin tức"),
        ("Tin tức".encode("utf-16"), "text/html; charset=UTF-16", "Tin tức"),
        ("caf\xe9".encode("latin-1"), "text/html; Charset=iso-8859-1", "café"),
        (b"abc", "text/html; charset=no-such-charset", "abc"),
        (b"\xff", "text/html", "\ufffd"),
    ],
)
def test_decode_text(body: bytes, content_type: str | None, text: str) -> None:
    assert decode_text(body, content_type) == text


# -- timestamps ---------------------------------------------------------------------------------
def test_iso_forms() -> None:
    t = datetime(2026, 11, 29, 2, 3, 4, 567_890)
    assert timeutil.iso(t) == "2026-11-29T02:03:04.567Z"  # naive is UTC
    hanoi = timezone(timedelta(hours=7))
    assert timeutil.iso(t.replace(tzinfo=hanoi)) == "2026-11-28T19:03:04.567Z"
    assert timeutil.parse_iso("2026-11-29") == datetime(2026, 11, 29, tzinfo=UTC)
    assert timeutil.parse_iso(" 2026-11-29T09:00+07:00 ") == datetime(2026, 11, 29, 2, tzinfo=UTC)
    assert timeutil.day_start(datetime(2026, 11, 29, 23, 59, tzinfo=UTC)) == (
        "2026-11-29T00:00:00.000Z"
    )
    assert timeutil.month_start(datetime(2026, 11, 29, 23, 59, tzinfo=hanoi)) == (
        "2026-11-01T00:00:00.000Z"
    )
    now = timeutil.utc_now()
    assert now.endswith("Z") and abs(timeutil.from_stored(now) - datetime.now(UTC)).seconds < 60
    with pytest.raises(ValueError):
        timeutil.parse_iso("yesterday")


# -- host:port ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[2001:db8::1", "unclosed '['"),
        ("[2001:db8::1]80", "expected ':PORT' after ']'"),
        ("[]:80", "no host"),
        (":80", "no host"),
        ("host:0", "is not a port number"),
        ("host:65536", "is not a port number"),
        ("host:८०", "is not a port number"),  # Devanagari digits are not a port
        ("host", "no port"),
    ],
)
def test_host_port_errors(text: str, message: str) -> None:
    with pytest.raises(addr.AddressError, match=re.escape(message)):
        addr.split_host_port(text)


def test_host_port_forms() -> None:
    assert addr.split_host_port("[2001:db8::1]:853") == ("2001:db8::1", 853)
    assert addr.split_host_port("2001:db8::1", 53) == ("2001:db8::1", 53)
    assert addr.split_host_port("dns.example:5353") == ("dns.example", 5353)
    assert addr.host_for_url("2001:db8::1") == "[2001:db8::1]"
    assert addr.host_for_url("[2001:db8::1]") == "[2001:db8::1]"
    with pytest.raises(addr.AddressError, match="is not an IP address"):
        addr.parse_endpoint("dns.example:53")


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


# -- import-time memory -------------------------------------------------------------------------
def test_without_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from probe.store._lazy import without_numpy

    monkeypatch.delitem(sys.modules, "numpy", raising=False)
    with without_numpy(), pytest.raises(ImportError):
        import numpy  # noqa: F401
    assert "numpy" not in sys.modules  # hidden only while inside
    sentinel = object()
    monkeypatch.setitem(sys.modules, "numpy", sentinel)
    with without_numpy():
        assert sys.modules["numpy"] is sentinel  # already loaded: left alone
    assert sys.modules["numpy"] is sentinel
