"""The scrubber's fast path (one look at a record's JSON) against its full path (every string
read): for any record and any volunteer address they give the same record, so the shortcut
taken for speed never keeps an address the full path would have removed."""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import replace

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe.model import DNSAnswer, DNSQuery, HTTPTransaction, Observations, TCPConnect
from probe.privacy import SCRUBBED, Scrubber, _forms, evidence, mask_unknown, may_be_public

VOLUNTEER = st.one_of(
    st.ip_addresses(v=4).filter(lambda ip: ip.is_global),
    st.ip_addresses(v=6).filter(lambda ip: ip.is_global),
)


@st.composite
def texts(draw: st.DrawFn, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """Text that may hold the volunteer's address in any form (any case, glued to digits or
    letters), other addresses, JSON's escaped characters and non-ASCII."""
    pieces = st.one_of(
        st.text(max_size=8),
        st.sampled_from(["\n", '"', "\\", "\x00", "é", "K", "İ", "0x", "1", "a", ":", "."]),
        st.sampled_from(_forms(ip)).map(lambda f: f.upper() if draw(st.booleans()) else f),
        st.ip_addresses().map(str),
    )
    return "".join(draw(st.lists(pieces, max_size=6)))


@st.composite
def records(
    draw: st.DrawFn,
) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, Observations]:
    ip = draw(VOLUNTEER)
    t = texts(ip)
    http = HTTPTransaction(
        url=draw(t),
        headers=tuple(draw(st.lists(st.tuples(t, t), max_size=3))),
        title=draw(st.none() | t),
        body=draw(st.none() | t),
        location=draw(st.none() | t),
        raw_failure=draw(st.none() | t),
    )
    dns = DNSQuery(
        hostname=draw(t),
        query_type="A",
        resolver="system",
        resolver_address=draw(t),
        engine="udp",
        answers=(DNSAnswer("A", draw(t)),),
    )
    return ip, Observations(draw(t), dns=(dns,), http=(http,))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records())
def test_the_fast_path_and_the_full_path_agree(
    case: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, Observations],
) -> None:
    ip, obs = case
    scrubber = Scrubber([str(ip)])
    fast = scrubber.observations(obs)
    assert fast == scrubber._observations(obs)
    if scrubber.holds_none(obs):
        assert fast is obs
    full_struct = msgspec.convert(scrubber.tree(msgspec.to_builtins(obs)), type=Observations)
    assert Scrubber([str(ip)]).struct(obs) == full_struct


def test_a_record_holding_the_address_takes_the_full_path() -> None:
    obs = Observations(
        "http://example.org/",
        http=(HTTPTransaction("http://example.org/", headers=(("X-Your-IP", "203.0.113.7"),)),),
    )
    scrubber = Scrubber(["203.0.113.7"])
    assert not scrubber.holds_none(obs)
    assert scrubber.observations(obs).http[0].headers == (("X-Your-IP", SCRUBBED),)
    assert Scrubber(["198.51.100.1"]).holds_none(obs)
    assert not Scrubber(["198.51.100.1"], recognisers=[lambda ip: False]).holds_none(obs)


# Exact forms, one by one: each must be scrubbed on its own (the fast substring check included),
# and a neighbouring address that only looks alike must be kept as evidence.

V4 = "203.0.113.7"  # int 3405803783, hex cb007107
V6 = "2001:db8::7"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("203.0.113.7", SCRUBBED),
        ("7.113.0.203.in-addr.arpa", f"{SCRUBBED}.in-addr.arpa"),
        ("ip-203-0-113-7.isp.example", f"ip-{SCRUBBED}.isp.example"),
        ("host_203_0_113_7", f"host_{SCRUBBED}"),
        ("ip=203%2E0%2E113%2E7&x=1", f"ip={SCRUBBED}&x=1"),
        ("ip=203%2e0%2e113%2e7", f"ip={SCRUBBED}"),
        ("addr 203.000.113.007", f"addr {SCRUBBED}"),
        ("n=3405803783;", f"n={SCRUBBED};"),
        ("0xcb007107", SCRUBBED),
        ("0XCB007107.", f"{SCRUBBED}."),
        # host:port and IPv4-mapped IPv6: a colon after or before the dotted form is no digit
        ("203.0.113.7:443", f"{SCRUBBED}:443"),
        ("::ffff:203.0.113.7", f"::ffff:{SCRUBBED}"),
        # a hex letter glued to a dashed form (ISP host names) does not protect it
        ("cpe203-0-113-7.cable.example", f"cpe{SCRUBBED}.cable.example"),
    ],
)
def test_every_ipv4_form_is_scrubbed(text: str, expected: str) -> None:
    assert Scrubber([V4]).text(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2001:db8::7", SCRUBBED),
        ("[2001:db8::7]:443", f"[{SCRUBBED}]:443"),
        ("2001-db8--7.ipv6-literal.net", f"{SCRUBBED}.ipv6-literal.net"),
        ("ip=2001%3adb8%3a%3a7", f"ip={SCRUBBED}"),
        ("ip=2001%3Adb8%3A%3A7", f"ip={SCRUBBED}"),
        ("2001:0db8:0000:0000:0000:0000:0000:0007", SCRUBBED),
        ("2001-0db8-0000-0000-0000-0000-0000-0007", SCRUBBED),
        ("2001%3a0db8%3a0000%3a0000%3a0000%3a0000%3a0000%3a0007", SCRUBBED),
    ],
)
def test_every_ipv6_form_is_scrubbed(text: str, expected: str) -> None:
    assert Scrubber([V6]).text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2001:db8::7:1",  # a longer address, not the volunteer's
        "2001:db8::7a",
        "2001-db8--7a.ipv6-literal.net",
        "2001%3adb8%3a%3a7a",
        "2001%3Adb8%3A%3A7b",
    ],
)
def test_a_longer_ipv6_address_is_kept(text: str) -> None:
    assert Scrubber([V6]).text(text) == text


