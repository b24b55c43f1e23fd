"""The loopback world: a small 'internet' of real servers on 127.0.0.0/8, an honest and a lying
resolver, a DoH control resolver and a CA of its own (trustme), for the measuring code to meet.

``make_world`` starts all of it and stops it afterwards; it is built from small named parts:
:func:`certificates`, :func:`sites`, :func:`zones`, :func:`web_servers` and :func:`resolvers`.
Tests get it as the session fixture ``world`` (tests/conftest.py); tests/golden/record.py and
bench/ start their own. Addresses are the constants below, one role each.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme

from probe.config.options import BY_NAME
from probe.config.resolver import parse_resolver
from probe.measure.config import MeasureConfig
from probe.measure.net import Shared
from probe.measure.runner import measure_url
from probe.model import Observations
from tests import servers as S

SITE = "127.0.0.10"  # the real news site (HTTP and HTTPS)
BLOCKPAGE = "127.0.0.20"  # the ISP's blockpage server
UNKNOWN_BLOCK = "127.0.0.21"  # a blockpage server whose page no fingerprint knows
RST = "127.0.0.30"  # resets after the first bytes (HTTP Host / TLS SNI reset)
EOF = "127.0.0.31"  # closes after the first bytes
HANG = "127.0.0.32"  # accepts, reads the request, never answers
ECHO = "127.0.0.33"  # echoes the volunteer's public address everywhere (see PUBLIC_ADDRESS)
PUBLIC_ADDRESS = "203.0.113.5"  # the volunteer's address behind NAT, as servers see it
HOLE = "127.0.0.40"  # drops SYNs
REFUSE = "127.0.0.50"  # nothing listens
PROXY = "127.0.0.60"  # a transparent proxy: serves the real page after a DNS lie
OTHER = "127.0.0.70"  # a different site (for HTTP diff)
BADCERT = "127.0.0.80"  # TLS with a certificate for another name / an unknown CA / expired
CDN = [f"127.0.1.{i}" for i in range(1, 10)]  # a CDN: nine edge addresses serving the site
BODY_CAP: int = BY_NAME["max_body"].default  # a probe's page-body cap: its settings' default


@dataclass
class World:
    http_port: int
    https_port: int
    ca_pem: str
    system_dns: S.DNSServer
    control_dns: S.DNSServer
    doh_url: str
    zone: dict[str, Any]
    control_zone: dict[str, Any]

    def config(self, **kw: Any) -> MeasureConfig:
        base: dict[str, Any] = dict(
            resolver=parse_resolver(self.system_dns.address),
            control_resolver=parse_resolver("udp://" + self.control_dns.address),
            ca_bundle=self.ca_pem,
            timeout=1.5,
            deadline=20,
            body_cap=BODY_CAP,
            allow_loopback=True,
            quic=False,  # no HTTP/3 here: tests/h3world.py has the QUIC sites
        )
        base.update(kw)
        return MeasureConfig(**base)

    def http(self, host: str, path: str = "/") -> str:
        return f"http://{host}:{self.http_port}{path}"

    def https(self, host: str, path: str = "/") -> str:
        return f"https://{host}:{self.https_port}{path}"

    def measure(self, url: str, **kw: Any) -> tuple[Observations, int]:
        async def go() -> tuple[Observations, int]:
            shared = Shared.create(self.config(**kw))
            try:
                obs, used, _ = await measure_url(shared, url)
                return obs, used
            finally:
                await shared.aclose()

        return asyncio.run(go())


DOH = "127.0.0.90"  # the control's DoH resolver
ROGUE = "127.0.0.81"  # the site's names, signed by a CA nobody trusts
EXPIRED = "127.0.0.82"  # the site's names, with a certificate that expired in 2021

# Every name the site's certificates cover.
NAMES = [
    "news.test",
    "blocked.test",
    "unknownblock.test",
    "reset.test",
    "eof.test",
    "hole.test",
    "proxied.test",
    "redirect.test",
    "xn--bcher-kva.test",
    "tls-reset.test",
    "big.test",
    "bomb.test",
    "down.test",
    "other.test",
    "cdn.test",
    "expired.test",
    "rogue.test",
]
# Every address that serves on the world's two ports.
HOSTS = [
    SITE,
    BLOCKPAGE,
    UNKNOWN_BLOCK,
    RST,
    EOF,
    HANG,
    ECHO,
    HOLE,
    PROXY,
    OTHER,
    BADCERT,
    ROGUE,
    EXPIRED,
    *CDN,
]


@dataclass
class Certificates:
    """The world's CA (its PEM written to ``pem``), the server contexts it signs, a rogue one."""

    ca: trustme.CA
    pem: Path
    good: ssl.SSLContext  # the site's names
    wrong: ssl.SSLContext  # another name only
    echo: ssl.SSLContext  # echo.test, the volunteer's address in its common name
    rogue: ssl.SSLContext  # the site's names from an unknown CA
    expired: ssl.SSLContext  # the site's names, expired


