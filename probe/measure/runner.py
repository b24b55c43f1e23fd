"""Measure targets step by step: DNS, then TCP/TLS to every address, then HTTP hop by hop.

Contract: ``measure_target`` always returns :class:`probe.model.Observations` (plus the bytes it
used); network failures become records, an overall per-target deadline ends it cleanly with a
``generic_timeout_error`` on the step that was running. For every hop of the redirect chain (up
to ``max_redirects``) the host is resolved through the resolver under test and the control
resolver concurrently, every address is connected to (and TLS-handshaken for HTTPS), and one GET
goes to the first system address that worked. A redirect hop never dials an answer on the
volunteer's own network (private, link-local, CGNAT, ULA, as :func:`refuse_redirect_to` judges a
Location's literal) unless the first hop's answers were there too (an intranet, a lab); a hop
left with no other address is recorded as ``dns_bogon_error``, its answers kept in the DNS
records. When the control resolver's first-hop answers share no address with the system's, a
second chain fetches the page through a control address, so the classifier can tell a lying
resolver that still leads to the real site from a blockpage.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import time
from dataclasses import dataclass, field

import httpx

from probe import addr, failures
from probe.measure import dns as dnsq
from probe.measure import net, steps
from probe.measure.config import PAGE_RCVBUF, refuse_redirect_to, skip_address
from probe.measure.net import Shared
from probe.model import (
    REDIRECT_STATUSES,
    DNSQuery,
    HTTPTransaction,
    Observations,
    TCPConnect,
    TLSHandshake,
    no_address_query,
)


@dataclass(slots=True)
class _State:
    dns: list[DNSQuery] = field(default_factory=list)
    tcp: list[TCPConnect] = field(default_factory=list)
    tls: list[TLSHandshake] = field(default_factory=list)
    http: list[HTTPTransaction] = field(default_factory=list)
    resolved: dict[str, tuple[list[str], list[str], DNSQuery | None]] = field(default_factory=dict)
    endpoints: dict[tuple[str, int, str | None], tuple[TCPConnect, TLSHandshake | None]] = field(
        default_factory=dict
    )


DEADLINE = "target deadline"  # raw_failure of the record the per-target deadline leaves


class TargetMeasurer:
    def __init__(
        self, shared: Shared, url: str, request_headers: dict[str, str] | None = None
    ) -> None:
        self.request_headers = request_headers
        self.shared = shared
        self.cfg = shared.cfg
        self.url = url
        self.counter = net.ByteCounter()
        self.clock0 = time.monotonic()
        self.ctx = steps.StepContext(
            self.clock0,
            self.cfg.timeout,
            shared.ssl_verify,
            shared.ssl_noverify,
            self.counter,
            shared.local_addresses,
        )
        self.state = _State()
        # One transport per (role, address): nothing pooled crosses addresses or roles, so a
        # control fetch can never ride a keep-alive connection the system fetch opened.
        self._transports: dict[tuple[str, str], net.PinnedTransport] = {}
        self.first_hop: tuple[list[str], list[str]] = ([], [])
        self.first_hop_ready = asyncio.Event()  # the first hop's addresses are known
        # (role, url, depth, operation) of the step running now, for the deadline's record
        self.in_flight = ("system", url, 0, failures.OP_RESOLVE)

    async def _resolve(self, host: str, depth: int) -> tuple[list[str], list[str], DNSQuery | None]:
        """System and control addresses for a host; the system query whose failure explains it."""
        if host in self.state.resolved:
            return self.state.resolved[host]
        try:
            ipaddress.ip_address(host)
            result: tuple[list[str], list[str], DNSQuery | None] = ([host], [host], None)
            self.state.resolved[host] = result
            return result
        except ValueError:
            pass
        cfg = self.cfg
        specs = [("system", cfg.resolver)]
        if cfg.control_resolver is not None:
            specs.append(("control", cfg.control_resolver))
        jobs = [
            dnsq.query(
                host,
                qt,
                spec,
                role=role,
                timeout=cfg.timeout,
                clock0=self.clock0,
                client=self.shared.doh,
                tls=self.shared.dot,
                depth=depth,
            )
            for role, spec in specs
            for qt in ("A", "AAAA")
        ]
        results = await asyncio.gather(*jobs)
        self.state.dns.extend(results)
        for q in results:
            self.counter.add(q.bytes)
        sys_a, sys_aaaa = results[0], results[1]
        system = _unique(sys_a.addrs + sys_aaaa.addrs)
        control = _unique([a for q in results[2:] for a in q.addrs])
        explain = no_address_query([sys_a, sys_aaaa])
        result = (system, control, explain)
        self.state.resolved[host] = result
        return result

    async def _endpoints(
        self, host: str, port: int, https: bool, system: list[str], control: list[str], depth: int
    ) -> None:
        wanted: list[tuple[str, tuple[str, ...]]] = []
        # The cap is per source: a CDN's many answers must not crowd out the control's.
        cap = self.cfg.max_addresses
        for ip in _unique(system[:cap] + control[:cap]):
            sources = tuple(
                r for r, addrs in (("system", system), ("control", control)) if ip in addrs
            )
            if not skip_address(ip, self.cfg) and not self._refused_on_a_hop(ip, depth):
                wanted.append((ip, sources))
        sni = host if https else None
        todo = [(ip, s) for ip, s in wanted if (ip, port, sni) not in self.state.endpoints]
        results = await asyncio.gather(
            *(steps.tcp_tls_step(self.ctx, ip, port, sni, s, depth) for ip, s in todo)
        )
        for (ip, _), (tcp, tls) in zip(todo, results, strict=True):
            self.state.endpoints[(ip, port, sni)] = (tcp, tls)
            self.state.tcp.append(tcp)
            if tls is not None:
                self.state.tls.append(tls)

    def _refused_on_a_hop(self, ip: str, depth: int) -> bool:
        """An answer for a redirect's name that lies on the volunteer's own network (private,
        link-local, carrier-grade NAT, ULA: as a Location's literal address would be refused),
        unless the target's own first answer was there already (an intranet or a lab): never
        dialled, so a hostile site cannot aim the probe at the volunteer's router by name. The
        answers stay in the DNS records; a hop left with none is its ``dns_bogon_error``."""
        if depth == 0 or not refuse_redirect_to(ip, self.cfg):
            return False
        first = self.first_hop[0] + self.first_hop[1]
        return not any(
            refuse_redirect_to(a, self.cfg) and not skip_address(a, self.cfg) for a in first
        )

    def _pick(
        self, addrs: list[str], port: int, sni: str | None
    ) -> tuple[str | None, str | None, str | None, str | None]:
        """First usable address, else the failure (and raw error, operation) of the first tried."""
        first_fail: tuple[str | None, str | None, str | None] | None = None
        for ip in addrs:
            got = self.state.endpoints.get((ip, port, sni))
            if got is None:
                continue
            tcp, tls = got
            if tcp.ok and (tls is None or tls.ok):
                return ip, None, None, None
            if first_fail is None:
                if not tcp.ok:
                    first_fail = (tcp.failure, tcp.raw_failure, failures.OP_CONNECT)
                elif tls is not None:
                    first_fail = (tls.failure, tls.raw_failure, failures.OP_TLS)
        if first_fail is None:
            return None, None, None, None
        return None, *first_fail

    def _transport(self, role: str, ip: str) -> net.PinnedTransport:
        transport = self._transports.get((role, ip))
        if transport is None:
            backend = net.PinnedBackend(
                self.counter, ip, local_addresses=self.shared.local_addresses
            )
            transport = net.PinnedTransport(backend, self.shared.ssl_verify, rcvbuf=PAGE_RCVBUF)
            self._transports[(role, ip)] = transport
        return transport

    async def _chain(self, role: str) -> None:
        url = httpx.URL(self.url)
        self.in_flight = (role, str(url), 0, failures.OP_RESOLVE)
        for depth in range(self.cfg.max_redirects + 1):
            host = url.raw_host.decode("ascii").lower()
            https = url.scheme == "https"
            port = url.port or addr.port_of_scheme(url.scheme)
            self.in_flight = (role, str(url), depth, failures.OP_RESOLVE)
            system, control, explain = await self._resolve(host, depth)
            if depth == 0 and role == "system":
                self.first_hop = (system, control)
                self.first_hop_ready.set()
            self.in_flight = (role, str(url), depth, failures.OP_CONNECT)
            await self._endpoints(host, port, https, system, control, depth)
            self.in_flight = (role, str(url), depth, failures.OP_HTTP)
            addrs = system if role == "system" else control
            ip, failure, raw, op = self._pick(addrs, port, host if https else None)
            base = functools.partial(
                HTTPTransaction, url=str(url), role=role, depth=depth, t0=self.ctx.now()
            )
            if ip is None:
                if not addrs:
                    q = explain if role == "system" else None
                    failure = (q.failure if q else None) or failures.DNS_NO_ANSWER
                    raw, op = (q.raw_failure if q else None), failures.OP_RESOLVE
                elif failure is None:
                    # Every answer was an address we never dial (loopback, unspecified; on a
                    # redirect hop, the volunteer's own network).
                    failure, raw, op = failures.DNS_BOGON, ",".join(addrs), failures.OP_RESOLVE
                self.state.http.append(
                    base(
                        failure=failure or failures.DNS_NO_ANSWER,
                        raw_failure=raw,
                        failed_operation=op,
                        t=self.ctx.now(),
                    )
                )
                return
            tx = await steps.http_step(
                self.ctx,
                self._transport(role, ip),
                str(url),
                ip,
                port,
                role,
                depth,
                self.cfg.body_cap,
                self.cfg.store_cap,
                read_deadline=self.cfg.read_deadline,
                headers_out=self.request_headers,
            )
            self.state.http.append(tx)
            if tx.failure is not None or tx.status_code not in REDIRECT_STATUSES or not tx.location:
                return
            try:
                loc = httpx.URL(tx.location)
                nxt = url.join(loc)
                # "http://" with no host is a broken redirect (OONI's
                # http_invalid_redirect_location_host), not a relative reference.
                valid = (
                    (not loc.scheme or bool(loc.host))
                    and bool(nxt.host)
                    and (nxt.scheme in ("http", "https"))
                )
            except (httpx.InvalidURL, UnicodeError, ValueError):
                valid = False
            if not valid:
                self.state.http.append(
                    HTTPTransaction(
                        url=str(url),
                        role=role,
                        depth=depth,
                        t0=self.ctx.now(),
                        t=self.ctx.now(),
                        failure=failures.HTTP_INVALID_REDIRECT_LOCATION_HOST,
                        raw_failure=failures.scrub(tx.location)[:200],
                        failed_operation=failures.OP_HTTP,
                    )
                )
                return
            if refuse_redirect_to(nxt.host, self.cfg):
                # A literal private, loopback or link-local address in a Location: recorded
                # (the 3xx above, with its Location) and not followed, so a hostile site
                # cannot make a volunteer's probe knock on their own network.
                return
            url = nxt
        self.state.http.append(
            HTTPTransaction(
                url=str(url),
                role=role,
                depth=self.cfg.max_redirects + 1,
                t0=self.ctx.now(),
                t=self.ctx.now(),
                failure=failures.HTTP_TOO_MANY_REDIRECTS,
                failed_operation=failures.OP_HTTP,
            )
        )

    async def run(self) -> tuple[Observations, int, float]:
        try:
            async with asyncio.timeout(self.cfg.deadline):
                await self._chain("system")
                system, control = self.first_hop
                if control and not set(system) & set(control):
                    await self._chain("control")
        except TimeoutError:
            # The record belongs to the chain the deadline interrupted, at the step in flight:
            # a control chain cut short is missing evidence, never the system path's failure.
            role, url, depth, operation = self.in_flight
            self.state.http.append(
                HTTPTransaction(
                    url=url,
                    role=role,
                    depth=depth,
                    t0=self.ctx.now(),
                    t=self.ctx.now(),
                    failure=failures.GENERIC_TIMEOUT,
                    raw_failure=DEADLINE,
                    failed_operation=operation,
                )
            )
        finally:
            self.first_hop_ready.set()  # never leave a waiter hanging
            for transport in self._transports.values():
                await transport.aclose()
        obs = Observations(
            self.url,
            tuple(self.state.dns),
            tuple(self.state.tcp),
            tuple(self.state.tls),
            tuple(self.state.http),
        )
        return obs, self.counter.total, time.monotonic() - self.clock0


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


async def measure_url(shared: Shared, url: str) -> tuple[Observations, int, float]:
    """Observations for one URL, the bytes used, and the runtime in seconds."""
    return await TargetMeasurer(shared, url).run()
