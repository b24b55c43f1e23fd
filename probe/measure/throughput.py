"""Throughput step: timed downloads sampled every 250 ms, with the kernel's TCP_INFO.

Contract: ``download`` fetches one URL through a chosen address, stops at ``max_bytes`` or
``max_seconds`` (neither is a failure), and returns a :class:`Flow` whose samples hold the
cumulative body bytes and, on Linux, TCP_INFO's rtt, rcv_rtt, min_rtt, rcv_ooopack and segs_in.
Network failures are results. ``run_test`` runs the trials (target and control started
together, the start order alternated) and the SNI A/B against a test helper's bulk endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from probe import failures
from probe.measure import edge, h3flow, net, steps
from probe.measure.config import NEUTRAL_SNI, skip_address
from probe.measure.net import PinnedTransport, Shared
from probe.model import Flow, HelperSpeed, Plan, Sample

SAMPLE_EVERY = 0.25
TRIAL_GAP = 1.0


async def download(
    shared: Shared,
    url: str,
    ip: str,
    *,
    role: str,
    max_bytes: int,
    max_seconds: float,
    clock0: float,
    trial: int = 0,
    verify: bool = True,
    repeat: int = 1,
    token: str | None = None,
) -> Flow:
    """One timed download of ``url`` through ``ip``: ``repeat`` GETs of it one after another
    on the same connection (a small object fetched again to fill the flow), each asking for
    the bytes still wanted (``Range``: a server that ignores it is cut off at the cap), stopping
    at ``max_bytes`` or ``max_seconds``."""
    counter = net.ByteCounter()
    backend = net.PinnedBackend(counter, ip, local_addresses=shared.local_addresses)
    sockets: list[socket.socket] = []
    connected: list[float] = []  # when each connection was up, since the start

    def on_connect(sock: socket.socket) -> None:
        connected.append(time.monotonic() - start)
        sockets.append(sock)

    backend.on_connect = on_connect
    shown: tuple[tuple[str, str], ...] = ()  # the first response's locality headers
    ctx = shared.ssl_verify if verify else shared.ssl_noverify
    samples: list[Sample] = []
    got = 0
    start = time.monotonic()
    received: dict[int, int] = {}  # socket -> its last bytes_received (a server may close)

    def sample() -> None:
        info = net.tcp_info(sockets[-1] if sockets else None) or net.TCPInfo()
        # The kernel's count of bytes received on the connection (TLS handshake and headers
        # included, a few KB): exact, where the body seen by the application arrives in 16 KiB
        # TLS records (too coarse at 150 kbit/s) and what was buffered before the headers
        # were parsed would be missed.
        wire = info.bytes_received
        if wire is not None and sockets:
            # Every connection of the flow: a repeated object may need a second one.
            received[len(sockets) - 1] = wire
            wire = sum(received.values())
        # Before the connection, or after it closed: never go backwards.
        progress = wire if wire is not None else max(got, samples[-1].bytes if samples else 0)
        samples.append(
            Sample(
                round(time.monotonic() - start, 4),
                progress,
                info.rtt,
                info.rcv_rtt,
                info.min_rtt,
                info.rcv_ooopack,
                info.segs_in,
            )
        )

    async def sampler() -> None:
        while True:
            await asyncio.sleep(SAMPLE_EVERY)
            sample()

    ttfb: float | None = None
    failure: str | None = None
    raw_failure: str | None = None
    headers = {"User-Agent": steps.USER_AGENT, "Accept": "*/*", "Accept-Encoding": "identity"}
    if token:  # the helper's /bulk: inside TLS, so the path sees only the SNI
        headers["Authorization"] = f"Bearer {token}"
    ticker = asyncio.create_task(sampler())
    try:
        async with PinnedTransport(backend, ctx) as transport:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max_seconds):
                    wait = max(shared.cfg.timeout, max_seconds)
                    for _ in range(max(1, repeat)):
                        # Only what the flow may read: a byte range, so a fast link's
                        # receive buffers never fill with megabytes past the cap.
                        ranged = {**headers, "Range": f"bytes=0-{max_bytes - got - 1}"}
                        async with net.fetch(transport, url, ranged, wait) as resp:
                            ttfb = time.monotonic() - start if ttfb is None else ttfb
                            shown = shown or edge.locality(resp.headers.items())
                            if resp.status_code not in (200, 206):
                                failure = failures.HTTP_REQUEST_FAILED
                                raw_failure = f"status:{resp.status_code}"
                            else:
                                async for chunk in resp.aiter_raw():
                                    got += len(chunk)
                                    if got >= max_bytes:
                                        break
                            sample()  # while the socket is open: TCP_INFO still answers
                        if failure is not None or got >= max_bytes:
                            break
            sample()
    except failures.network_error_types() as exc:
        info = failures.classify(exc, failures.OP_READ if ttfb else failures.OP_HTTP)
        failure, raw_failure = info.failure, info.raw
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
    return Flow(
        role,
        url,
        ip,
        trial,
        round(start - clock0, 4),
        None if ttfb is None else round(ttfb, 4),
        round(time.monotonic() - start, 4),
        got,
        counter.total,
        tuple(samples),
        failure,
        raw_failure,
        connect_s=round(connected[0], 4) if connected else None,
        locality=shown,
    )


async def first_address(shared: Shared, url: str) -> tuple[str | None, str | None]:
    """The system resolver's first dialable address for the URL's host, or (None, why): the
    lookup's df-007 failure, or dns_bogon_error when every answer is one we never dial."""
    from probe.measure.dns import query

    host = httpx.URL(url).raw_host.decode("ascii").lower()
    with contextlib.suppress(ValueError):
        import ipaddress

        ipaddress.ip_address(host)
        return (None, failures.DNS_BOGON) if skip_address(host, shared.cfg) else (host, None)
    q = await query(
        host,
        "A",
        shared.cfg.resolver,
        role="system",
        timeout=shared.cfg.timeout,
        clock0=time.monotonic(),
        client=shared.doh,
        tls=shared.dot,
    )
    ip = next((a for a in q.addrs if not skip_address(a, shared.cfg)), None)
    if ip is not None:
        return ip, None
    return None, q.failure or failures.DNS_BOGON