def server_context(leaf: trustme.LeafCert) -> ssl.SSLContext:
    c = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(c)
    c.set_alpn_protocols(["http/1.1"])
    return c


def certificates(tmp: Path) -> Certificates:
    ca = trustme.CA()
    pem = tmp / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    return Certificates(
        ca=ca,
        pem=pem,
        good=server_context(ca.issue_cert(*NAMES)),
        wrong=server_context(ca.issue_cert("somewhere-else.test")),
        echo=server_context(
            ca.issue_cert("echo.test", common_name=f"echo.test for {PUBLIC_ADDRESS}")
        ),
        rogue=server_context(trustme.CA().issue_cert(*NAMES)),
        expired=server_context(
            ca.issue_cert(
                *NAMES,
                not_before=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
                not_after=dt.datetime(2021, 1, 1, tzinfo=dt.UTC),
            )
        ),
    )


@dataclass
class Sites:
    site: S.Site  # the real news site, its redirects and its large and hostile bodies
    block: S.Site  # the ISP's blockpage
    unknown_block: S.Site  # a blockpage no fingerprint knows (and an iframe one)
    echo: S.Site  # everything echoes the volunteer's address
    other: S.Site  # a parked domain


def sites(http_port: int) -> Sites:
    redirect_chain = {f"/hop{i}": S.redirect(f"/hop{i + 1}") for i in range(15)}
    site = S.Site(
        {
            "/": (200, S.SITE_HEADERS, S.PAGE),
            "/to-blocked": S.redirect(f"http://blocked.test:{http_port}/"),
            "/to-reset": S.redirect(f"http://reset.test:{http_port}/"),
            "/to-nx": S.redirect(f"http://nowhere.test:{http_port}/"),
            "/broken": S.redirect("http://"),
            "/to-nowhere-at-all": S.redirect(f"http://nowhere-at-all.test:{http_port}/"),
            "/to-metadata": S.redirect("http://169.254.169.254/latest/meta-data/"),
            "/large": S.large(2 * 1024 * 1024),
            "/bomb": S.gzip_bomb,
            "/hop15": (200, {"Content-Type": "text/html"}, S.PAGE),
            **redirect_chain,
        }
    )
    echo_route = S.echo(PUBLIC_ADDRESS)
    return Sites(
        site=site,
        block=S.Site({"/": (200, {"Content-Type": "text/html; charset=utf-8"}, S.BLOCKPAGE)}),
        unknown_block=S.Site(
            {
                "/": (200, {"Content-Type": "text/html; charset=utf-8"}, S.UNKNOWN_BLOCKPAGE),
                # Iran's style: the blockpage is an iframe to the filter's own address.
                "/iframe": (200, {"Content-Type": "text/html"}, S.IFRAME_BLOCKPAGE),
            },
            server="Viettel-WAF",
        ),
        echo=S.Site({"/": echo_route, "/go": echo_route, "/bad": echo_route}),
        other=S.Site({"/": (200, {"Content-Type": "text/html"}, S.OTHER_PAGE)}),
    )


