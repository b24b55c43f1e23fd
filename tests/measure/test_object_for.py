"""How a round's throughput object is chosen (probe.measure.discover.object_for): pinned, the
stored choice checked again, a stored "none found" kept a day, discovery and what is cached. The
size checks are the function's own seam (``check_one``), so each case says exactly what was
checked; the checks themselves are tested against loopback servers in test_discover.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, cast

from probe.measure import net
from probe.measure.discover import NONE_FOUND_FOR, object_for, repeat_for
from probe.measure.objects import Candidate, Checked, Found
from probe.model import ObjectChoice, Plan, ThroughputObject
from probe.timeutil import iso

NOW = datetime(2026, 3, 12, 6, 0, tzinfo=UTC)
SITE = "https://news.example/"
MEDIA = "https://news.example/clip.mp4"
PLAN = Plan(max_bytes=3 << 20)


class Cache:
    def __init__(self, *choices: ObjectChoice) -> None:
        self.kept = {c.target: c for c in choices}
        self.put_ = list[ObjectChoice]()

    def get(self, target: str) -> ObjectChoice | None:
        return self.kept.get(target)

    def put(self, choice: ObjectChoice) -> None:
        self.put_.append(choice)


def run(
    cache: Cache,
    answers: dict[str, Checked],
    *,
    pinned: str | None = None,
    found: Found | None = None,
    now: datetime = NOW,
) -> tuple[Any, list[Candidate]]:
    asked: list[Candidate] = []

    async def check_one(c: Candidate) -> Checked:
        asked.append(c)
        return answers[c.url]

    result = asyncio.run(
        object_for(
            cast(Any, None),  # the network is reached only through check_one here
            name="news",
            site_url=SITE,
            pinned=pinned,
            found=found,
            plan=PLAN,
            cache=cast(Any, cache),
            counter=net.ByteCounter(),
            now=now,
            check_one=check_one,
        )
    )
    return result, asked


def stored(**kw: Any) -> ObjectChoice:
    base: dict[str, Any] = dict(
        target="news",
        site_url=SITE,
        url=MEDIA,
        size=1 << 20,
        content_type="video/mp4",
        found_at="2026-03-10T06:00:00Z",
        why="a video on the page",
    )
    return ObjectChoice(**{**base, **kw})


def test_a_pinned_object_is_used_as_it_is_with_nothing_checked() -> None:
    result, asked = run(Cache(stored()), {}, pinned="https://cdn.example/big.bin")
    assert result.object == ThroughputObject("https://cdn.example/big.bin", source="pinned")
    assert result.object.source == "pinned"
    assert (result.why, result.checked, asked) == ("pinned in the targets file", (), [])


def test_a_stored_object_still_there_is_used_again() -> None:
    again = Checked(Candidate(MEDIA, "media"), 200, 1 << 20, "video/mp4")
    result, asked = run(Cache(stored()), {MEDIA: again})
    assert asked == [Candidate(MEDIA, "media")]
    assert result.object == ThroughputObject(
        MEDIA, 1 << 20, "video/mp4", "stored", "2026-03-10T06:00:00Z", repeat_for(1 << 20, 3 << 20)
    )
    assert result.object.repeat == 3
    assert result.why == "found 2026-03-10T06:00:00Z, still there: a video on the page"
    assert result.checked == (again,)


def test_a_stored_object_that_changed_says_how_before_looking_again() -> None:
    bigger = Checked(Candidate(MEDIA, "media"), 200, 2 << 20, "video/mp4")
    result, _ = run(Cache(stored()), {MEDIA: bigger})
    assert result.object is None
    assert result.why == (
        f"{MEDIA} changed (1048576 bytes, now 2097152 bytes); none found: the page did not load"
    )
    gone = Checked(Candidate(MEDIA, "media"), 404, None, "text/html")
    result, _ = run(Cache(stored()), {MEDIA: gone})
    assert result.why == (
        f"{MEDIA} changed (1048576 bytes, now status 404); none found: the page did not load"
    )


def test_nothing_stored_and_no_page_says_only_that() -> None:
    result, asked = run(Cache(), {})
    assert (result.object, result.why, result.checked, asked) == (
        None,
        "none found: the page did not load",
        (),
        [],
    )


def test_a_stored_none_found_stands_a_day_then_the_page_is_looked_at_again() -> None:
    none = stored(url=None, size=None, content_type=None, why="no object on the page")
    found_at = NOW.replace(day=10)
    result, _ = run(Cache(none), {}, now=found_at + NONE_FOUND_FOR / 2)
    assert (result.object, result.why) == (
        None,
        "no object on the page (as of 2026-03-10T06:00:00Z)",
    )
    # exactly a day later it is no longer kept: discovery runs (here: no page, so none found)
    result, _ = run(Cache(none), {}, now=found_at + NONE_FOUND_FOR)
    assert result.why == "none found: the page did not load"


def test_discovery_is_cached_with_its_reason_even_when_it_finds_nothing() -> None:
    small = Checked(Candidate("https://news.example/a.jpg", "image"), 200, 10, "image/jpeg")
    cache = Cache()
    found = Found((small.candidate,))
    result, asked = run(cache, {small.candidate.url: small}, found=found)
    assert asked == [small.candidate]
    (put,) = cache.put_
    assert result.object is None and "none found: 1 checked" in result.why
    assert (put.target, put.site_url, put.url, put.found_at) == ("news", SITE, None, iso(NOW))
    assert put.why == result.why and result.checked == (small,)


def test_a_discovered_object_is_cached_and_used() -> None:
    clip = Checked(Candidate(MEDIA, "media"), 200, 1 << 20, "video/mp4")
    cache = Cache()
    result, _ = run(cache, {MEDIA: clip}, found=Found((clip.candidate,)))
    assert result.object == ThroughputObject(MEDIA, 1 << 20, "video/mp4", "discovered", iso(NOW), 3)
    (put,) = cache.put_
    assert (put.url, put.size, put.content_type, put.why) == (
        MEDIA,
        1 << 20,
        "video/mp4",
        result.why,
    )
    assert result.checked == (clip,)