@dataclass(slots=True)
class HelperBulk:
    """The helper's bulk TLS endpoint (any SNI) on one or two addresses, and its /speed."""

    base: str  # https://HOST[:PORT]/
    addresses: tuple[str, ...]
    port: int
    speed: Callable[[str, int, float], Awaitable[HelperSpeed]] | None = None
    token: str | None = field(default=None, repr=False)  # the helper's, for /bulk


@dataclass(slots=True)
class TestResult:
    flows: list[Flow] = field(default_factory=list)
    helper_speed: HelperSpeed | None = None
    skipped: str | None = None

    @property
    def bytes_used(self) -> int:
        helper = self.helper_speed.bytes_used if self.helper_speed else 0
        return sum(f.wire_bytes or f.bytes for f in self.flows) + helper


@dataclass(frozen=True, slots=True)
class Download:
    """What a flow fetches: a URL, and how many times in a row (a small object repeated)."""

    url: str
    repeat: int = 1


def _trial_flow(
    shared: Shared,
    role: str,
    d: Download,
    ip: str,
    plan: Plan,
    clock0: float,
    trial: int,
    h3_port: int | None,
) -> Awaitable[Flow]:
    """One flow of a trial: over TCP, or over HTTP/3 (role ``h3``) to ``h3_port``."""
    if role == h3flow.ROLE:
        return h3flow.download(
            shared, d.url, ip, port=h3_port, max_bytes=plan.max_bytes,
            max_seconds=plan.max_seconds, clock0=clock0, trial=trial, repeat=d.repeat,
        )  # fmt: skip
    return download(
        shared, d.url, ip, role=role, max_bytes=plan.max_bytes, max_seconds=plan.max_seconds,
        clock0=clock0, trial=trial, repeat=d.repeat,
    )  # fmt: skip


def _host(url: str) -> str:
    return httpx.URL(url).raw_host.decode("ascii").lower()


