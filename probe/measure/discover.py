"""Throughput objects over the network: size checks, and each target's object for a round.

Contract: ``check(shared, candidate, counter)`` asks for one candidate's size with HEAD, else a
one-byte ranged GET (``Range: bytes=0-0``, whose ``Content-Range`` gives the total), through the
pinned transport to an address from the resolver under test (never one
:func:`~probe.measure.config.skip_address` refuses), following no redirect; a network failure is a
result (the :class:`~probe.measure.objects.Checked` carries its df-007 string). ``discover(found,
check, max_bytes)`` checks candidates in :func:`~probe.measure.objects.check_order` until one is
large enough. ``object_for(...)`` gives a target its object for this round: the pinned
``throughput_url``; else the stored choice, when it still answers 200 with the same size; else a
new choice from what the page this round fetched offers (``found``, from
:func:`probe.measure.objects.from_page`), stored with when it was found; a stored "none found"
stands for a day. Bytes moved by the checks are counted into ``counter``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import httpx

from probe import failures
from probe.measure import net, steps
from probe.measure.net import PinnedTransport, Shared
from probe.measure.objects import MAX_REPEAT, Candidate, Checked, Choice, Found, check_order, choose
from probe.measure.objects import describe as describe_found
from probe.model import ObjectChoice, Plan, ThroughputObject
from probe.timeutil import iso, parse_iso

NONE_FOUND_FOR = timedelta(days=1)  # how long a "none found" stands before looking again
_RANGE = re.compile(r"^bytes\s+\d+-\d+/(\d+)$", re.IGNORECASE)

Check = Callable[[Candidate], Awaitable[Checked]]


def _size(headers: httpx.Headers, status: int) -> int | None:
    """The object's full size: a 206's Content-Range total, or an unencoded Content-Length."""
    if status == 206:
        m = _RANGE.match((headers.get("content-range") or "").strip())
        return int(m.group(1)) if m else None
    length = (headers.get("content-length") or "").strip()
    encoded = (headers.get("content-encoding") or "identity").strip().lower() != "identity"
    return int(length) if length.isdigit() and not encoded else None


async def check(shared: Shared, candidate: Candidate, counter: net.ByteCounter) -> Checked:
    """The candidate's status, size and type, from its own server as the resolver under test
    sends us there."""
    from probe.measure.throughput import first_address

    ip, why = await first_address(shared, candidate.url)
    if ip is None:
        return Checked(candidate, failure=why)
    backend = net.PinnedBackend(counter, ip, local_addresses=shared.local_addresses)
    headers = {"User-Agent": steps.USER_AGENT, "Accept": "*/*", "Accept-Encoding": "identity"}
    status: int | None = None
    size: int | None = None
    ctype: str | None = None
    try:
        async with PinnedTransport(backend, shared.ssl_verify) as transport:
            timeout = shared.cfg.timeout
            async with net.fetch(transport, candidate.url, headers, timeout, "HEAD") as resp:
                status, ctype = resp.status_code, resp.headers.get("content-type")
                size = _size(resp.headers, status) if status == 200 else None
            if status in (200, 403, 405, 501) and size is None:
                # No HEAD, or no length in it: one byte, whose Content-Range says the total.
                ranged = {**headers, "Range": "bytes=0-0"}
                async with net.fetch(transport, candidate.url, ranged, timeout) as resp:
                    status, ctype = resp.status_code, resp.headers.get("content-type") or ctype
                    size = _size(resp.headers, status) if status in (200, 206) else None
                    if status == 206:
                        status = 200  # the object is there; we asked for one byte of it
    except failures.network_error_types() as exc:
        info = failures.classify(exc, failures.OP_HTTP)
        return Checked(candidate, failure=info.failure)
    return Checked(candidate, status, size, ctype)


async def discover(
    candidates: Sequence[Candidate], check_one: Check, max_bytes: int
) -> tuple[Choice, list[Checked]]:
    """Check candidates (interleaved by kind, at most MAX_CHECKS) until one has ``max_bytes``."""
    checked: list[Checked] = []
    for c in check_order(candidates):
        got = await check_one(c)
        checked.append(got)
        if got.usable and got.size is not None and got.size >= max_bytes:
            break
    return choose(checked, max_bytes), checked


class ObjectCache(Protocol):
    """Where choices are kept between rounds (the store's ``throughput_objects`` table)."""

    def get(self, target: str) -> ObjectChoice | None: ...

    def put(self, choice: ObjectChoice) -> None: ...


@dataclass(slots=True)
class MemoryCache:
    """Choices kept in memory (tests, and ``probe targets discover``, which stores nothing)."""

    choices: dict[str, ObjectChoice]

    def get(self, target: str) -> ObjectChoice | None:
        return self.choices.get(target)

    def put(self, choice: ObjectChoice) -> None:
        self.choices[choice.target] = choice


@dataclass(frozen=True, slots=True)
class ObjectResult:
    """A target's object for this round (None: none), one line on how it was chosen or why there
    is none, and the size checks made this time (for ``probe targets discover``)."""

    object: ThroughputObject | None
    why: str
    checked: tuple[Checked, ...] = ()


def repeat_for(size: int | None, max_bytes: int) -> int:
    if not size:
        return 1
    return max(1, min(MAX_REPEAT, -(-max_bytes // size)))


async def object_for(
    shared: Shared,
    *,
    name: str,
    site_url: str,
    pinned: str | None,
    found: Found | None,
    plan: Plan,
    cache: ObjectCache,
    counter: net.ByteCounter,
    now: datetime,
    check_one: Check | None = None,
) -> ObjectResult:
    """This round's object for one target (or control)."""
    if pinned:
        return ObjectResult(ThroughputObject(pinned, source="pinned"), "pinned in the targets file")

    async def default_check(c: Candidate) -> Checked:
        return await check(shared, c, counter)

    check_one = check_one or default_check
    stored = cache.get(name)
    gone = ""
    if stored is not None and stored.site_url == site_url:
        if stored.url is not None:
            again = await check_one(Candidate(stored.url, "media"))
            if again.usable and again.size == stored.size:
                obj = ThroughputObject(
                    stored.url,
                    stored.size,
                    stored.content_type,
                    "stored",
                    stored.found_at,
                    repeat_for(stored.size, plan.max_bytes),
                )
                why = f"found {stored.found_at}, still there: {stored.why}"
                return ObjectResult(obj, why, (again,))
            was = f"{stored.size} bytes"
            now_is = again.why_not(plan.max_bytes) if not again.usable else f"{again.size} bytes"
            gone = f"{stored.url} changed ({was}, now {now_is}); "
        elif now - parse_iso(stored.found_at) < NONE_FOUND_FOR:
            return ObjectResult(None, f"{stored.why} (as of {stored.found_at})")
    if found is None:
        return ObjectResult(None, gone + "none found: the page did not load")
    choice, checked = await discover(found.candidates, check_one, plan.max_bytes)
    why = f"{gone}{describe_found(found)}; {choice.why}"
    cache.put(
        ObjectChoice(name, site_url, choice.url, choice.size, choice.content_type, iso(now), why)
    )
    if choice.url is None:
        return ObjectResult(None, why, tuple(checked))
    obj = ThroughputObject(
        choice.url, choice.size, choice.content_type, "discovered", iso(now), choice.repeat
    )
    return ObjectResult(obj, why, tuple(checked))