@pytest.mark.parametrize("text", ["acb007107", "cb007107f", "1203.0.113.7", "203.0.113.70"])
def test_a_longer_ipv4_number_is_kept(text: str) -> None:
    assert Scrubber([V4]).text(text) == text


def test_a_hex_form_that_is_all_digits_takes_its_0x_prefix() -> None:
    # 18.52.86.120 is 0x12345678: its hex form reads as a decimal too
    scrubber = Scrubber(["18.52.86.120"])
    assert scrubber.text("0x12345678") == SCRUBBED
    assert scrubber.text("a12345678") == f"a{SCRUBBED}"
    assert scrubber.text("012345678") == "012345678"


def test_an_eight_character_dotted_form_leaves_a_0x_before_it() -> None:
    assert Scrubber(["1.2.3.45"]).text("0x1.2.3.45") == f"0x{SCRUBBED}"


# Recognisers: the address is found in whatever form the text holds, then scrubbed.


def _claims(address: str) -> Scrubber:
    mine = ipaddress.ip_address(address)
    return Scrubber(recognisers=[lambda ip: ip == mine])


@pytest.mark.parametrize(
    ("address", "text", "expected"),
    [
        (V4, "your ip: 203.0.113.7", f"your ip: {SCRUBBED}"),
        (V4, "7.113.0.203.in-addr.arpa", f"{SCRUBBED}.in-addr.arpa"),
        (V4, "n=3405803783", f"n={SCRUBBED}"),
        (V4, "n=cb007107", f"n={SCRUBBED}"),
        ("18.52.86.120", "n=12345678", f"n={SCRUBBED}"),
        (V6, "your ip: 2001:db8::7", f"your ip: {SCRUBBED}"),
        (V6, "2001-db8--7.ipv6-literal.net", f"{SCRUBBED}.ipv6-literal.net"),
        (V6, "ip=2001%3adb8%3a%3a7", f"ip={SCRUBBED}"),
        (V6, "ip=2001%3Adb8%3A%3A7", f"ip={SCRUBBED}"),
    ],
)
def test_a_recogniser_claims_the_address_in_any_form(
    address: str, text: str, expected: str
) -> None:
    scrubber = _claims(address)
    assert scrubber.text(text) == expected
    assert scrubber.addresses() == {ipaddress.ip_address(address)}


@pytest.mark.parametrize("text", ["4294967296", "8589934591", "0x100000000"])
def test_a_number_past_the_ipv4_range_is_no_candidate(text: str) -> None:
    seen: list[object] = []
    scrubber = Scrubber(recognisers=[lambda ip: bool(seen.append(ip))])
    assert scrubber.text(text) == text
    assert all(isinstance(ip, ipaddress.IPv4Address) for ip in seen)


# Bodies: a scrubbed body gets the hash of its scrubbed text; an untouched one keeps its hash.


def test_a_scrubbed_body_gets_the_hash_of_its_scrubbed_text() -> None:
    body = "<p>Your address is 203.0.113.7</p>"
    obs = Observations(
        "http://example.org/",
        http=(
            HTTPTransaction(
                "http://example.org/", body=body, body_sha256=hashlib.sha256(b"raw").hexdigest()
            ),
        ),
    )
    out = Scrubber([V4]).observations(obs)
    clean = f"<p>Your address is {SCRUBBED}</p>"
    assert out.http[0].body == clean
    assert out.http[0].body_sha256 == hashlib.sha256(clean.encode()).hexdigest()


def test_an_untouched_body_keeps_its_hash() -> None:
    raw_hash = hashlib.sha256(b"the raw bytes, not the decoded text").hexdigest()
    http = HTTPTransaction(
        "http://example.org/",
        headers=(("X-Your-IP", V4),),
        body="<p>blocked</p>",
        body_sha256=raw_hash,
    )
    out = Scrubber([V4]).observations(Observations("http://example.org/", http=(http,)))
    assert out.http[0].headers == (("X-Your-IP", SCRUBBED),)
    assert out.http[0].body == "<p>blocked</p>"
    assert out.http[0].body_sha256 == raw_hash
    empty = replace(http, body=None, body_sha256=None)
    out = Scrubber([V4]).observations(Observations("http://example.org/", http=(empty,)))
    assert out.http[0].body_sha256 is None


