"""A throughput flow over HTTP/3: the throughput test's object fetched over QUIC (issue 24).

Contract: :func:`download` is :func:`probe.measure.throughput.download`'s twin over QUIC: one
QUIC handshake (ALPN ``h3``, the URL's name as SNI, verified) with ``ip`` on UDP ``port``, then
``repeat`` HTTP/3 GETs of the URL one after another on that connection, each asking for the
bytes still wanted (``Range``; a server that ignores it is cut off at the cap), stopping at
``max_bytes`` body bytes or ``max_seconds`` (neither is a failure). It returns a
:class:`~probe.model.Flow` with role ``h3`` whose samples (every 250 ms) hold the cumulative
UDP payload bytes received and aioquic's smoothed and minimum round-trip times, so
:mod:`probe.classify.throughput`'s statistics read it as they read a TCP flow. Every datagram,
sent or received, is in ``wire_bytes`` (the data budget). A network failure is the flow's
``failure`` (df-007, the failing operation's), never an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import httpx
from aioquic.h3.events import DataReceived, HeadersReceived

from probe import failures
from probe.measure import net, quic, steps
from probe.model import Flow, Sample

ROLE = "h3"  # Flow.role of an HTTP/3 flow, beside the TCP "target" flow of the same trial
SAMPLE_EVERY = 0.25


def _rtt_us(client: quic._Client | None) -> tuple[int | None, int | None]:
    """aioquic's smoothed and minimum RTT (microseconds), None before the first estimate."""
    loss: Any = getattr(client.quic, "_loss", None) if client is not None else None
    if loss is None or not getattr(loss, "_rtt_initialized", False):
        return None, None
    smoothed, low = getattr(loss, "_rtt_smoothed", None), getattr(loss, "_rtt_min", None)
    return (
        None if smoothed is None else int(smoothed * 1e6),
        None if low is None or low == float("inf") else int(low * 1e6),
    )


async def download(
    shared: net.Shared,
    url: str,
    ip: str,
    *,
    port: int | None = None,
    role: str = ROLE,
    max_bytes: int,
    max_seconds: float,
    clock0: float,
    trial: int = 0,
    repeat: int = 1,
    verify: bool = True,
) -> Flow:
    """One timed HTTP/3 download of ``url`` through ``ip`` (see the module's contract)."""
    u = httpx.URL(url)
    host = u.raw_host.decode("ascii").lower()
    udp_port = port or u.port or 443
    start = time.monotonic()
    ctx = steps.StepContext(
        start,
        shared.cfg.timeout,
        shared.ssl_verify,
        shared.ssl_noverify,
        net.ByteCounter(),
        shared.local_addresses,
    )
    samples: list[Sample] = []
    client: quic._Client | None = None
    body = _Progress(start)
    failure: str | None = None
    raw_failure: str | None = None
    connect_s: float | None = None
    tally = quic.Tally()  # the connection, even when max_seconds cuts its handshake short

    def sample() -> None:
        rtt, low = _rtt_us(client)
        received = client.received if client is not None else 0
        progress = max(received, samples[-1].bytes if samples else 0)
        samples.append(Sample(round(time.monotonic() - start, 4), progress, rtt, None, low))

    async def sampler() -> None:
        while True:
            await asyncio.sleep(SAMPLE_EVERY)
            sample()

    ticker = asyncio.create_task(sampler())
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max_seconds):
                record, client = await quic.handshake(
                    ctx,
                    ip,
                    udp_port,
                    host,
                    ca_bundle=shared.cfg.ca_bundle if verify else None,
                    verify=verify,
                    keep=True,
                    tally=tally,
                )
                if client is None or client.h3 is None:
                    failure = record.failure or failures.QUIC_INCOMPATIBLE_VERSION
                    raw_failure = record.raw_failure or "no h3"
                else:
                    connect_s = round(record.t - record.t0, 4)
                    for _ in range(max(1, repeat)):
                        status = await _get(client, u, max_bytes, body)
                        if status not in (200, 206):
                            failure = failures.HTTP_REQUEST_FAILED
                            raw_failure = f"status:{status}"
                            break
                        if body.n >= max_bytes:
                            break
            # (a flow cut off at max_seconds is its result, not a failure)
        sample()
    except quic.QUICClosed as exc:
        info = failures.classify_quic_close(exc.error_code, exc.reason)
        failure, raw_failure = info.failure, info.raw
    except OSError as exc:
        op = failures.OP_READ if body.ttfb is not None else failures.OP_HTTP
        info = failures.classify(exc, op)
        failure, raw_failure = info.failure, info.raw
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        if client is not None:
            client.close()
    return Flow(
        role,
        url,
        ip,
        trial,
        round(start - clock0, 4),
        body.ttfb,
        round(time.monotonic() - start, 4),
        body.n,
        sum(c.bytes for c in tally.clients.values()),
        tuple(samples),
        failure,
        raw_failure,
        connect_s=connect_s,
    )


class _Progress:
    """The flow's body bytes so far, kept when a timeout cuts a GET short, and when the first
    response's headers came (seconds since the flow's start)."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.n = 0
        self.ttfb: float | None = None


async def _get(client: quic._Client, u: httpx.URL, cap: int, body: _Progress) -> int | None:
    """One HTTP/3 GET of ``u`` asking for the bytes still wanted under ``cap``; its status.
    The body's bytes go to ``body`` as they come, so a timeout from outside (the flow's
    ``max_seconds``) keeps what was read."""
    want = cap - body.n
    assert client.h3 is not None, "a handshake that negotiated h3 has its H3 connection"
    sid = client.quic.get_next_available_stream_id()
    resp = client.streams[sid] = quic._Response()
    fields = quic.get_fields(
        u,
        {"user-agent": steps.USER_AGENT, "accept": "*/*", "range": f"bytes=0-{max(want, 1) - 1}"},
    )
    client.h3.send_headers(sid, fields, end_stream=True)
    client.transmit()
    status: int | None = None
    while True:
        ev = await resp.events.get()
        if isinstance(ev, BaseException):
            raise ev
        if isinstance(ev, HeadersReceived) and status is None:
            head = dict(ev.headers)
            status = int(head.get(b":status", b"0") or 0)
            if body.ttfb is None:
                body.ttfb = round(time.monotonic() - body.start, 4)
        elif isinstance(ev, DataReceived):
            body.n += len(ev.data)
            if body.n >= cap:
                return status
        if getattr(ev, "stream_ended", False):
            return status
