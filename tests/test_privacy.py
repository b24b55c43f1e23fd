"""The scrubber's fast path (one look at a record's JSON) against its full path (every string
read): for any record and any volunteer address they give the same record, so the shortcut
taken for speed never keeps an address the full path would have removed."""

from __future__ import annotations

import ipaddress

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe.model import DNSAnswer, DNSQuery, HTTPTransaction, Observations
from probe.privacy import SCRUBBED, Scrubber, _forms

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