# -- conservative scrubbing: the public address unknown (issue 20) ------------------------------


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("203.0.113.5", True),  # documentation ranges stand in for public ones
        ("8.8.8.8", True),
        ("2001:db8::5", True),
        ("::ffff:203.0.113.5", True),
        ("10.1.2.3", False),
        ("172.16.0.9", False),
        ("192.168.1.1", False),
        ("100.64.0.1", False),  # carrier-grade NAT
        ("169.254.1.1", False),
        ("127.0.0.1", False),
        ("0.1.2.3", False),
        ("224.0.0.1", False),
        ("255.255.255.255", False),
        ("fe80::1", False),
        ("fd00::1", False),
        ("::1", False),
        ("::ffff:10.0.0.1", False),
    ],
)
def test_which_addresses_may_be_a_volunteers(address: str, public: bool) -> None:
    assert may_be_public(ipaddress.ip_address(address)) is public


KEEP = frozenset({ipaddress.ip_address("198.51.100.77")})


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("you are 203.0.113.5", f"you are {SCRUBBED}"),
        ("ip-203-0-113-5.isp.example", f"ip-{SCRUBBED}.isp.example"),
        ("a=203_0_113_5&b=203%2E0%2E113%2E5", f"a={SCRUBBED}&b={SCRUBBED}"),
        ("5.113.0.203.in-addr.arpa", f"{SCRUBBED}.in-addr.arpa"),
        ("[2001:db8::5]:443", f"[{SCRUBBED}]:443"),
        ("blockpage at 198.51.100.77", "blockpage at 198.51.100.77"),  # evidence
        ("77.100.51.198.in-addr.arpa", "77.100.51.198.in-addr.arpa"),  # the same, reversed
        ("router 192.168.1.1, lo 127.0.0.1", "router 192.168.1.1, lo 127.0.0.1"),
        ("jquery-3.6.0.min.js, v1.2.3", "jquery-3.6.0.min.js, v1.2.3"),  # not four octets
        ("at 12:30:45 on 2024-01-15", "at 12:30:45 on 2024-01-15"),
        ("1.2.3.4567 and 300.1.2.3", "1.2.3.4567 and 300.1.2.3"),  # not addresses
    ],
)
def test_unknown_literals_are_masked_evidence_kept(text: str, masked: str) -> None:
    assert mask_unknown(text, KEEP) == masked


def _obs(body: str) -> Observations:
    return Observations(
        "http://news.example/",
        dns=(
            DNSQuery(
                hostname="news.example",
                query_type="A",
                resolver="system",
                resolver_address="udp://203.0.113.53:53",
                engine="udp",
                answers=(DNSAnswer("A", "198.51.100.77", 300),),
            ),
        ),
        tcp=(TCPConnect(ip="198.51.100.77", port=80),),
        http=(
            HTTPTransaction(
                url="http://news.example/",
                ip="198.51.100.77",
                status_code=302,
                location="http://192.0.2.9/blocked?you=203.0.113.5",
                body=body,
                body_length=len(body),
                body_sha256=hashlib.sha256(body.encode()).hexdigest(),
            ),
        ),
    )


def test_evidence_is_what_the_measurement_resolved_dialled_or_was_sent_to() -> None:
    got = {str(ip) for ip in evidence(_obs(""), keep=["2001:db8::1", "not an address"])}
    assert got == {"198.51.100.77", "203.0.113.53", "192.0.2.9", "2001:db8::1"}


def test_conservative_observations_keep_evidence_and_rehash_the_body() -> None:
    body = "<p>You are 203.0.113.5; the site is 198.51.100.77; our DNS 203.0.113.53</p>"
    obs = _obs(body)
    out = Scrubber(conservative=True).observations(obs)
    h = out.http[0]
    assert h.body == f"<p>You are {SCRUBBED}; the site is 198.51.100.77; our DNS 203.0.113.53</p>"
    assert h.body_sha256 == hashlib.sha256(h.body.encode()).hexdigest()
    assert h.location == f"http://192.0.2.9/blocked?you={SCRUBBED}"
    assert out.dns == obs.dns and out.tcp == obs.tcp
    # Not conservative: an unknown address is not the scrubber's to remove.
    assert Scrubber().observations(obs) is obs


@given(
    st.ip_addresses(v=4).filter(may_be_public),
    st.text(alphabet=st.characters(blacklist_categories=["Nd"]), max_size=20),
    st.text(alphabet=st.characters(blacklist_categories=["Nd"]), max_size=20),
    st.sampled_from([".", "-", "_", "%2E", "%2e"]),
)
def test_any_unknown_public_literal_is_masked(
    ip: ipaddress.IPv4Address, before: str, after: str, sep: str
) -> None:
    """In text without other digits, a possibly-public dotted (dashed, ...) address is masked
    unless it is evidence, and nothing else changes."""
    literal = sep.join(str(ip).split("."))
    text = before + literal + after
    assert mask_unknown(text, frozenset()) == before + SCRUBBED + after
    assert mask_unknown(text, frozenset({ip})) == text
    assert mask_unknown(before + after, frozenset()) == before + after
