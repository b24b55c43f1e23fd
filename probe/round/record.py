"""A round recorded: the ``rounds`` row, the network the round is on, and the store's writers.

Contract: :func:`run_once` runs one round from a :class:`~probe.round.setup.RoundSetup` and
records it in the store's ``rounds`` table: a row at the start (so a round cut short is
visible), completed at the end with its counts and status (ok or offline). Every measurement is
stored whole as it completes (one transaction each), and again with its throughput test.
:func:`learn_network` says which network the round is on (the helper's answer, else the
settings, else unknown); a change of network from the last round is recorded. The bytes used
that the budget decides by are read from the store (:func:`stored_usage`). Discovered
throughput objects are kept in the store (:class:`StoreObjects`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from probe.config.settings import Settings
from probe.measure.edge import parse_prefixes
from probe.measure.helper_client import HelperClient
from probe.model import Measurement, Network, ObjectChoice
from probe.network import resolver_kind
from probe.privacy import Recogniser
from probe.round.budget import Allowance, Budget, Usage
from probe.round.edges import local_lookup
from probe.round.run import RoundResult, run_round
from probe.round.setup import RoundSetup
from probe.round.target import SOFTWARE
from probe.round.throughput import ThroughputOptions
from probe.store.rows import RoundRecord
from probe.timeutil import day_start, month_start, utc_now

if TYPE_CHECKING:
    from probe.store import Store


async def run_once(
    setup: RoundSetup,
    store: Store,
    *,
    on_measurement: Callable[[Measurement], None] = lambda m: None,
    throughput: bool = True,
    kind: str = "run",
    allowance: Allowance | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> RoundResult:
    """One round from ``setup``, every measurement stored whole as it completes, the round
    recorded in ``rounds`` (``kind``: run, pages or throughput; its ``status`` ok or offline;
    the writer's ``pid``, so a daemon closes only rounds whose writer died).
    ``throughput=False`` skips throughput tests this time. ``allowance``: what the throughput
    tests may spend, as the caller's budget decided (the daemon's keeps a reserve for pages);
    None: the settings' caps, no reserve."""
    s = setup.settings
    helper = (
        HelperClient(s.helper, token=setup.helper_token, ca_bundle=s.ca_bundle, quic=s.http3)
        if s.helper
        else None
    )
    tp = None
    if throughput and setup.plan is not None:
        allowed = allowance or Allowance(setup.budget)
        bulk = helper.bulk(s.helper_bulk_addresses) if helper is not None else None
        tp = ThroughputOptions(
            setup.plan,
            allowed,
            stored_usage(store, allowed.budget, clock()),
            bulk,
            clock,
            objects=StoreObjects(store),
            attempts=store.throughput_attempts,
            on_result=store.save_throughput,
            edge_lookup=local_lookup(s.asn_db),
            edge_networks=helper.edges if helper is not None else None,
            cache_prefixes=parse_prefixes(s.cache_prefixes),
        )
    network, recognisers = await learn_network(helper, s)
    round_id = str(uuid.uuid4())
    row = RoundRecord(
        id=round_id,
        device_id=store.device_id,
        started_at=utc_now(),
        targets=len(setup.targets.targets) + len(setup.targets.controls),
        software=SOFTWARE,
        kind=kind,
        pid=os.getpid(),
        probe_asn=network.asn,
        probe_cc=network.cc,
        network_name=network.name,
        network_source=network.source,
        resolver_kind=resolver_kind(setup.cfg.resolver.host)[0],
    )
    store.save_round(row)
    # A move (home Wi-Fi to mobile data, one ISP to another) starts a network's own history.
    before = store.last_network(before_round=round_id)
    known = before is not None and network.asn is not None
    if known and before is not None and (before.asn, before.cc) != (network.asn, network.cc):
        store.save_network_change(round_id, row.started_at, before, network)

    def save(m: Measurement) -> None:
        store.save(m)
        on_measurement(m)

    result = await run_round(
        setup.targets.targets,
        setup.targets.controls,
        setup.cfg,
        fingerprints=setup.fingerprints,
        concurrency=s.concurrency,
        device_id=store.device_id,
        on_measurement=save,
        helper=helper,
        throughput=tp,
        round_id=round_id,
        recognisers=recognisers,
        network=network,
    )
    result.started_at = row.started_at
    store.save_round(
        replace(
            row,
            finished_at=result.finished_at,
            targets=result.count,
            network_ok=result.network_ok,
            bytes_used=result.bytes_used,
            status="offline" if result.network_ok is False else "ok",
            public_address=",".join(result.address_known_by) or "unknown",
        )
    )
    return result


def stored_usage(store: Store, caps: Budget, now: datetime) -> Callable[[], Usage]:
    """The bytes the store holds as used since ``now``'s UTC day and month began, read afresh
    at each call; a cap that is not set costs no query."""
    today, month = day_start(now), month_start(now)

    def usage() -> Usage:
        return Usage(
            store.bytes_used_since(today) if caps.daily is not None else 0,
            store.bytes_used_since(month) if caps.monthly is not None else 0,
        )

    return usage


@dataclass(frozen=True, slots=True)
class StoreObjects:
    """Discovered throughput objects kept in the store (``throughput_objects``)."""

    store: Store

    def get(self, target: str) -> ObjectChoice | None:
        return self.store.object_choice(target)

    def put(self, choice: ObjectChoice) -> None:
        self.store.save_object_choice(choice)


async def learn_network(
    helper: HelperClient | None, settings: Settings
) -> tuple[Network, list[Recogniser]]:
    """Which network this round is on: the helper's answer, else the ``asn``/``cc`` settings,
    else unknown; and the recogniser of our public address that the helper's answer gives (for
    the round's Scrubber), even when its table knows no network."""
    answer = await helper.network() if helper is not None else None
    recognisers = [answer.recognise] if answer is not None and answer.recognise else []
    if answer is not None and answer.network is not None:
        return answer.network, recognisers
    if settings.asn or settings.cc:
        return Network(settings.asn, settings.cc, None, "settings"), recognisers
    return Network(), recognisers
