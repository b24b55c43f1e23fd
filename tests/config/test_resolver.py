"""The resolver spec's one parser (probe.config.resolver): every spec it returns reads back from
its own text, and anything else is a one-line ResolverSpecError naming where the text came from."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from probe import addr
from probe.config.resolver import parse_resolver
from probe.errors import ResolverSpecError
from probe.model import ResolverSpec

ips = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).map(str)
ports = st.integers(1, 65535)
names = st.from_regex(r"\A[a-z][a-z0-9]{0,10}(\.[a-z][a-z0-9]{0,10}){0,3}\Z")
schemes = st.sampled_from(["", "udp://", "tls://", "https://", "http://", "ftp://", "tls://a@"])


@given(st.one_of(st.text(max_size=60), st.tuples(schemes, st.text(max_size=40)).map("".join)))
def test_raises_only_its_own_error_in_one_line(text: str) -> None:
    try:
        spec = parse_resolver(text, what="--resolver")
    except ResolverSpecError as exc:
        assert str(exc).startswith("--resolver: ") and "\n" not in str(exc)
        return
    assert parse_resolver(str(spec)) == spec


@given(st.sampled_from(["udp", "dot"]), ips, ports, st.one_of(st.none(), names))
def test_specs_round_trip_through_their_text(
    kind: str, ip: str, port: int, name: str | None
) -> None:
    spec = ResolverSpec(
        "udp" if kind == "udp" else "dot", ip, port, server_name=name if kind == "dot" else None
    )
    assert parse_resolver(str(spec)) == spec
    assert str(spec).endswith(addr.endpoint(ip, port))


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("192.0.2.1", ResolverSpec("udp", "192.0.2.1", 53)),
        ("udp://[2001:db8::1]:5353", ResolverSpec("udp", "2001:db8::1", 5353)),
        ("tls://Dns.Test@192.0.2.2", ResolverSpec("dot", "192.0.2.2", 853, server_name="dns.test")),
        (
            " https://dns.test/dns-query ",
            ResolverSpec("doh", "dns.test", 443, url="https://dns.test/dns-query"),
        ),
    ],
)
def test_examples(text: str, spec: ResolverSpec) -> None:
    assert parse_resolver(text) == spec


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # urlsplit raises ValueError for these ports: once an uncaught traceback from
        # `probe helper serve --upstream` and `probe run`.
        ("https://dns.test:99999/dns-query", "--upstream: 'https://dns.test:99999/dns-query': "),
        ("https://dns.test:x/dns-query", "--upstream: 'https://dns.test:x/dns-query': "),
        ("http://dns.test/", "--upstream: DoH needs https://"),
        ("tls://-bad@192.0.2.1", "is not a host name"),
        ("ftp://192.0.2.1", "unknown scheme"),
    ],
)
def test_bad_specs(text: str, message: str) -> None:
    with pytest.raises(ResolverSpecError) as err:
        parse_resolver(text, what="--upstream")
    assert message in str(err.value)
