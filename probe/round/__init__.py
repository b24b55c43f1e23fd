"""One round: measure the controls, then every target, classify each, store each whole.

The round's public face; each concept lives in its own module, and imports between them point
one way (setup and target first, record and discover last):

- :mod:`~probe.round.setup`: ``prepare(settings)``, everything a round needs, checked before a
  byte is written (:class:`RoundSetup`, the throughput plan, the helper's token, fingerprints);
- :mod:`~probe.round.target`: one target's pipeline (:func:`measure_target`);
- :mod:`~probe.round.throughput`: throughput tests, one at a time after the pages;
- :mod:`~probe.round.run`: one round (:func:`run_round`, :class:`RoundResult`);
- :mod:`~probe.round.record`: the round recorded in the store (:func:`run_once`);
- :mod:`~probe.round.discover`: ``probe targets discover``;
- :mod:`~probe.round.budget`: the data budget; :mod:`~probe.round.progress`: ``probe run``'s
  terminal output.
"""

from __future__ import annotations

from probe.round.discover import discover_objects
from probe.round.record import StoreObjects, learn_network, run_once
from probe.round.run import RoundResult, is_anomaly, offline_reason, run_round
from probe.round.setup import (
    RoundSetup,
    check_ca_bundle,
    load_fingerprints,
    prepare,
    read_token,
    setting_source,
    throughput_plan,
)
from probe.round.target import SOFTWARE, STRICT_ENV, measure_target, new_measurement_id
from probe.round.throughput import ThroughputOptions

__all__ = [
    "SOFTWARE",
    "STRICT_ENV",
    "RoundResult",
    "RoundSetup",
    "StoreObjects",
    "ThroughputOptions",
    "check_ca_bundle",
    "discover_objects",
    "is_anomaly",
    "learn_network",
    "load_fingerprints",
    "measure_target",
    "new_measurement_id",
    "offline_reason",
    "prepare",
    "read_token",
    "run_once",
    "run_round",
    "setting_source",
    "throughput_plan",
]
