"""``probe targets discover``: the throughput object each target's test would use, nothing stored.

Contract: :func:`discover_objects` fetches each target's and control's page as a round fetches
it and returns, for each, the object its throughput test would use (or none) and one line
saying why. Nothing is written; the objects cache is a fresh one in memory.
"""

from __future__ import annotations

import asyncio

from probe.config.settings import Settings
from probe.config.targets import Target
from probe.measure.net import ByteCounter, Shared
from probe.measure.objects import from_page
from probe.measure.runner import TargetMeasurer
from probe.model import ThroughputObject
from probe.privacy import Scrubber
from probe.round.setup import prepare, profile_plan
from probe.round.throughput import ThroughputOptions, find_object


async def discover_objects(
    settings: Settings,
) -> list[tuple[str, ThroughputObject | None, str]]:
    """``probe targets discover``: each target's and control's page fetched as a round fetches
    it, and the object its throughput test would use (nothing stored): (name, object, why)."""
    setup = prepare(settings)
    plan = setup.plan or profile_plan(settings)  # the plan a test would use, were it on
    shared = Shared.create(setup.cfg)
    scrubber = Scrubber(shared.local_addresses)
    opts = ThroughputOptions(plan)
    sem = asyncio.Semaphore(max(1, settings.concurrency))

    async def one(t: Target) -> tuple[str, ThroughputObject | None, str]:
        async with sem:
            found = None
            if not t.throughput_url:
                obs, _, _ = await TargetMeasurer(shared, t.url).run()
                found = from_page(scrubber.observations(obs), t.url)
            r = await find_object(shared, t, found, opts, ByteCounter(), scrubber)
            return t.name, r.object, r.why

    try:
        tl = setup.targets
        return list(await asyncio.gather(*(one(t) for t in (*tl.targets, *tl.controls))))
    finally:
        await shared.aclose()
