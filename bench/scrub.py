"""Benchmark the scrubber (probe.privacy): CPU per measurement and per page body.

    python bench/scrub.py [--repeat 5] [--mb 2]

Two scrubbers, as a round builds them: ``known`` knows the volunteer's public address (an
IPv6 or un-NATed socket told it) and takes the fast path (one look at a record's JSON) when the
record cannot hold it; ``helper`` knows no address, only the helper's HMAC recogniser
(probe.network.recogniser), so every string of every record is read for candidates;
``unknown`` knows nothing (no helper, STUN or whoami answered) and masks every literal that may
be public (conservative), and the count of what it masked in the page is printed. Three
loads: the golden scenarios' observations (tests/golden/scenarios, small bodies; one echoes the
address, which the helper's scrubber then knows), a measurement of one page whose system and
control bodies are each a store cap (64 KiB) of realistic HTML, and that HTML at ``--mb`` MB
through ``Scrubber.text``; the pages do not hold the address (the common case, the one that
costs). The HTML is made here from a fixed seed: prose, links, numeric
entities, CSS and JavaScript numbers, dates, versions, other addresses, a base64 data: image
and a JSON blob, so the scrubber's prefilters meet the look-alikes a real page holds.

Prints the median of ``--repeat`` runs of each, in ms. On a shared machine compare before and
after in one session.
"""

from __future__ import annotations

import argparse
import base64
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from probe.model import HTTPTransaction, Observations, observations_from_json
from probe.network import addr_hmac, recogniser
from probe.privacy import SCRUBBED, Scrubber, mask_unknown
from tests.dbs import SCENARIOS, scenario

ADDRESS = "203.0.113.5"  # the volunteer's, in no text below
NONCE = b"n" * 32
WORDS = [
    "the",
    "news",
    "reporting",
    "government",
    "election",
    "week",
    "city",
    "police",
    "court",
    "report",
    "said",
    "people",
    "minister",
    "official",
    "statement",
    "protest",
    "market",
    "price",
    "water",
    "energy",
    "health",
    "school",
]


def page(size: int, seed: int = 20) -> str:
    """``size`` characters of HTML holding every kind of look-alike, never ``ADDRESS``."""
    rng = random.Random(seed)
    parts = ['<!doctype html><html lang="vi"><head><meta charset="utf-8"><title>News</title>']
    parts.append(
        "<style>.a{margin:0.25rem 1.5em;color:#cb0071}.b{width:33.333%;z-index:1000}</style>"
    )
    n = 0
    while n < size:
        kind = rng.random()
        if kind < 0.35:
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 30)))
            quote = rng.choice(WORDS)
            piece = f"<p>{text} &#8220;{quote}&#8221; it&#39;s&#160;{rng.randint(1, 99)}%</p>"
        elif kind < 0.6:
            piece = (
                f'<a href="/news/{rng.randint(2019, 2026)}/{rng.randint(1, 12):02d}/'
                f"{rng.choice(WORDS)}-{rng.choice(WORDS)}-{rng.randint(10000, 999999)}.html"
                f'?ref=home&amp;pos={rng.randint(1, 40)}">{rng.choice(WORDS)}</a>'
            )
        elif kind < 0.75:
            piece = (
                f'<time datetime="2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T'
                f'{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00+07:00">'
                f"{rng.randint(1, 28)}.{rng.randint(1, 12)}.2025</time>"
                f"<span>{rng.randint(1, 9)}.{rng.randint(100, 999)}.{rng.randint(100, 999)} VND"
                "</span>"
            )
        elif kind < 0.85:
            piece = (
                f'<script src="/js/lib-{rng.randint(1, 4)}.{rng.randint(0, 12)}.'
                f'{rng.randint(0, 9)}.min.js?v={rng.randint(10**7, 10**9)}"></script>'
                f"<script>var t={rng.randint(10**12, 10**13)},x=0x{rng.randint(0, 2**32):08x};"
                f'cdn="198.51.100.{rng.randint(1, 254)}";</script>'
            )
        elif kind < 0.93:
            blob = base64.b64encode(rng.randbytes(rng.randint(200, 3000))).decode()
            piece = f'<img alt="" src="data:image/png;base64,{blob}">'
        else:
            piece = (
                '<script type="application/ld+json">{"@type":"NewsArticle","id":'
                f'"{rng.randbytes(12).hex()}","wordCount":{rng.randint(100, 3000)},'
                f'"ip":"192.0.2.{rng.randint(1, 254)}"}}</script>'
            )
        parts.append(piece)
        n += len(piece)
    return "".join(parts)[:size]


def golden() -> list[Observations]:
    return [observations_from_json(scenario(n)["observations"]) for n in SCENARIOS]


def page_measurement(body: str) -> Observations:
    url = "http://news.example/"
    http = tuple(
        HTTPTransaction(
            url,
            role=role,
            status_code=200,
            headers=(("Content-Type", "text/html"), ("Set-Cookie", "s=abc; Path=/")),
            body=body,
            body_length=len(body),
            title="News",
        )
        for role in ("system", "control")
    )
    return Observations(url, http=http)


def scrubbers() -> dict[str, Callable[[], Scrubber]]:
    digest = addr_hmac(NONCE, ADDRESS)
    return {
        "known": lambda: Scrubber([ADDRESS]),
        "helper": lambda: Scrubber(recognisers=[recogniser(NONCE, digest)]),
        "unknown": lambda: Scrubber(conservative=True),
    }


def median_ms(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        run()
        times.append(time.process_time() - t0)
    return statistics.median(times) * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--mb", type=float, default=2.0)
    args = ap.parse_args()
    scenarios = golden()
    one_page = page_measurement(page(64 * 1024))
    big = page(int(args.mb * 1024 * 1024))
    for name, make in scrubbers().items():

        def all_golden(make: Callable[[], Scrubber] = make) -> None:
            s = make()
            for obs in scenarios:
                s.observations(obs)

        def the_page(make: Callable[[], Scrubber] = make) -> None:
            make().observations(one_page)

        def the_big_body(make: Callable[[], Scrubber] = make) -> None:
            s = make()
            text = s.text(big)
            if s.conservative:
                mask_unknown(text, frozenset())

        per_golden = median_ms(all_golden, args.repeat) / len(scenarios)
        print(
            f"{name:7s} golden {per_golden:6.3f} ms/measurement   "
            f"64 KiB page x2 {median_ms(the_page, args.repeat):6.2f} ms/measurement   "
            f"{args.mb:g} MB body {median_ms(the_big_body, args.repeat):7.1f} ms"
        )
    # What conservative masking takes from a page that does not hold the address: other
    # addresses and numbers that may be a public IPv4 address (timestamps, long IDs).
    masked = mask_unknown(big, frozenset()).count(SCRUBBED) - big.count(SCRUBBED)
    print(f"unknown masks {masked} literals in the {args.mb:g} MB page ({len(big) // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