async def run_test(
    shared: Shared,
    target: Download | None,
    control: Download | None,
    plan: Plan,
    *,
    helper: HelperBulk | None = None,
    site_host: str | None = None,
    suspicious: Callable[[list[Flow]], bool] = lambda flows: True,
    h3_port: int | None = None,
) -> TestResult:
    """Trials of the target's object and the control's together; then, with a helper, the SNI
    A/B on its bulk endpoint - always: it needs no file on the target's servers - and, when
    ``suspicious(flows)`` says the target looks slow, the helper's own download of the object.
    Without a target object (``target`` None) the A/B is the whole test: ``ab_only_trials``
    legs with the site's name, each between two with a neutral one. With ``h3_port`` (the
    target's HTTP/3 endpoint), every trial also fetches the target's object over HTTP/3 at the
    same moment (:func:`probe.measure.h3flow.download`, a flow with role ``h3``)."""
    clock0 = time.monotonic()
    result = TestResult()
    if target is not None and control is not None:
        (t_ip, _), (c_ip, _) = await asyncio.gather(
            first_address(shared, target.url), first_address(shared, control.url)
        )
        if t_ip is None or c_ip is None:
            result.skipped = "no_address"
            return result
        for trial in range(plan.trials):
            jobs = [("target", target, t_ip), ("control", control, c_ip)]
            if h3_port is not None:
                jobs.insert(1, (h3flow.ROLE, target, t_ip))  # the same object, over HTTP/3
            if trial % 2:
                jobs.reverse()  # alternate which request leaves first
            flows = await asyncio.gather(
                *(
                    _trial_flow(shared, role, d, ip, plan, clock0, trial, h3_port)
                    for role, d, ip in jobs
                )
            )
            result.flows.extend(flows)
            if trial < plan.trials - 1:
                await asyncio.sleep(TRIAL_GAP)  # let queues on the path drain between trials
    elif helper is None:
        result.skipped = "no_object" if target is None else "no_control_object"
        return result
    if helper is None:
        return result
    if result.flows:
        await asyncio.sleep(TRIAL_GAP)
    site = (site_host or "").lower()
    named = [_host(target.url)] if target is not None and control is not None else [site]
    extra = site if site and site not in named else None
    first = helper.addresses[0]
    second = helper.addresses[1] if len(helper.addresses) > 1 else first
    legs: list[tuple[str, str, str, int]] = []  # role, name, address, trial
    if not (target is not None and control is not None):
        # The A/B alone: each named leg between two neutral ones, alternating the helper's
        # addresses, so a transient slowdown of the path cannot fall on every named leg only.
        for k in range(plan.ab_only_trials):
            legs.append(
                (
                    "ab_neutral" if k % 2 == 0 else "ab_neutral2",
                    NEUTRAL_SNI,
                    first if k % 2 == 0 else second,
                    k,
                )
            )
            legs.append(("ab_target", named[0], first, k))
        last = plan.ab_only_trials
        legs.append(
            (
                "ab_neutral" if last % 2 == 0 else "ab_neutral2",
                NEUTRAL_SNI,
                first if last % 2 == 0 else second,
                last,
            )
        )
    else:
        legs = [
            ("ab_neutral", NEUTRAL_SNI, first, 0),
            ("ab_target", named[0], first, 0),
            ("ab_neutral2", NEUTRAL_SNI, second, 0),
        ]
        if extra is not None:
            legs.append(("ab_site", extra, first, 0))  # the site's own name, beside its CDN's
    for role, name, ip, trial in legs:
        url = f"https://{name}:{helper.port}/bulk?bytes={plan.ab_bytes}"
        result.flows.append(
            await download(
                shared,
                url,
                ip,
                role=role,
                max_bytes=plan.ab_bytes,
                max_seconds=plan.ab_seconds,
                clock0=clock0,
                trial=trial,
                verify=False,
                token=helper.token,
            )
        )
    if target is not None and helper.speed is not None and suspicious(result.flows):
        result.helper_speed = await helper.speed(target.url, plan.max_bytes, plan.max_seconds)
    return result
