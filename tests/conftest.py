"""Shared fixtures: a loopback 'internet' with lying and honest resolvers and real servers."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hypothesis
import hypothesis.configuration
import pytest
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


@contextlib.contextmanager
def make_world(tmp: Path) -> Iterator[World]:
    """Start the loopback world (servers, resolvers, CA) and stop all of it afterwards."""
    ca = trustme.CA()
    names = [
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
    good = ca.issue_cert(*names)
    wrong = ca.issue_cert("somewhere-else.test")
    echo_cert = ca.issue_cert("echo.test", common_name=f"echo.test for {PUBLIC_ADDRESS}")
    rogue = trustme.CA().issue_cert(*names)
    expired = ca.issue_cert(
        *names,
        not_before=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
        not_after=dt.datetime(2021, 1, 1, tzinfo=dt.UTC),
    )
    pem = tmp / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))

    def ctx(leaf: trustme.LeafCert) -> ssl.SSLContext:
        c = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        leaf.configure_cert(c)
        c.set_alpn_protocols(["http/1.1"])
        return c

    hosts = [
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
        "127.0.0.81",
        "127.0.0.82",
        *CDN,
    ]
    http_port = S.free_port(hosts)
    https_port = S.free_port(hosts)
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
    block = S.Site({"/": (200, {"Content-Type": "text/html; charset=utf-8"}, S.BLOCKPAGE)})
    echo_route = S.echo(PUBLIC_ADDRESS)
    echo_site = S.Site({"/": echo_route, "/go": echo_route, "/bad": echo_route})
    unknown_block = S.Site(
        {
            "/": (200, {"Content-Type": "text/html; charset=utf-8"}, S.UNKNOWN_BLOCKPAGE),
            # Iran's style: the blockpage is an iframe to the filter's own address.
            "/iframe": (200, {"Content-Type": "text/html"}, S.IFRAME_BLOCKPAGE),
        },
        server="Viettel-WAF",
    )
    other = S.Site({"/": (200, {"Content-Type": "text/html"}, S.OTHER_PAGE)})
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
    objs: list[Any] = [
        S.WebServer(site, SITE, http_port),
        S.WebServer(site, SITE, https_port, ctx(good)),
        S.WebServer(block, BLOCKPAGE, http_port),
        S.WebServer(unknown_block, UNKNOWN_BLOCK, http_port),
        S.WebServer(site, PROXY, http_port),
        S.WebServer(site, PROXY, https_port, ctx(good)),
        S.WebServer(other, OTHER, http_port),
        S.WebServer(site, BADCERT, https_port, ctx(wrong)),
        S.WebServer(site, "127.0.0.81", https_port, ctx(rogue)),
        S.WebServer(site, "127.0.0.82", https_port, ctx(expired)),
        S.TCPServer("rst", RST, http_port),
        S.TCPServer("rst", RST, https_port),
        S.TCPServer("eof", EOF, http_port),
        S.TCPServer("eof", EOF, https_port),
        S.TCPServer("hang", HANG, http_port),
        *(S.WebServer(site, edge, http_port) for edge in CDN),
        S.WebServer(echo_site, ECHO, http_port),
        S.WebServer(echo_site, ECHO, https_port, ctx(echo_cert)),
        S.Blackhole(HOLE, http_port),
        S.Blackhole(HOLE, https_port),
    ]
    doh = S.WebServer(
        S.Site({"/dns-query": S.doh_route(control_zone)}),
        "127.0.0.90",
        0,
        ctx(ca.issue_cert("127.0.0.90")),
    )
    sysdns, ctldns = S.DNSServer(zone), S.DNSServer(control_zone, host="127.0.0.53")
    objs += [doh, sysdns, ctldns]
    try:
        yield World(
            http_port,
            https_port,
            str(pem),
            sysdns,
            ctldns,
            f"https://127.0.0.90:{doh.port}/dns-query",
            zone,
            control_zone,
        )
    finally:
        for o in objs:
            o.close()


@pytest.fixture(scope="session", autouse=True)
def strict_rounds() -> Iterator[None]:
    """A bug in the probe's own code fails the test that hit it: the per-target boundary in
    ``probe.round`` re-raises instead of recording an ``unknown_failure`` (a test of that
    isolation unsets PROBE_STRICT with monkeypatch)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("PROBE_STRICT", "1")
    yield
    mp.undo()


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("world")) as w:
        yield w


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


# -- tests never write into the checkout ---------------------------------------------------------
# Hypothesis keeps no example database and its other files outside the checkout (by default
# .hypothesis/ in the working directory), and has no deadline: two shared cores make
# per-example timing meaningless.
hypothesis.settings.register_profile("probe", database=None, deadline=None)
hypothesis.settings.load_profile("probe")
hypothesis.configuration.set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "probe-hypothesis")

_CHECKOUT = Path(__file__).resolve().parent.parent
# What running Python and the tools leave by design; everything else is a test writing where it
# must not (a database, an export, coverage data, a mutation tool's copy).
_LEFT_BY_TOOLS = {
    ".git",
    ".venv",
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    "build",
}


def checkout_files(root: Path = _CHECKOUT) -> set[str]:
    """Every file under the checkout, bar the tools' own caches and the virtualenv."""
    out: set[str] = set()
    for here, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in _LEFT_BY_TOOLS and not d.endswith(".egg-info")]
        rel = Path(here).relative_to(root)
        out.update(str(rel / f) for f in files)
    return out


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_BEFORE] = checkout_files()


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = session.config.stash.get(_BEFORE, None)
    if before is None:
        return
    gained = sorted(checkout_files() - before)
    if gained:
        session.config.stash[_GAINED] = gained
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    gained = terminalreporter.config.stash.get(_GAINED, [])
    if gained:
        terminalreporter.write_line(
            f"FAILED: the tests wrote {len(gained)} file(s) into the checkout "
            f"({_CHECKOUT}): {', '.join(gained[:10])}",
            red=True,
            bold=True,
        )


_BEFORE = pytest.StashKey[set[str]]()
_GAINED = pytest.StashKey[list[str]]()
