"""One round: measure the controls, then every target, classify each, store each whole.

Contract: ``run_round`` measures the control sites first (they decide whether the volunteer's
own link works: when none loads, the round is offline and no target gets a blocking verdict),
then the targets with bounded concurrency. Each measurement is classified and handed to
``on_measurement`` (the store writes it in one transaction) as soon as it completes, so a killed
round keeps everything finished before the kill. Network failures never raise.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from urllib.parse import urlsplit

from probe import __version__
from probe.classify import classify
from probe.classify.fingerprints import FingerprintSet
from probe.control import HelperClient
from probe.measure.runner import MeasureConfig, Shared, TargetMeasurer
from probe.model import ControlEvidence, Measurement, Observations
from probe.targets import Target

SOFTWARE = f"probe/{__version__}"


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_measurement_id(started: datetime | None = None) -> str:
    """Stable, globally unique, time-ordered: ``YYYYMMDDTHHMMSSZ_<uuid4 hex>``."""
    t = started or datetime.now(UTC)
    return f"{t.strftime('%Y%m%dT%H%M%SZ')}_{uuid.uuid4().hex}"


@dataclass(slots=True)
class RoundResult:
    id: str
    started_at: str
    finished_at: str = ""
    network_ok: bool | None = None
    measurements: list[Measurement] = field(default_factory=list)
    bytes_used: int = 0


def _endpoints(url: str, addrs: list[str]) -> list[str]:
    """What the helper should also try: every address we were given, on the URL's port."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return [f"[{a}]:{port}" if ":" in a else f"{a}:{port}" for a in addrs]


async def _measure(
    shared: Shared,
    helper: HelperClient | None,
    target: Target,
    *,
    round_id: str,
    device_id: str | None,
    fingerprints: FingerprintSet,
    network_ok: bool | None,
) -> Measurement:
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
    verdict = classify(obs, control=control, fingerprints=fingerprints, network_ok=network_ok)
    return Measurement(
        id=new_measurement_id(started),
        target=target.name,
        url=target.url,
        started_at=started.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        observations=obs,
        verdict=verdict,
        runtime=round(runtime, 4),
        round_id=round_id,
        device_id=device_id,
        category=target.category,
        is_control=target.is_control,
        resolver=shared.cfg.resolver.address,
        control_resolver=(
            shared.cfg.control_resolver.address if shared.cfg.control_resolver else None
        ),
        network_ok=network_ok,
        control=control,
        bytes_used=used,
        software=SOFTWARE,
    )


async def run_round(
    targets: Sequence[Target],
    controls: Sequence[Target],
    cfg: MeasureConfig,
    *,
    fingerprints: FingerprintSet,
    concurrency: int = 16,
    device_id: str | None = None,
    on_measurement: Callable[[Measurement], None] = lambda m: None,
    helper: HelperClient | None = None,
) -> RoundResult:
    """One round; ``helper`` (a test helper client) adds a control vantage to every target."""
    result = RoundResult(id=str(uuid.uuid4()), started_at=utc_now())
    shared = Shared.create(cfg)
    sem = asyncio.Semaphore(max(1, concurrency))

    async def one(t: Target, network_ok: bool | None) -> Measurement:
        async with sem:
            m = await _measure(
                shared,
                helper,
                t,
                round_id=result.id,
                device_id=device_id,
                fingerprints=fingerprints,
                network_ok=network_ok,
            )
        on_measurement(m)
        # Keep the verdict for the summary, not the observations: a long round stays small.
        result.measurements.append(replace(m, observations=Observations(m.url)))
        result.bytes_used += m.bytes_used
        return m

    try:
        done = await asyncio.gather(*(one(c, None) for c in controls))
        if done:
            # Any control that loaded a page proves the link works.
            result.network_ok = any(_system_ok(m) for m in done)
        await asyncio.gather(*(one(t, result.network_ok) for t in targets))
    finally:
        await shared.aclose()
        if helper is not None:
            await helper.aclose()
    result.finished_at = utc_now()
    return result


def _system_ok(m: Measurement) -> bool:
    system = [h for h in m.observations.http if h.role == "system"]
    return bool(system) and system[-1].failure is None
