"""Throughput rotation under a cap (issue 21): a skipped test is an attempt, a target with
nothing to test takes no slot, and every testable target is tested in turn.

The daemon's throughput rounds run here in-process against the loopback world, with no helper:
a target whose page offers no object can only be skipped (``no_object``), one with a pinned
object on the world's site is really tested. Days pass between rounds (the mobile profile's
throughput rounds are a day apart) by moving everything stored one day into the past, so each
round has a fresh day's cap, as it would."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from probe.config.profiles import MOBILE_DAILY_CAP
from probe.config.settings import resolve
from probe.store import Store
from tests.runs import world_settings
from tests.world import World


def _targets(world: World, path: Path, bare: int, testable: int) -> list[str]:
    """``bare`` targets listed first whose page offers no object, then ``testable`` ones with a
    pinned object (2 MB on the world's site); a control with a pinned object too. Their names."""
    lines = ["targets:"]
    names = []
    for i in range(bare):
        names.append(f"bare-{i:02d}")
        lines += [f"  - name: {names[-1]}", f"    url: {world.http('news.test', f'/?bare={i}')}"]
    for i in range(testable):
        names.append(f"obj-{i:02d}")
        lines += [
            f"  - name: {names[-1]}",
            f"    url: {world.http('news.test', f'/?obj={i}')}",
            f"    throughput_url: {world.http('news.test', f'/large?obj={i}')}",
        ]
    lines += [
        "controls:",
        "  - name: ctl",
        f"    url: {world.https('news.test')}",
        f"    throughput_url: {world.http('news.test', '/large?ctl')}",
    ]
    path.write_text("\n".join(lines) + "\n")
    return names


def _flags(world: World, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    targets, db = tmp_path / "t.yaml", tmp_path / "d.db"
    return world_settings(world, targets, db, profile="mobile", **extra)


def _a_day_passes(store: Store) -> None:
    """Everything stored moves one day into the past: the next round starts a new UTC day."""
    back = "strftime('%Y-%m-%dT%H:%M:%fZ', {}, '-1 day')"
    for table, columns in (
        ("measurements", ("started_at",)),
        ("rounds", ("started_at", "finished_at")),
        ("throughput_objects", ("found_at",)),
    ):
        sets = ", ".join(f"{c} = {back.format(c)}" for c in columns)
        store.db.execute(f"UPDATE {table} SET {sets}")


def _throughput_rounds(flags: dict[str, Any], rounds: int) -> list[dict[str, str | None]]:
    """``rounds`` throughput rounds of the daemon, a day apart; for each, every target that had
    a throughput record and its ``skipped`` (None: the test ran)."""
    from probe.daemon.daemon import Daemon as InProcess
    from probe.round import prepare

    settings = resolve(flags, env={})
    assert settings.helper is None
    store = Store.open(settings.db)
    d = InProcess(flags, None, settings, prepare(settings), store)
    seen: list[dict[str, str | None]] = []
    for _ in range(rounds):
        asyncio.run(d._round("throughput"))
        last = next(iter(store.db.query("SELECT id FROM rounds ORDER BY started_at DESC")))
        rows = store.db.query(
            "SELECT target, json_extract(throughput, '$.skipped') AS skipped FROM measurements "
            "WHERE round_id = ? AND is_control = 0 AND throughput IS NOT NULL",
            [last["id"]],
        )
        seen.append({r["target"]: r["skipped"] for r in rows})
        _a_day_passes(store)
    return seen


def test_targets_without_an_object_do_not_starve_the_one_with_under_the_mobile_cap(
    tmp_path: Path, world: World
) -> None:
    """Ten targets with nothing to test, listed first, and two with an object; the mobile
    profile's cap holds about ten tests a day. Before the fix the ten were "never tested" for
    ever (a skip did not count) and took every slot each day: the two were never tested."""
    names = _targets(world, tmp_path / "t.yaml", bare=10, testable=2)
    flags = _flags(world, tmp_path)
    assert resolve(flags, env={}).max_bytes_per_day == MOBILE_DAILY_CAP
    seen = _throughput_rounds(flags, 3)
    # Day one knows nothing yet: the list's first ten take the slots and find no object.
    assert all(seen[0].get(n) == "no_object" for n in names[:10]), seen[0]
    # From then on both testable targets are tested every day: nothing to test takes no slot.
    for day in seen[1:]:
        assert day.get("obj-00") is None and "obj-00" in day, day
        assert day.get("obj-01") is None and "obj-01" in day, day


def test_every_testable_target_is_tested_in_turn_under_a_tight_mobile_cap(
    tmp_path: Path, world: World
) -> None:
    """The mobile profile with a cap of two tests a day; three targets with nothing to test
    listed first, then four with an object. Day one tries the first two; then the four are
    tested in turn, two a day, each once before any twice, while the ones with nothing to test
    ride along without a slot. Before the fix the first two took both slots every day."""
    _targets(world, tmp_path / "t.yaml", bare=3, testable=4)
    seen = _throughput_rounds(_flags(world, tmp_path, max_bytes_per_day="6500K"), 5)
    assert sorted(seen[0]) == ["bare-00", "bare-01"], seen[0]  # two slots, nothing known yet
    objs = ["obj-00", "obj-01", "obj-02", "obj-03"]
    times = dict.fromkeys(objs, 0)
    for day in seen:
        for n, skipped in day.items():
            if skipped is None:
                times[n] += 1  # a KeyError: a target with nothing to test was "tested"
        # In turn: no target is tested a second time before every other once.
        assert max(times.values()) - min(times.values()) <= 1, seen
    assert all(sum(s is None for s in day.values()) == 2 for day in seen[2:]), seen
    assert min(times.values()) >= 1, seen
    # Every target was tried by day two, and the ones with nothing to test are skipped for
    # that reason, never for the cap.
    assert {n for day in seen[:2] for n in day} >= {"bare-00", "bare-01", "bare-02"}
    assert all(s in (None, "no_object") for day in seen for s in day.values()), seen


# -- the store: what counts as an attempt -----------------------------------------------------
def test_a_skipped_test_is_an_attempt_and_one_the_cap_stopped_is_not(tmp_path: Path) -> None:
    from probe.model import ThroughputRecord
    from probe.store.reads import ThroughputAttempt
    from tests.writer import measurement

    store = Store.open(tmp_path / "p.db")
    for i, (target, at, skipped) in enumerate(
        [
            ("ran", "2026-10-01T00:00:00.000Z", "no_object"),
            ("ran", "2026-11-01T00:00:00.000Z", None),
            ("bare", "2026-11-02T00:00:00.000Z", "no_object"),
            ("capped", "2026-11-01T00:00:00.000Z", "internal_error"),
            ("capped", "2026-11-03T00:00:00.000Z", "data_cap"),
            ("only-capped", "2026-11-03T00:00:00.000Z", "data_cap"),
        ]
    ):
        m = measurement("t", i)
        store.save(
            replace(m, target=target, started_at=at, throughput=ThroughputRecord(skipped=skipped))
        )
    store.save(replace(measurement("t", 9), target="pages-only"))
    assert store.throughput_attempts() == {
        "ran": ThroughputAttempt("2026-11-01T00:00:00.000Z", None, 2),
        "bare": ThroughputAttempt("2026-11-02T00:00:00.000Z", "no_object", 1),
        "capped": ThroughputAttempt("2026-11-01T00:00:00.000Z", "internal_error", 1),
    }


# -- the rotation itself (pure) ---------------------------------------------------------------
PER, BARE = 2_000_000.0, 250_000.0


@given(st.integers(0, 6), st.integers(1, 6), st.integers(1, 4), st.randoms(use_true_random=False))
def test_the_rotation_tests_every_testable_target_in_turn_and_wastes_no_slot(
    bare: int, testable: int, slots: int, rng: random.Random
) -> None:
    """Any list, any cap of ``slots`` tests a day (and room for the pages of the targets with
    nothing to test): every target is tried within the first rotation; from then on each day
    tests ``min(slots, testable)`` targets that can be tested, each in its turn."""
    from probe.config.targets import Target
    from probe.daemon.schedule import throughput_rotation
    from probe.store.reads import ThroughputAttempt

    targets = [Target(name=f"b{i}", url=f"https://b{i}.example/") for i in range(bare)]
    targets += [
        Target(name=f"t{i}", url=f"https://t{i}.example/", throughput_url=f"https://t{i}.example/o")
        for i in range(testable)
    ]
    rng.shuffle(targets)
    room = slots * PER + bare * BARE
    attempts: dict[str, ThroughputAttempt] = {}
    first = -(-(bare + testable) // slots)  # days until every target was tried once
    times = {t.name: 0 for t in targets if t.throughput_url}
    for day in range(first + 2 * -(-testable // slots)):
        got = throughput_rotation(targets, attempts, helper=False, room=room, per=PER, bare=BARE)
        assert got.bytes <= room
        names = [t.name for t in got.targets]
        assert len(set(names)) == len(names)
        for t in got.targets:
            skipped = None if t.throughput_url else "no_object"
            n = attempts[t.name].count + 1 if t.name in attempts else 1
            attempts[t.name] = ThroughputAttempt(f"2026-11-{day + 1:02d}T00:00Z", skipped, n)
            if t.throughput_url:
                times[t.name] += 1
        # In turn: no target is tested a second time before every other once.
        assert max(times.values()) - min(times.values()) <= 1, times
        if day == first - 1:
            assert set(attempts) == {t.name for t in targets}
        if day >= first:
            assert sum(n.startswith("t") for n in names) == min(slots, testable), names
    assert min(times.values()) >= 2


def test_with_a_helper_or_an_object_pinned_since_a_target_takes_a_slot_again() -> None:
    """A target with no object is tested by the helper's SNI A/B alone, and one whose object
    is now pinned is tested on it: their last "no_object" no longer says they cost nothing."""
    from probe.config.targets import Target
    from probe.daemon.schedule import nothing_to_test, throughput_rotation
    from probe.store.reads import ThroughputAttempt

    bare = Target(name="bare", url="https://bare.example/")
    pinned = Target(name="p", url="https://p.example/", throughput_url="https://p.example/o")
    none = ThroughputAttempt("2026-11-01T00:00:00.000Z", "no_object")
    assert nothing_to_test(bare, none, helper=False)
    assert not nothing_to_test(bare, none, helper=True)
    assert not nothing_to_test(pinned, none, helper=False)
    assert nothing_to_test(pinned, replace(none, skipped="no_address"), helper=True)
    assert not nothing_to_test(bare, replace(none, skipped="internal_error"), helper=False)
    assert not nothing_to_test(bare, None, helper=False)
    attempts = {"bare": none, "p": none}
    alone = throughput_rotation(
        [bare, pinned], attempts, helper=False, room=PER + 1, per=PER, bare=1
    )
    assert [t.name for t in alone.targets] == ["bare", "p"] and alone.bytes == PER + 1
    helped = throughput_rotation(
        [bare, pinned], attempts, helper=True, room=PER + 1, per=PER, bare=1
    )
    assert [t.name for t in helped.targets] == ["bare"] and helped.bytes == PER
    # Nothing fits: the first alone, so that the budget's check names the cap.
    over = throughput_rotation([bare, pinned], {}, helper=False, room=-5, per=PER, bare=1)
    assert [t.name for t in over.targets] == ["bare"]
    everything = throughput_rotation([bare, pinned], {}, helper=False, room=None, per=PER, bare=1)
    assert len(everything.targets) == 2 and everything.bytes == 2 * PER


# -- the round: nothing to test takes none of the budget --------------------------------------
def test_near_the_cap_a_target_with_nothing_to_test_is_skipped_for_that_not_the_cap(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Room for discovery's checks but not for a test's worst case, and no helper: the target
    with an object is skipped for the cap, the one whose page offers none for having none
    (before, both were "data_cap": a target that could never be tested stayed at the front)."""
    import logging
    from datetime import UTC, datetime

    from probe.classify.fingerprints import builtin
    from probe.config.targets import Target
    from probe.model import DISCOVERY_BYTES, Plan
    from probe.round import ThroughputOptions, run_round
    from probe.round.budget import Allowance, Budget, Usage

    plan = Plan(max_bytes=1_000_000, max_seconds=0.5, trials=1, ab_bytes=20_000, ab_seconds=0.2)
    used = 22_000_000
    assert used + DISCOVERY_BYTES <= 25_000_000 < used + plan.worst_case_bytes
    tested: list[Any] = []
    opts = ThroughputOptions(
        plan,
        allowance=Allowance(Budget(daily=25_000_000)),
        usage=lambda: Usage(used, used),
        clock=lambda: datetime(2026, 11, 29, 12, tzinfo=UTC),
        on_result=tested.append,
    )
    targets = [
        Target(name="bare", url=world.http("news.test", "/?bare")),
        Target(
            name="obj",
            url=world.http("news.test", "/?obj"),
            throughput_url=world.http("news.test", "/large?obj"),
        ),
    ]
    control = Target(
        name="ctl",
        url=world.https("news.test"),
        is_control=True,
        throughput_url=world.http("news.test", "/large?ctl"),
    )
    with caplog.at_level(logging.INFO, logger="probe.round"):
        asyncio.run(
            run_round(targets, [control], world.config(), fingerprints=builtin(), throughput=opts)
        )
    skipped = {m.target: m.throughput.skipped for m in tested}
    assert skipped == {"bare": "no_object", "obj": "data_cap"}
    (line,) = [r.getMessage() for r in caplog.records if "cap:" in r.getMessage()]
    assert line.startswith("obj: throughput test skipped (daily cap: 22.0 MB of 25.0 MB")
