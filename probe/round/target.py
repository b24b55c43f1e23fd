"""One target's pipeline: measured, the helper asked, scrubbed, classified; the measurement as
it will be stored.

Contract: :func:`measure_target` measures one target (its DNS, TCP, TLS and HTTP steps through
the round's :class:`~probe.measure.net.Shared` transport), asks the test helper (when there is
one) as soon as the system's own DNS answers are known, scrubs the volunteer's addresses and
classifies: a network failure is a result, never an exception. A bug in the probe's own code
is the caller's to catch; :func:`internal_error` turns it into that target's recorded
``unknown_failure`` (no blocking verdict, the traceback logged), and
:func:`log_internal_error` re-raises instead when ``PROBE_STRICT=1`` (the test suite) asks for
it to surface. Every measurement id is :func:`new_measurement_id`: time-ordered, unique.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import urlsplit

from probe import __version__, addr, failures
from probe.addr import port_of_scheme
from probe.classify import classify
from probe.classify.fingerprints import FingerprintSet
from probe.config.targets import Target
from probe.measure import quic
from probe.measure.helper_client import HelperClient
from probe.measure.net import Shared
from probe.measure.runner import TargetMeasurer
from probe.model import ControlEvidence, Measurement, Observations
from probe.privacy import Scrubber
from probe.timeutil import compact, iso, utc_now

SOFTWARE = f"probe/{__version__}"
log = logging.getLogger(__name__)


def new_measurement_id(started: datetime | None = None) -> str:
    """Stable, globally unique, time-ordered: ``YYYYMMDDTHHMMSSZ_<uuid4 hex>``."""
    return f"{compact(started or datetime.now(UTC))}_{uuid.uuid4().hex}"


def _endpoints(url: str, addrs: list[str]) -> list[str]:
    """What the helper should also try: every address we were given, on the URL's port."""
    parts = urlsplit(url)
    port = parts.port or port_of_scheme(parts.scheme)
    return [addr.endpoint(a, port) for a in addrs]


async def measure_target(
    shared: Shared,
    helper: HelperClient | None,
    target: Target,
    *,
    round_id: str,
    device_id: str | None,
    fingerprints: FingerprintSet,
    network_ok: bool | None,
    scrubber: Scrubber,
) -> Measurement:
    """One target, measured, scrubbed of the volunteer's addresses and classified: the
    measurement as it will be stored."""
    started = datetime.now(UTC)
    measurer = TargetMeasurer(shared, target.url)
    task = asyncio.create_task(measurer.run())
    control: ControlEvidence | None = None
    if helper is not None:
        # Ask the helper as soon as our own DNS answers are known, while we go on measuring.
        await measurer.first_hop_ready.wait()
        system, ctl = measurer.first_hop
        control = await helper.query(target.url, _endpoints(target.url, [*system, *ctl]))
    obs, used, runtime = await task
    if shared.cfg.quic:
        # HTTP/3 after the TCP steps, which tell where (Alt-Svc) and to which addresses; inside
        # the same per-target deadline (what a cut leaves still counts).
        h3 = await quic.measure_within(
            shared,
            measurer.ctx,
            obs,
            measurer.clock0 + shared.cfg.deadline,
            helper_url=helper.url if helper is not None else None,
        )
        obs, used = replace(obs, quic=h3), used + h3.bytes
        runtime = time.monotonic() - measurer.clock0
    # The one place the volunteer's addresses leave: before classifying, so the verdict read
    # back from the database (probe reclassify) is the verdict made now.
    obs = scrubber.observations(obs, keep=control.dns_addrs if control is not None else ())
    if control is not None:
        control = scrubber.struct(control)
    verdict = classify(obs, control=control, fingerprints=fingerprints, network_ok=network_ok)
    return Measurement(
        id=new_measurement_id(started),
        target=target.name,
        url=target.url,
        started_at=iso(started),
        observations=obs,
        verdict=verdict,
        runtime=round(runtime, 4),
        round_id=round_id,
        device_id=device_id,
        category=target.category,
        is_control=target.is_control,
        resolver=scrubber.text(shared.cfg.resolver.address),
        control_resolver=(
            shared.cfg.control_resolver.address if shared.cfg.control_resolver else None
        ),
        network_ok=network_ok,
        control=control,
        bytes_used=used,
        software=SOFTWARE,
    )


STRICT_ENV = "PROBE_STRICT"  # "1": the per-target boundary re-raises (the test suite sets it)


def log_internal_error(t: Target, exc: Exception) -> None:
    if os.environ.get(STRICT_ENV) == "1":
        raise exc
    log.error(
        "%s: internal error while measuring (%s: %s)", t.name, type(exc).__name__, exc, exc_info=exc
    )


def internal_error(
    t: Target, exc: Exception, shared: Shared, *, round_id: str, device_id: str | None
) -> Measurement:
    """The recorded failure of a target whose measuring raised: no observations, no blocking
    verdict (a bug is never evidence), the failure text kept as ``unknown_failure: ...``."""
    log_internal_error(t, exc)
    text = failures.UNKNOWN_PREFIX + failures.scrub(f"{type(exc).__name__}: {exc}")[:300]
    obs = Observations(t.url)
    verdict = replace(classify(obs), failure=text)
    return Measurement(
        id=new_measurement_id(),
        target=t.name,
        url=t.url,
        started_at=utc_now(),
        observations=obs,
        verdict=verdict,
        round_id=round_id,
        device_id=device_id,
        category=t.category,
        is_control=t.is_control,
        resolver=shared.cfg.resolver.address,
        software=SOFTWARE,
        extra={"internal_error": text},
    )


def is_internal_error(m: Measurement) -> bool:
    return "internal_error" in m.extra
