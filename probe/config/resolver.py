"""Resolver specs: the one parser of a resolver's text, and the system's default resolver.

Contract: :func:`parse_resolver` reads ``IP[:PORT]``, ``udp://IP[:PORT]``,
``tls://[NAME@]IP[:PORT]`` or ``https://HOST/PATH`` into a :class:`probe.model.ResolverSpec` (the
type the DNS step consumes) or raises :class:`ResolverSpecError`, one line that starts with
``what`` (the flag, variable or file naming it). ``str(spec)`` reads back to an equal spec.
:func:`parse_resolver_option` is the same parser for the option table (the reason alone, a
:class:`~probe.errors.BadValue` or :class:`~probe.errors.AddressError`, both ValueErrors:
:func:`probe.config.settings.resolve` adds where the value came from). Every message is a
message id with fields (the reason a field of the ResolverSpecError), translated where shown.
:func:`system_resolver` is the ``resolver`` setting's default, the first nameserver of
``/etc/resolv.conf``. Nothing here touches the network or imports the measuring code.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from probe import addr
from probe.config.parse import parse_text
from probe.errors import BadValue, ResolverSpecError
from probe.model import ResolverSpec
from probe.words import N_

__all__ = [
    "ResolverSpec",
    "ResolverSpecError",
    "parse_resolver",
    "parse_resolver_option",
    "system_resolver",
]

_DNS_NAME = re.compile(
    r"^(?=.{1,253}$)([a-zA-Z0-9_]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?\.)*"
    r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$"
)


def parse_resolver(text: str, *, what: str = "--resolver") -> ResolverSpec:
    """Parse ``IP[:PORT]``, ``udp://IP[:PORT]``, ``tls://IP[:PORT]`` or ``https://HOST/PATH``."""
    try:
        return _parse(text)
    except (BadValue, addr.AddressError) as exc:  # the reason, kept translatable
        raise ResolverSpecError(N_("{what}: {problem}"), what=what, problem=exc) from None


def parse_resolver_option(v: Any) -> ResolverSpec:
    """A resolver setting's value (text from a flag, a variable or the file) -> its spec; the
    reason as a ValueError (BadValue or AddressError), without where the text came from."""
    return _parse(parse_text(v))


def _parse(text: str) -> ResolverSpec:
    """The spec, or a BadValue or AddressError (both ValueErrors) saying why not."""
    text = text.strip()
    if text.startswith("https://"):
        try:
            parts = urlsplit(text)
            port = parts.port or 443
        except ValueError as exc:  # a port that is not a number, or out of range
            raise BadValue(N_("{url}: {problem}"), url=repr(text[:80]), problem=exc) from None
        if not parts.hostname:
            raise BadValue(N_("no host in {url}"), url=repr(text))
        return ResolverSpec("doh", parts.hostname, port, url=text)
    if text.startswith("http://"):
        raise BadValue(N_("DoH needs https://, not {url}"), url=repr(text))
    if text.startswith("tls://"):
        # tls://NAME@IP[:PORT]: the certificate must be valid for NAME (RFC 8310's strict
        # profile); tls://IP[:PORT]: encrypted, not authenticated (RFC 7858's opportunistic).
        name, at, rest = text[6:].rpartition("@")
        if at and not _DNS_NAME.match(name):
            raise BadValue(N_("{name} is not a host name (tls://NAME@IP)"), name=repr(name[:60]))
        host, port = addr.split_ip_port(rest, 853)
        return ResolverSpec("dot", host, port, server_name=name.lower() if at else None)
    if text.startswith("udp://"):
        text = text[6:]
    elif "://" in text:
        raise BadValue(N_("unknown scheme in {url} (udp://, tls://, https://)"), url=repr(text))
    host, port = addr.split_ip_port(text, 53)
    return ResolverSpec("udp", host, port)


def system_resolver(path: str = "/etc/resolv.conf") -> ResolverSpec:
    """The first nameserver of the system's resolver configuration."""
    # dnspython's reader knows resolv.conf's corners (options, search, IPv6 scopes); imported
    # here, as only the default resolver needs it.
    import dns.resolver

    try:
        conf = dns.resolver.Resolver(filename=path, configure=True)
    except (OSError, dns.resolver.NoResolverConfiguration) as exc:
        raise ResolverSpecError(
            N_("{path}: no usable nameserver ({problem})"), path=path, problem=exc
        ) from None
    for ns in conf.nameservers:
        if isinstance(ns, str):
            return parse_resolver(ns, what=path)
    raise ResolverSpecError(N_("{path}: no nameserver line"), path=path)
