"""Property-based tests (Hypothesis) for the parsers of outside input that need no network:
host:port text, settings values, timestamps a person types, and OONI-format fingerprint CSVs.

Each parser either returns a value that round-trips or raises its one documented error; any
other exception is a defect.
"""

from __future__ import annotations

import contextlib
import csv
import io
import ipaddress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from probe import addr, timeutil
from probe.classify import fingerprints
from probe.config import parse, resolver
from probe.model import HTTPTransaction

ips = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).map(str)
ports = st.integers(1, 65535)
junk = st.text(max_size=40)
values = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), junk, st.lists(junk))


# -- host:port ---------------------------------------------------------------------------------
@given(ips, ports)
def test_endpoint_round_trips(ip: str, port: int) -> None:
    text = addr.endpoint(ip, port)
    assert addr.parse_endpoint(text) == (ip, port)
    assert addr.split_host_port(text) == (ip, port)
    assert (text.startswith("[") and text.endswith(f"]:{port}")) is (":" in ip)


@given(ips)
def test_bare_address_takes_the_default_port(ip: str) -> None:
    assert addr.split_ip_port(ip, 53) == (ip, 53)
    assert addr.split_ip_port(addr.host_for_url(ip), 853) == (ip, 853)


@given(junk, st.one_of(st.none(), ports))
def test_split_host_port_raises_only_address_error(text: str, default: int | None) -> None:
    try:
        host, port = addr.split_host_port(text, default)
    except addr.AddressError as exc:
        assert "\n" not in str(exc)  # one line, whatever the input
        return
    assert host and 1 <= port <= 65535


@given(junk)
def test_port_number(text: str) -> None:
    try:
        port = addr.port_number(text)
    except addr.AddressError:
        return
    assert 1 <= port <= 65535 and port == int(text)


@given(junk)
def test_ip_address_is_canonical_or_refused(text: str) -> None:
    try:
        got = addr.ip_address(text)
    except addr.AddressError:
        return
    assert got == str(ipaddress.ip_address(text))


# -- settings values ---------------------------------------------------------------------------
PARSERS = {
    "int": parse.parse_int(0, 1000),
    "float": parse.parse_float(0.0, 100.0),
    "size": parse.parse_size,
    "duration": parse.parse_duration,
    "bool": parse.parse_bool,
    "path": parse.parse_path,
    "url": parse.parse_url,
    "ip": parse.parse_ip,
    "resolver": resolver.parse_resolver_option,
    "text": parse.parse_text,
}


@pytest.mark.parametrize("name", sorted(PARSERS))
@given(value=values)
def test_value_parsers_raise_only_value_error(name: str, value: Any) -> None:
    with contextlib.suppress(ValueError):
        PARSERS[name](value)


UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}


@given(st.integers(0, 10**6), st.sampled_from(sorted(UNITS)), st.booleans(), st.booleans())
def test_size_units(n: int, unit: str, lower: bool, space: bool) -> None:
    text = f"{n}{' ' if space and unit else ''}{unit.lower() if lower else unit}"
    assert parse.parse_size(text) == n * UNITS[unit]


SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


@given(st.integers(1, 300), st.sampled_from(sorted(SECONDS)))
def test_duration_units(n: int, unit: str) -> None:
    assert parse.parse_duration(f"{n}{unit}") == pytest.approx(n * SECONDS[unit])


@given(st.integers(-(10**6), 10**6))
def test_int_range(n: int) -> None:
    parse_in = parse.parse_int(-5, 5)
    if -5 <= n <= 5:
        assert parse_in(str(n)) == n == parse_in(n)
    else:
        with pytest.raises(ValueError, match="from -5 to 5"):
            parse_in(str(n))


# -- timestamps --------------------------------------------------------------------------------
moments = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)


@given(moments, st.integers(-14 * 60, 14 * 60))
def test_stored_form_round_trips_from_any_zone(t: datetime, offset_min: int) -> None:
    from datetime import timezone

    local = t.astimezone(timezone(timedelta(minutes=offset_min)))
    stored = timeutil.iso(local)
    assert stored.endswith("Z") and len(stored) == 24
    back = timeutil.from_stored(stored)
    assert back == t.replace(microsecond=t.microsecond // 1000 * 1000)


@given(moments, moments)
def test_stored_form_sorts_as_time(a: datetime, b: datetime) -> None:
    assume(a.replace(microsecond=0) != b.replace(microsecond=0))
    assert (timeutil.iso(a) < timeutil.iso(b)) is (a < b)


@given(junk)
def test_parse_iso_raises_only_value_error(text: str) -> None:
    try:
        t = timeutil.parse_iso(text)
    except ValueError:
        return
    assert t.tzinfo is not None and t.utcoffset() == timedelta(0)


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


def test_path_of_an_unknown_user_is_a_value_error() -> None:
    """Hypothesis found it: Path.expanduser raises RuntimeError for ~nosuchuser."""
    with pytest.raises(ValueError, match="nosuchuser"):
        parse.parse_path("~nosuchuser-probe/db.sqlite")
