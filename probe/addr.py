"""Host, port and endpoint text: the one place where ``IP:PORT`` and ``[IPv6]:PORT`` are parsed
and written.

Contract: ``endpoint(ip, port)`` writes ``1.2.3.4:80`` or ``[2001:db8::1]:443`` (OONI's form);
``split_host_port(text, default_port)`` reads ``HOST``, ``HOST:PORT``, ``[IPv6]`` or
``[IPv6]:PORT`` and raises :class:`AddressError` (a ``ValueError``) with a one-line reason;
``parse_endpoint(text)`` requires an IP address and a port. Pure: no name is ever resolved.

Address classes, the one home: :func:`is_internet` says whether an address is a host on the
public internet (what the test helper may dial and tell its clients), :func:`is_loopback`
whether it is the machine itself, both judging an IPv6 address that carries an IPv4 one
(:func:`ipv4_inside`: IPv4-mapped, NAT64's well-known prefix, 6to4) by that IPv4 address, and
refusing whole the ranges that lead into someone's own network (:data:`NOT_INTERNET`). The same
answers on every Python: its own ``is_global`` has changed between versions for these ranges.
"""

from __future__ import annotations

import ipaddress
from typing import Final

from probe.errors import AddressError as AddressError  # raised by this module's parsers


def N_(message: str) -> str:
    """:func:`probe.words.N_`, which this module cannot import: probe.words imports probe.model,
    which imports this module (a cycle). Babel extracts any call of a function named ``N_``."""
    return message


def port_of_scheme(scheme: str) -> int:
    """The port a URL of ``scheme`` (``http`` or ``https``) means when it names none: the one
    home of that fact."""
    return 443 if scheme == "https" else 80


def endpoint(ip: str, port: int) -> str:
    """``IP:PORT``, with brackets around an IPv6 address."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def host_for_url(host: str) -> str:
    """A host as it appears in a URL's authority: IPv6 addresses in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def port_number(text: str) -> int:
    """A TCP/UDP port, 1-65535."""
    # The length first: int() of more than 4300 digits is a ValueError of its own.
    if not text.isascii() or not text.isdigit() or len(text) > 5 or not 0 < int(text) < 65536:
        raise AddressError(N_("{value} is not a port number (1-65535)"), value=repr(text[:20]))
    return int(text)


def split_host_port(text: str, default_port: int | None = None) -> tuple[str, int]:
    """``HOST[:PORT]`` or ``[IPv6][:PORT]`` -> (host, port); a bare IPv6 address has no port."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise AddressError(N_("unclosed '[' in {value}"), value=repr(text[:60]))
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise AddressError(N_("expected ':PORT' after ']' in {value}"), value=repr(text[:60]))
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, None  # a name, an IPv4 address, or a bare IPv6 address
    if not host:
        raise AddressError(N_("no host in {value}"), value=repr(text[:60]))
    if port_text is None:
        if default_port is None:
            raise AddressError(N_("no port in {value}"), value=repr(text[:60]))
        return host, default_port
    return host, port_number(port_text)


def ip_address(text: str) -> str:
    """The canonical text of an IP address, or AddressError."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise AddressError(N_("{value} is not an IP address"), value=repr(text[:60])) from None


def split_ip_port(text: str, default_port: int | None = None) -> tuple[str, int]:
    """Like :func:`split_host_port`, and the host must be an IP address."""
    host, port = split_host_port(text, default_port)
    return ip_address(host), port


def parse_endpoint(text: str) -> tuple[str, int]:
    """``IP:PORT`` or ``[IPv6]:PORT``, both parts required."""
    return split_ip_port(text, None)


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# IPv6 ranges that carry an IPv4 address: a packet to one goes to that IPv4 address (a
# dual-stack socket dials it itself; a NAT64 gateway or a 6to4 relay translates to it).
_MAPPED: Final = ipaddress.IPv6Network("::ffff:0:0/96")
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052, the well-known prefix
_6TO4: Final = ipaddress.IPv6Network("2002::/16")  # RFC 3056: the IPv4 address in bits 16-48

# IPv6 ranges refused whole, whatever Python's version says of them: each leads into somebody's
# own network, or nowhere.
NOT_INTERNET: Final = tuple(
    (ipaddress.IPv6Network(net), why)
    for net, why in (
        ("::/96", "IPv4-compatible (RFC 4291, deprecated): Linux's sit0 tunnels it to IPv4"),
        ("::ffff:0:0:0/96", "IPv4-translated (RFC 2765, SIIT, obsolete)"),
        ("64:ff9b:1::/48", "local-use NAT64 (RFC 8215): the operator's own translation"),
        ("100::/64", "discard-only (RFC 6666)"),
        ("2001::/32", "Teredo (RFC 4380): a tunnel to a machine behind NAT, never a site"),
        ("2001:db8::/32", "documentation (RFC 3849)"),
        ("3fff::/20", "documentation (RFC 9637)"),
        ("5f00::/16", "SRv6 segment identifiers (RFC 9602)"),
        ("fc00::/7", "unique local (RFC 4193): IPv6's private networks"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local (RFC 3879, deprecated): the private range of its day"),
        ("ff00::/8", "multicast"),
    )
)


def ipv4_inside(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for: IPv4-mapped (``::ffff:10.0.0.1``), NAT64's
    well-known prefix (``64:ff9b::a00:1``) or 6to4 (``2002:a00:1::``); else None."""
    if ip.version == 4:
        return None
    if ip in _MAPPED or ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _6TO4:
        return ipaddress.IPv4Address((int(ip) >> 80) & 0xFFFFFFFF)
    return None


def is_internet(ip: IPAddress) -> bool:
    """A host on the public internet: globally routable, not multicast, not in a range of
    :data:`NOT_INTERNET`, and an address that carries an IPv4 one judged by that one. So
    ``64:ff9b::a00:1`` (10.0.0.1) is not, and ``64:ff9b::808:808`` is: RFC 6052 forbids the
    well-known prefix for private IPv4 addresses, so a NAT64 gateway only ever translates it to
    the public address it names, and a probe on an IPv6-only network with DNS64 gets such an
    answer for every site that has only IPv4."""
    inside = ipv4_inside(ip)
    if inside is not None:
        return is_internet(inside)
    if ip.version == 6 and any(ip in net for net, _ in NOT_INTERNET):
        return False
    return ip.is_global and not ip.is_multicast


def is_loopback(ip: IPAddress) -> bool:
    """The machine itself: ``127.0.0.0/8``, ``::1``, or an IPv6 address standing for one of
    those (``::ffff:127.0.0.1`` reaches it through a dual-stack socket)."""
    inside = ipv4_inside(ip)
    return ip.is_loopback or (inside is not None and inside.is_loopback)


def non_internet_literal(host: str) -> IPAddress | None:
    """``host`` as an address when it is a literal one not on the internet (:func:`is_internet`:
    private, loopback, link-local, carrier-grade NAT, multicast, reserved, or standing for one
    of those); None for a name or a public address. A Location naming one is recorded and not
    followed."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    return None if is_internet(ip) else ip
