"""host:port text (probe.addr): its errors and forms, case by case and (Hypothesis) whatever
it holds: each parser returns a value that round-trips or raises its one documented error.
"""

from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from probe import addr
from tests.strategies import ips, junk, ports


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
        ("host:" + "9" * 5000, "is not a port number"),  # past the digits int() converts
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


# -- address classes: what is on the internet (issue 20, item 3) --------------------------------
@pytest.mark.parametrize(
    ("text", "internet"),
    [
        ("8.8.8.8", True),
        ("2606:4700::1111", True),
        ("10.0.0.1", False),
        ("100.64.0.1", False),  # carrier-grade NAT
        ("169.254.169.254", False),  # link-local: the cloud's metadata service
        ("224.0.0.1", False),
        ("ff02::1", False),
        ("::", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        # IPv4-mapped: a dual-stack socket dials the IPv4 address itself
        ("::ffff:10.0.0.1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:8.8.8.8", True),
        # NAT64's well-known prefix (RFC 6052): judged by the IPv4 address it stands for
        ("64:ff9b::a00:1", False),  # 10.0.0.1
        ("64:ff9b::7f00:1", False),  # 127.0.0.1
        ("64:ff9b::a9fe:a9fe", False),  # 169.254.169.254
        ("64:ff9b::808:808", True),  # 8.8.8.8: what DNS64 answers for an IPv4-only site
        # NAT64's local-use prefix (RFC 8215): the operator's own, refused whole
        ("64:ff9b:1::a00:1", False),
        ("64:ff9b:1::808:808", False),
        # 6to4 (RFC 3056): the IPv4 address in bits 16-48
        ("2002:a00:1::1", False),  # 10.0.0.1
        ("2002:7f00:1::1", False),  # 127.0.0.1
        ("2002:808:808::1", True),  # 8.8.8.8
        ("2001:0:4136:e378:8000:63bf:f5ff:fff5", False),  # Teredo: refused whole
        ("fec0::1", False),  # site-local (deprecated): the private range of its day
        ("::a00:1", False),  # IPv4-compatible (deprecated)
        ("::808:808", False),
        ("::ffff:0:808:808", False),  # IPv4-translated (SIIT, obsolete)
        ("2001:db8::1", False),  # documentation
        ("3fff::1", False),  # documentation (RFC 9637)
        ("5f00::1", False),  # SRv6 segment identifiers (RFC 9602)
    ],
)
def test_internet_addresses(text: str, internet: bool) -> None:
    assert addr.is_internet(ipaddress.ip_address(text)) is internet
    assert (addr.non_internet_literal(text) is None) is internet
    assert (addr.non_internet_literal(f"[{text}]") is None) is internet


v4s = st.ip_addresses(v=4)


def nat64(v4: ipaddress.IPv4Address) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address((0x64FF9B << 96) | int(v4))


def mapped(v4: ipaddress.IPv4Address) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address((0xFFFF << 32) | int(v4))


def sixtofour(v4: ipaddress.IPv4Address, rest: int) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address((0x2002 << 112) | (int(v4) << 80) | rest)


@given(v4s, st.integers(0, 2**80 - 1))
def test_an_ipv6_address_carrying_an_ipv4_one_is_judged_by_it(
    v4: ipaddress.IPv4Address, rest: int
) -> None:
    want = addr.is_internet(v4)
    for v6 in (mapped(v4), nat64(v4), sixtofour(v4, rest)):
        assert addr.ipv4_inside(v6) == v4
        assert addr.is_internet(v6) is want, (v6, v4)
        assert addr.is_loopback(v6) is v4.is_loopback


@given(v4s)
def test_ipv4_on_the_internet_is_global_and_not_multicast(v4: ipaddress.IPv4Address) -> None:
    assert addr.is_internet(v4) is (v4.is_global and not v4.is_multicast)
    assert addr.ipv4_inside(v4) is None


@pytest.mark.parametrize(
    "network", ["64:ff9b:1::/48", "2001::/32", "fec0::/10", "fc00::/7", "::/96", "3fff::/20"]
)
@given(data=st.data())
def test_refused_ranges_are_refused_whole(network: str, data: st.DataObject) -> None:
    net = ipaddress.IPv6Network(network)
    ip = ipaddress.IPv6Address(
        int(net.network_address) + data.draw(st.integers(0, net.num_addresses - 1))
    )
    assert not addr.is_internet(ip)


@given(st.ip_addresses())
def test_never_internet_where_python_says_not_global(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    """Stricter than Python's ``is_global``, never looser, except where an address carries a
    public IPv4 one (Python's verdict on those has changed between versions)."""
    if addr.is_internet(ip) and not ip.is_global:
        assert addr.ipv4_inside(ip) is not None and addr.ipv4_inside(ip).is_global  # type: ignore[union-attr]
