"""Fingerprints (probe.classify.fingerprints): pattern types, matching by location, false positives,
OONI-format CSV files and their one-line errors, case by case and (Hypothesis) whatever they hold.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from probe.classify import fingerprints
from probe.classify.fingerprints import Fingerprint, FingerprintSet
from probe.errors import FingerprintError
from probe.model import HTTPTransaction

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


# -- fingerprint CSVs --------------------------------------------------------------------------
rows = st.fixed_dictionaries(
    {
        "name": st.from_regex(r"[a-z][a-z0-9_.]{0,20}", fullmatch=True),
        "scope": st.sampled_from(["nat", "isp", "prod", "fp"]),
        "location_found": st.sampled_from(["dns", "body", "header.server", "header.location"]),
        "pattern_type": st.sampled_from(["full", "prefix", "contains"]),
        "pattern": st.text(
            st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\x00"),
            min_size=1,
            max_size=30,
        ),
        "confidence_no_fp": st.integers(0, 10).map(str),
    }
)


def _csv(items: list[dict[str, str]]) -> str:
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=list(rows_fields()), lineterminator="\r\n")
    w.writeheader()
    w.writerows(items)
    return out.getvalue()


def rows_fields() -> tuple[str, ...]:
    return ("name", "scope", "location_found", "pattern_type", "pattern", "confidence_no_fp")


def test_fingerprint_patterns_with_line_separators(tmp_path: Path) -> None:
    """Python's str.splitlines also splits at form feed, \\x1c-\\x1e, NEL, U+2028/2029: a
    pattern holding one must stay whole (Hypothesis found the form feed)."""
    items = [
        {
            "name": f"p{i}",
            "scope": "isp",
            "location_found": "body",
            "pattern_type": "contains",
            "pattern": f"a{sep}b",
            "confidence_no_fp": "5",
        }
        for i, sep in enumerate(["\x0c", "\x0b", "\x1c", "\x85", "\u2028", "\u2029"])
    ]
    path = tmp_path / "fp.csv"
    path.write_text(_csv(items), encoding="utf-8", newline="")
    fps = fingerprints.load(path)
    assert [f.pattern for f in fps.http] == [r["pattern"] for r in items]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One file every example overwrites (a new directory per example is slow)."""
    return tmp_path_factory.mktemp("fp") / "fp.csv"


@given(st.lists(rows, max_size=8))
def test_fingerprint_csv_round_trips(scratch: Path, items: Any) -> None:
    path = scratch
    path.write_text(_csv(items), encoding="utf-8", newline="")
    fps = fingerprints.load(path)
    loaded = [*fps.dns, *fps.http]
    assert len(loaded) == len(items)
    want = {(r["name"], r["location_found"], r["pattern"]) for r in items}
    assert {(f.name, f.location, f.pattern.replace("\r\n", "\n")) for f in loaded} == {
        (n, loc, p.replace("\r\n", "\n")) for n, loc, p in want
    }
    assert sorted(f.confidence for f in loaded) == sorted(int(r["confidence_no_fp"]) for r in items)
    # A body fingerprint of pattern type "contains" matches a page that contains it.
    for f in fps.http:
        if f.location == "body" and f.pattern_type == "contains" and f.scope != "fp":
            page = HTTPTransaction("http://x/", body=f"<p>{f.pattern}</p>")
            assert fps.match_http(page) is not None


@given(st.text(max_size=300))
def test_fingerprint_loader_raises_only_its_error(scratch: Path, text: str) -> None:
    path = scratch
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        fingerprints.load(path)
    except fingerprints.FingerprintError as exc:
        assert str(exc).startswith(str(path)) and "\n" not in str(exc).split(": ", 1)[0]