def zones() -> tuple[dict[str, Any], dict[str, Any]]:
    """The resolver under test's zone (it lies for some names) and the control's (it does not)."""
    zone: dict[str, Any] = {
        "news.test": [SITE],
        "blocked.test": [BLOCKPAGE],
        "unknownblock.test": [UNKNOWN_BLOCK],
        "reset.test": [RST],
        "tls-reset.test": [RST],
        "eof.test": [EOF],
        "hole.test": [HOLE],
        "proxied.test": [PROXY],
        "slowcontrol.test": [PROXY],
        "echo.test": [ECHO],
        "alias.test": {"cname": "edge.cdn.test"},  # a CNAME chain to the site
        "edge.cdn.test": [SITE],
        "spoofed.test": {"foreign": ("victim.example", [OTHER])},  # records for another name
        "bigcdn.test": CDN,  # the resolver under test sends users to nine edge addresses
        "redirect.test": [SITE],
        "xn--bcher-kva.test": [SITE],
        "big.test": [SITE],
        "bomb.test": [SITE],
        "other.test": [OTHER],
        "refused.test": [REFUSE],
        "loopback.test": ["127.0.0.1"],
        "servfail.test": "SERVFAIL",
        "silent.test": "DROP",
        "wrongname.test": [BADCERT],
        "rogue.test": ["127.0.0.81"],
        "expired.test": ["127.0.0.82"],
        "cdn.test": [SITE],
        "down.test": "NXDOMAIN",
        "nxblocked.test": "NXDOMAIN",
        "injected.test": [BLOCKPAGE],
    }
    control_zone = dict(zone)
    control_zone.update(
        {
            "blocked.test": [SITE],
            "unknownblock.test": [SITE],
            "slowcontrol.test": [HANG],
            "bigcdn.test": [SITE],  # the control's answer is outside them
            "spoofed.test": [SITE],  # only the resolver under test is fooled
            "proxied.test": [SITE],
            "loopback.test": [SITE],
            "servfail.test": [SITE],
            "silent.test": [SITE],
            "nowhere.test": [SITE],
            "cdn.test": ["127.0.0.11"],
            "nxblocked.test": [SITE],
        }
    )
    zone["nowhere.test"] = "NXDOMAIN"
    return zone, control_zone


def web_servers(certs: Certificates, site: Sites, http_port: int, https_port: int) -> list[Any]:
    """Every web and misbehaving TCP server of the world, on its address and the two ports."""
    return [
        S.WebServer(site.site, SITE, http_port),
        S.WebServer(site.site, SITE, https_port, certs.good),
        S.WebServer(site.block, BLOCKPAGE, http_port),
        S.WebServer(site.unknown_block, UNKNOWN_BLOCK, http_port),
        S.WebServer(site.site, PROXY, http_port),
        S.WebServer(site.site, PROXY, https_port, certs.good),
        S.WebServer(site.other, OTHER, http_port),
        S.WebServer(site.site, BADCERT, https_port, certs.wrong),
        S.WebServer(site.site, ROGUE, https_port, certs.rogue),
        S.WebServer(site.site, EXPIRED, https_port, certs.expired),
        S.TCPServer("rst", RST, http_port),
        S.TCPServer("rst", RST, https_port),
        S.TCPServer("eof", EOF, http_port),
        S.TCPServer("eof", EOF, https_port),
        S.TCPServer("hang", HANG, http_port),
        *(S.WebServer(site.site, edge, http_port) for edge in CDN),
        S.WebServer(site.echo, ECHO, http_port),
        S.WebServer(site.echo, ECHO, https_port, certs.echo),
        S.Blackhole(HOLE, http_port),
        S.Blackhole(HOLE, https_port),
    ]


def resolvers(
    certs: Certificates, zone: dict[str, Any], control_zone: dict[str, Any]
) -> tuple[S.DNSServer, S.DNSServer, S.WebServer]:
    """The system resolver (``zone``), the control's plain resolver and its DoH resolver."""
    doh = S.WebServer(
        S.Site({"/dns-query": S.doh_route(control_zone)}),
        DOH,
        0,
        server_context(certs.ca.issue_cert(DOH)),
    )
    return S.DNSServer(zone), S.DNSServer(control_zone, host="127.0.0.53"), doh


@contextlib.contextmanager
def make_world(tmp: Path) -> Iterator[World]:
    """Start the loopback world (servers, resolvers, CA) and stop all of it afterwards."""
    certs = certificates(tmp)
    http_port = S.free_port(HOSTS)
    https_port = S.free_port(HOSTS)
    zone, control_zone = zones()
    objs: list[Any] = web_servers(certs, sites(http_port), http_port, https_port)
    sysdns, ctldns, doh = resolvers(certs, zone, control_zone)
    objs += [doh, sysdns, ctldns]
    try:
        yield World(
            http_port,
            https_port,
            str(certs.pem),
            sysdns,
            ctldns,
            f"https://{DOH}:{doh.port}/dns-query",
            zone,
            control_zone,
        )
    finally:
        for o in objs:
            o.close()
