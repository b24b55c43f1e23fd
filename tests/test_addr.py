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
