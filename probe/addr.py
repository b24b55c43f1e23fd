"""Host, port and endpoint text: the one place where ``IP:PORT`` and ``[IPv6]:PORT`` are parsed
and written.

Contract: ``endpoint(ip, port)`` writes ``1.2.3.4:80`` or ``[2001:db8::1]:443`` (OONI's form);
``split_host_port(text, default_port)`` reads ``HOST``, ``HOST:PORT``, ``[IPv6]`` or
``[IPv6]:PORT`` and raises :class:`AddressError` (a ``ValueError``) with a one-line reason;
``parse_endpoint(text)`` requires an IP address and a port. Pure: no name is ever resolved.
"""

from __future__ import annotations

import ipaddress

from probe.errors import AddressError as AddressError  # raised by this module's parsers


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
    if not text.isascii() or not text.isdigit() or not 0 < int(text) < 65536:
        raise AddressError(f"{text[:20]!r} is not a port number (1-65535)")
    return int(text)


def split_host_port(text: str, default_port: int | None = None) -> tuple[str, int]:
    """``HOST[:PORT]`` or ``[IPv6][:PORT]`` -> (host, port); a bare IPv6 address has no port."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise AddressError(f"unclosed '[' in {text[:60]!r}")
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise AddressError(f"expected ':PORT' after ']' in {text[:60]!r}")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, None  # a name, an IPv4 address, or a bare IPv6 address
    if not host:
        raise AddressError(f"no host in {text[:60]!r}")
    if port_text is None:
        if default_port is None:
            raise AddressError(f"no port in {text[:60]!r}")
        return host, default_port
    return host, port_number(port_text)


def ip_address(text: str) -> str:
    """The canonical text of an IP address, or AddressError."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise AddressError(f"{text[:60]!r} is not an IP address") from None


def split_ip_port(text: str, default_port: int | None = None) -> tuple[str, int]:
    """Like :func:`split_host_port`, and the host must be an IP address."""
    host, port = split_host_port(text, default_port)
    return ip_address(host), port


def parse_endpoint(text: str) -> tuple[str, int]:
    """``IP:PORT`` or ``[IPv6]:PORT``, both parts required."""
    return split_ip_port(text, None)


def non_internet_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``host`` as an address when it is a literal one not routable on the internet (private,
    loopback, link-local, carrier-grade NAT, multicast, reserved); None for a name or a public
    address. A Location naming one is recorded and not followed."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    return ip if not ip.is_global or ip.is_multicast else None
