"""The one URL validator: what it accepts, httpx and urllib read the same way; the rest is one
line of reason (issue 10, items 1 and 12)."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe.errors import URLError
from probe.urls import MAX_LENGTH, check_url

REJECTED = {
    "https://\U0001f600.example/": "IDNA",
    "https://\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com/": "IDNA",
    "https://xn--zz.example/": "A-label",
    "https://a\x00b.example/": "non-printable",
    "https://a.example/\x01": "non-printable",
    "https://a.example/\r\nX-Injected: 1": "non-printable",
    "https://a\ud800.example/": "IDNA",
    "https://a.example/\ud800": "surrogates",
    "http://0177.0.0.1/": "Invalid IPv4",
    "http://0x7f.0.0.1/": "neither a name nor a dotted-quad",
    "http://127.1/": "neither a name nor a dotted-quad",
    "https://a.example/" + "a" * 100_000: f"longer than {MAX_LENGTH}",
    "https://exa mple.com/": "invalid host name",
    "https://a..example/": "invalid host name",
    "http://[::1": "not a valid URL",
    "http://a.example:99999/": "not a valid URL",
    "http://a.example:0/": "port outside",
    "http://user:pw@a.example/": "user name or password",
    "http://a.example\\@b.example/": "user name or password",
    "http://[fe80::1%25eth0]/": "zone id",
    "ftp://a.example/": "must start with http:// or https://",
    "http:///path": "no host",
    "https://" + "a" * 64 + ".example/": "invalid host name",
}
ACCEPTED = [
    "https://www.rfa.org/vietnamese/",
    "http://127.0.0.10:8080/page?q=1#frag",
    "https://bücher.example/",
    "http://xn--bcher-kva.example/",
    "https://[2001:db8::1]:8443/",
    "HTTPS://Example.COM/",
    "http://under_score.example./",
    "https://a.example/ä path",
]


@pytest.mark.parametrize(("url", "why"), REJECTED.items(), ids=lambda x: ascii(x)[:40])
def test_rejected_with_one_line(url: str, why: str) -> None:
    with pytest.raises(URLError) as err:
        check_url(url)
    text = str(err.value)
    assert why in text and "\n" not in text and "\r" not in text and len(text) < 300
    text.encode("utf-8")  # printable: no lone surrogate leaks into the message


@pytest.mark.parametrize("url", ACCEPTED)
def test_accepted(url: str) -> None:
    assert check_url(url).host


def _agrees(url: str) -> None:
    """Whatever the validator accepts, every parser the probe uses reads the same way."""
    try:
        parsed = check_url(url)
    except URLError as exc:
        assert "\n" not in str(exc)
        return
    again = httpx.URL(url)  # the measuring code parses the text again
    host = again.raw_host.decode("ascii")
    assert host and host == parsed.raw_host.decode("ascii")
    assert again.scheme in ("http", "https")
    port = urlsplit(url).port  # round and the helper read the port with urllib
    assert (port or 0) == (again.port or 0) or port in (80, 443)
    httpx.Request("GET", again)  # and a request can be built from it


hosts = st.one_of(
    st.from_regex(r"\A[a-z0-9_-]{1,10}(\.[a-z0-9-]{1,10}){0,3}\Z"),
    st.text(min_size=0, max_size=20),
    st.from_regex(r"\A[0-9x.]{1,16}\Z"),
    st.ip_addresses().map(lambda a: f"[{a}]" if a.version == 6 else str(a)),
)
urls = st.one_of(
    st.text(max_size=80),
    st.builds(
        lambda scheme, host, port, path: f"{scheme}://{host}{port}/{path}",
        st.sampled_from(["http", "https", "HTTP", "ftp", "http:", ""]),
        hosts,
        st.one_of(st.just(""), st.integers(-1, 70000).map(lambda p: f":{p}"), st.text(max_size=6)),
        st.text(max_size=30),
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(urls)
def test_property_validator_and_parsers_agree(url: str) -> None:
    _agrees(url)
