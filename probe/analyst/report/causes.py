"""Why it was slow, in a sentence (issue 25): an attributed slowdown told in the reader's words.

Contract: :func:`sentence` is pure. From a slowdown (:func:`probe.classify.attribution.attribute`:
an :class:`probe.classify.events.Event` with ``cause`` and ``evidence``) it returns one sentence
in ``lang``, e.g. "on 12 March, facebook's edges moved from inside AS7552 to AS32934, round
trips rose from 8 to 45 ms and downloads fell from 12 to 2 Mbit/s, while other foreign sites
kept their speed". Every number is the evidence's own (medians before and during the
slowdown); where a figure is unknown the sentence says "?" rather than guess. The rule's stated
basis (``Event.basis``) is a message id too: :func:`basis`.
"""

from __future__ import annotations

from typing import Any

from probe.classify.events import Event
from probe.timeutil import parse_iso
from probe.words import N_, translator

MONTHS = (
    N_("January"),
    N_("February"),
    N_("March"),
    N_("April"),
    N_("May"),
    N_("June"),
    N_("July"),
    N_("August"),
    N_("September"),
    N_("October"),
    N_("November"),
    N_("December"),
)
# TRANSLATORS: a day of the year; {month} is the month's name as translated above.
DAY = N_("{day} {month}")

SENTENCES = {
    "local_cache_removed": N_(
        "on {day}, {target}'s edges moved from inside {asn_before} to {asn_after}, round trips "
        "rose from {rtt_before} to {rtt_after} ms and downloads fell from {mbps_before} to "
        "{mbps_after} Mbit/s, while other foreign sites kept their speed"
    ),
    "international_degraded": N_(
        "on {day}, downloads from {target} fell from {mbps_before} to {mbps_after} Mbit/s "
        "together with {others} other foreign sites, while domestic sites kept their speed: "
        "the international link degraded"
    ),
    "congestion": N_(
        "on {day}, downloads from {target} fell from {mbps_before} to {mbps_after} Mbit/s as "
        "domestic and foreign sites slowed together: congestion of the volunteer's own link"
    ),
    "targeted": N_(
        "on {day}, downloads from {target} fell from {mbps_before} to {mbps_after} Mbit/s and "
        "its own tests showed its address or name throttled: targeted"
    ),
    "unknown": N_(
        "on {day}, downloads from {target} fell from {mbps_before} to {mbps_after} Mbit/s; "
        "no rule tells why"
    ),
}


def figure(x: float | None) -> str:
    """A measured figure as a sentence says it: whole above 10, else one decimal."""
    if x is None:
        return "?"
    if abs(x) >= 10:
        return f"{x:.0f}"
    return f"{x:.1f}".rstrip("0").rstrip(".")


def day(stored: str, lang: str) -> str:
    d = parse_iso(stored)
    t = translator(lang)
    return t.gettext(DAY).format(day=d.day, month=t.gettext(MONTHS[d.month - 1]))


def sentence(e: Event, lang: str = "en") -> str | None:
    """The slowdown's cause in one sentence; None for an event without one."""
    if e.cause is None:
        return None
    ev: dict[str, Any] = e.evidence
    before, after = ev.get("before", {}), ev.get("after", {})

    def mbps(side: dict[str, Any]) -> str:
        bps = side.get("bps")
        return figure(None if bps is None else bps / 1e6)

    others = ev.get("foreign_origins", {}).get("slow", 0)
    if e.target in ev.get("foreign_origins", {}).get("names", ()):
        others -= 1
    return (
        translator(lang)
        .gettext(SENTENCES[e.cause])
        .format(
            day=day(e.opened_at, lang),
            target=e.target,
            asn_before=before.get("edge_asn") or "?",
            asn_after=after.get("edge_asn") or "?",
            rtt_before=figure(before.get("rtt_ms")),
            rtt_after=figure(after.get("rtt_ms")),
            mbps_before=mbps(before),
            mbps_after=mbps(after),
            others=max(others, 0),
        )
    )


def basis(e: Event, lang: str = "en") -> str | None:
    """The rule's stated basis in ``lang``."""
    return None if e.basis is None else translator(lang).gettext(e.basis)
