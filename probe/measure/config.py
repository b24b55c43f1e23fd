"""What the measuring code is told and the policy it consults: pure values, no I/O.

Contract: :class:`MeasureConfig` is everything a round's measurements are configured with (the
resolvers, timeouts, caps, which networks may be dialled); it is built from the settings by
:mod:`probe.round` and by the test helper, and never imports them. :func:`skip_address` says
which answer addresses are never dialled, :func:`refuse_redirect_to` which redirect hosts are
never followed, :data:`PAGE_RCVBUF` how much a page fetch's socket buffers. The I/O that
follows these decisions is :mod:`probe.measure.net`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from probe import addr
from probe.model import ResolverSpec

# The SNI A/B's neutral name (over TCP to the helper's bulk endpoint, over QUIC to a site's
# address and to the helper's listener): a name no censor has reason to block or slow.
NEUTRAL_SNI = "www.example.com"


@dataclass(frozen=True, slots=True, kw_only=True)
class MeasureConfig:
    """A round's (or the test helper's) measuring configuration. The timeout, deadline and body
    cap have no default here: a probe's come from its settings (probe.config.options), the test
    helper's from its own command line."""

    resolver: ResolverSpec
    control_resolver: ResolverSpec | None  # None: the test helper, which is the control
    timeout: float  # per step
    deadline: float  # per target
    body_cap: int  # a page body's bytes read, after decompression
    ca_bundle: str | None = None
    store_cap: int = 64 * 1024
    max_redirects: int = 10
    max_addresses: int = 8  # per source (system, control): a CDN can answer with dozens
    allow_loopback: bool = False  # tests and the lab only: never connect to loopback otherwise
    public_only: bool = False  # the test helper: dial only globally routable addresses
    allow_networks: tuple[str, ...] = ()  # dial these anyway (the lab, tests)
    deny_addrs: frozenset[str] = frozenset()  # never dial these (the helper's own addresses)
    read_deadline: float | None = None  # seconds for a whole body (default: 2 x timeout)
    stun_servers: tuple[tuple[str, int], ...] = ()  # who tells us our public address (whoami)
    quic: bool = True  # the QUIC and HTTP/3 steps (issue 24; the "http3" setting)


# A page fetch's receive buffer. Reading stops at the body cap, but what the kernel already
# accepted still arrives and counts against the volunteer's data budget; a fixed buffer (no
# autotuning) bounds that to this much per connection, which still carries pages at tens of
# Mbit/s. Throughput tests leave the kernel's autotuning alone.
PAGE_RCVBUF = 256 * 1024


def skip_address(ip: str, cfg: MeasureConfig) -> bool:
    """Addresses never dialled: the volunteer's own machine (a resolver may point there), and
    for the test helper anything not on the internet (it must not be a way into its own
    network: :func:`probe.addr.is_internet`, which judges NAT64, IPv4-mapped and 6to4
    addresses by the IPv4 address they stand for) and its own addresses."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return True
    if address.is_multicast or address.is_unspecified or ip in cfg.deny_addrs:
        return True
    if allowed_network(address, cfg):
        return False
    if cfg.public_only:
        return not addr.is_internet(address)
    return addr.is_loopback(address)


def allowed_network(address: addr.IPAddress, cfg: MeasureConfig) -> bool:
    """In a network dialled whatever else says (the lab's, the tests', loopback if allowed)."""
    return any(address in network for network in _allowed(cfg))


def refuse_redirect_to(host: str, cfg: MeasureConfig) -> bool:
    """A redirect's host that is a literal address not routable on the internet (private,
    loopback, link-local, multicast, reserved): never dialled, unless a lab allows it. Names
    are resolved and judged by their answers, as for any hop."""
    ip = addr.non_internet_literal(host)
    if ip is None:
        return False
    return not allowed_network(ip, cfg)


def _allowed(cfg: MeasureConfig) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The networks dialled whatever else says: the lab's and the tests', loopback if allowed."""
    allowed = [*cfg.allow_networks, *(["127.0.0.0/8"] if cfg.allow_loopback else [])]
    return [ipaddress.ip_network(n, strict=False) for n in allowed]
