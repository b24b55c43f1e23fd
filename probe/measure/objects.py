"""Throughput objects: which of a page's resources the site serves itself, and which to use. Pure.

Contract: ``candidates(html, page_url, site_url)`` parses ``html`` (the standard library's
``html.parser``: tolerant of malformed markup and of a body cut short at the store cap) and
returns the resources the page links - ``img`` (``src``, ``srcset``), ``picture``/``video``/
``audio``/``source``, ``video poster``, ``script src``, ``link rel=stylesheet|preload|
modulepreload``, ``og:image``/``og:video`` meta, and the lazy-loading attributes (``data-src``,
``data-srcset``, ``data-lazy-src``, ``data-original``, ...) - made absolute against ``<base
href>`` (the first one, as browsers do) or the page's own URL, deduplicated, and split into the
site's own (``first_party``) and the rest. A resource is the site's own when its host's
registrable domain (the Public Suffix List, from tldextract's bundled snapshot: never fetched) is
the site's, or is one of the site's own CDNs (``probe/data/first_party_cdns.yaml``). The site is
the *target's* URL, not the page's final URL: a redirect to a blockpage makes nothing first-party.
Candidates come most promising first (media, then images with their largest ``srcset`` entry,
scripts, stylesheets, fonts), and ``check_order`` interleaves the kinds so that a bounded number
of size checks tries each. ``choose(checked, max_bytes)`` picks one object: the first answering
200 with at least ``max_bytes`` bytes, else the largest of at least :data:`MIN_BYTES` (repeated
within a flow), else none - and says why in one line.
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from importlib import resources
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit, urlunsplit

import yaml

from probe.model import Observations

if TYPE_CHECKING:
    import tldextract

MIN_BYTES = 64 * 1024  # smaller is mostly slow start: no steady rate to read
MAX_CHECKS = 8  # size checks per discovery: each costs a connection
MAX_REPEAT = 16  # requests per flow when a small object is repeated

# Kinds, most promising first (their usual size on a news site's front page).
KINDS = ("media", "image", "script", "style", "font")
_LAZY_SRC = ("data-src", "data-lazy-src", "data-original", "data-lazy", "data-url", "data-hi-res")
_LAZY_SRCSET = ("data-srcset", "data-lazy-srcset")
_PRELOAD_AS = {"image": "image", "video": "media", "audio": "media", "script": "script"}
_PRELOAD_AS |= {"style": "style", "font": "font", "fetch": "script"}
_EXTENSIONS = {
    "media": (".mp4", ".webm", ".m4v", ".mov", ".mp3", ".m4a", ".ogg", ".ogv"),
    "image": (".jpg", ".jpeg", ".png", ".webp", ".avif", ".gif", ".svg", ".bmp", ".ico"),
    "script": (".js", ".mjs"),
    "style": (".css",),
    "font": (".woff2", ".woff", ".ttf", ".otf"),
}
# Content types that a size check accepts as the kind of object a page links. A 200 text/html
# answer for an image's URL is a soft 404 or a blockpage, never a throughput object.
OBJECT_TYPES = (
    "image/",
    "video/",
    "audio/",
    "font/",
    "application/",
    "text/css",
    "text/javascript",
)


@dataclass(frozen=True, slots=True)
class Candidate:
    url: str
    kind: str  # one of KINDS
    width: int = 0  # the srcset width (or density x 1000) it was chosen by: a size hint
    first_party: bool = True


@dataclass(frozen=True, slots=True)
class Found:
    """What a page offers: its first-party candidates, in order, and what was left out."""

    candidates: tuple[Candidate, ...]
    third_party: int = 0  # resources on other sites
    unusable: int = 0  # resources with no usable http(s) URL (data:, javascript:, ...)

    @property
    def total(self) -> int:
        return len(self.candidates) + self.third_party + self.unusable


@dataclass(frozen=True, slots=True)
class Checked:
    """A candidate after its size check (HEAD, else a ranged GET)."""

    candidate: Candidate
    status: int | None = None
    size: int | None = None  # Content-Length, or the total of a Content-Range
    content_type: str | None = None
    failure: str | None = None  # df-007, when the check did not get an answer

    @property
    def usable(self) -> bool:
        ctype = (self.content_type or "").split(";")[0].strip().lower()
        typed = not ctype or ctype.startswith(OBJECT_TYPES)
        return self.failure is None and self.status == 200 and self.size is not None and typed

    def why_not(self, max_bytes: int) -> str:
        if self.failure is not None:
            return self.failure
        if self.status != 200:
            return f"status {self.status}"
        if self.size is None:
            return "no size given"
        if not self.usable:
            return f"served as {self.content_type}"
        if self.size < MIN_BYTES:
            return f"{self.size} bytes (under {MIN_BYTES // 1024} KiB)"
        return "usable" if self.size >= max_bytes else f"{self.size} bytes (repeated)"


@dataclass(frozen=True, slots=True)
class Choice:
    """The object chosen for a plan, or none, with one line saying why."""

    url: str | None
    size: int | None = None
    content_type: str | None = None
    repeat: int = 1  # requests per flow: more than one when the object is smaller than a flow
    why: str = ""


# -- the Public Suffix List and the first-party CDNs --------------------------------------------
@functools.cache
def _extractor() -> tldextract.TLDExtract:
    import tldextract  # lazy: it brings requests, which only discovery needs

    # The bundled snapshot only: no cache directory, no list URL, so it can never reach out.
    return tldextract.TLDExtract(
        cache_dir=None,
        suffix_list_urls=(),
        fallback_to_snapshot=True,
        include_psl_private_domains=True,  # danlambaovn.blogspot.com is a site of its own
    )


def registrable_domain(host: str) -> str:
    """The host's registrable domain (``www.bbc.com`` -> ``bbc.com``). An IP literal is its own;
    a name under a suffix the list does not know (a lab's ``.lab``) counts its last two labels."""
    host = host.strip(".").lower()
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        pass
    found = _extractor()(host)
    domain = found.top_domain_under_public_suffix
    return domain if domain and found.suffix else ".".join(host.split(".")[-2:])


@functools.cache
def first_party_cdns() -> dict[str, frozenset[str]]:
    """The packaged list: a site's registrable domain -> its own CDNs' registrable domains."""
    text = (resources.files("probe") / "data" / "first_party_cdns.yaml").read_text("utf-8")
    doc = yaml.safe_load(text) or {}
    return {str(k).lower(): frozenset(str(v).lower() for v in vs) for k, vs in doc.items()}


def is_first_party(resource_host: str, site_host: str) -> bool:
    site = registrable_domain(site_host)
    theirs = registrable_domain(resource_host)
    return theirs == site or theirs in first_party_cdns().get(site, frozenset())


# -- the page ----------------------------------------------------------------------------------
def _srcset(value: str) -> list[tuple[str, int]]:
    """``url 480w, url2 2x`` -> [(url, 480), (url2, 2000)] (widths, densities x 1000)."""
    out = []
    for part in value.split(","):
        bits = part.strip().split()
        if not bits:
            continue
        weight = 0
        if len(bits) > 1:
            d = bits[1].lower()
            try:
                if d.endswith("w"):
                    weight = int(d[:-1])
                elif d.endswith("x"):
                    weight = int(float(d[:-1]) * 1000)
            except ValueError:
                weight = 0
        out.append((bits[0], weight))
    return out


def _kind_of(url: str, hint: str) -> str:
    path = urlsplit(url).path.lower()
    for kind, exts in _EXTENSIONS.items():
        if path.endswith(exts):
            return kind
    return hint


class _Links(HTMLParser):
    """Collects (raw URL, kind, weight) in document order, and the first ``<base href>``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.found: list[tuple[str, str, int]] = []
        self._media = 0  # inside <video> or <audio>: their <source>s are media

    def _add(self, value: str | None, kind: str, weight: int = 0) -> None:
        if value and value.strip():
            self.found.append((value.strip(), kind, weight))

    def _add_srcset(self, value: str | None, kind: str) -> None:
        if value:
            entries = _srcset(value)
            if entries:  # the largest: the one a size check is most likely to find large
                url, weight = max(entries, key=lambda e: e[1])
                self._add(url, kind, weight)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): v for k, v in attrs}
        if tag == "base" and self.base is None and a.get("href"):
            self.base = a["href"]
        elif tag in ("video", "audio"):
            self._media += 1
            self._add(a.get("src"), "media")
            self._add(a.get("data-src"), "media")
            self._add(a.get("poster"), "image")
        elif tag in ("img", "source"):
            kind = "media" if tag == "source" and self._media else "image"
            self._add_srcset(a.get("srcset"), kind)
            for attr in _LAZY_SRCSET:
                self._add_srcset(a.get(attr), kind)
            self._add(a.get("src"), kind)
            for attr in _LAZY_SRC:
                self._add(a.get(attr), kind)
        elif tag == "script":
            self._add(a.get("src"), "script")
        elif tag == "link":
            rel = (a.get("rel") or "").lower().split()
            if "stylesheet" in rel:
                self._add(a.get("href"), "style")
            elif "preload" in rel or "modulepreload" in rel:
                kind = _PRELOAD_AS.get((a.get("as") or "script").lower(), "script")
                self._add(a.get("href"), kind)
                self._add_srcset(a.get("imagesrcset"), "image")
        elif tag == "meta":
            prop = (a.get("property") or a.get("name") or "").lower()
            if prop in ("og:image", "og:image:url", "og:image:secure_url", "twitter:image"):
                self._add(a.get("content"), "image")
            elif prop in ("og:video", "og:video:url", "og:video:secure_url"):
                self._add(a.get("content"), "media")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag in ("video", "audio"):
            self._media = max(0, self._media - 1)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("video", "audio"):
            self._media = max(0, self._media - 1)


def _absolute(raw: str, base: str) -> str | None:
    """An absolute http(s) URL without its fragment, or None."""
    try:
        url = urljoin(base, raw)
        parts = urlsplit(url)
        _ = parts.port  # raises on a bad port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", parts.query, ""))


def candidates(html: str, page_url: str, site_url: str | None = None) -> Found:
    """The resources ``html`` (fetched from ``page_url``) links, the site's own first."""
    parser = _Links()
    parser.feed(html)
    parser.close()
    base = page_url
    if parser.base:
        base = _absolute(parser.base, page_url) or page_url
    site_host = urlsplit(site_url or page_url).hostname or ""
    seen: dict[str, Candidate] = {}
    third = unusable = 0
    for raw, hint, weight in parser.found:
        url = _absolute(raw, base)
        if url is None:
            unusable += 1
            continue
        if url in seen:
            continue
        host = urlsplit(url).hostname or ""
        mine = is_first_party(host, site_host)
        seen[url] = Candidate(url, _kind_of(url, hint), weight, mine)
        if not mine:
            third += 1
    ordered = sorted(
        (c for c in seen.values() if c.first_party),
        key=lambda c: (KINDS.index(c.kind), -c.width),
    )
    return Found(tuple(ordered), third, unusable)


def check_order(found: Iterable[Candidate], limit: int = MAX_CHECKS) -> list[Candidate]:
    """Up to ``limit`` candidates, the kinds interleaved (media, image, script, ... again), so a
    page of fifty thumbnails still gets its one large script checked."""
    by_kind: dict[str, list[Candidate]] = {k: [] for k in KINDS}
    for c in found:
        by_kind[c.kind].append(c)
    rounds = itertools.zip_longest(*by_kind.values())
    flat = [c for row in rounds for c in row if c is not None]
    return flat[:limit]


def choose(checked: Sequence[Checked], max_bytes: int) -> Choice:
    """The object for a plan whose flows read ``max_bytes``: see the module's contract."""
    usable = [c for c in checked if c.usable and c.size is not None and c.size >= MIN_BYTES]
    big = next((c for c in usable if c.size is not None and c.size >= max_bytes), None)
    if big is not None:
        return Choice(big.candidate.url, big.size, big.content_type, 1, _why(big, checked))
    if usable:
        best = max(usable, key=lambda c: c.size or 0)
        assert best.size is not None
        repeat = min(MAX_REPEAT, -(-max_bytes // best.size))
        return Choice(best.candidate.url, best.size, best.content_type, repeat, _why(best, checked))
    if not checked:
        return Choice(None, why="none found: no resource of the site's own on its page")
    reasons = "; ".join(f"{c.candidate.url} {c.why_not(max_bytes)}" for c in checked[:MAX_CHECKS])
    return Choice(None, why=f"none found: {len(checked)} checked ({reasons})")


def _why(c: Checked, checked: Sequence[Checked]) -> str:
    return (
        f"{c.candidate.kind}, {c.size} bytes, {c.content_type or 'no type'} "
        f"(best of {len(checked)} checked)"
    )


def describe(found: Found) -> str:
    """One line: what the page offered."""
    return (
        f"{found.total} resources: {len(found.candidates)} the site's own, "
        f"{found.third_party} on other sites, {found.unusable} without a usable URL"
    )


def from_page(observations: Observations, site_url: str) -> Found | None:
    """What the last page the system fetch loaded (status 200) offers, or None when it loaded
    none. An HTML page is parsed as stored (at most the store cap, 64 KiB); any other answer (an
    icon, a script) is itself the only candidate."""
    page = next(
        (
            h
            for h in reversed(observations.http)
            if h.role == "system" and h.failure is None and h.status_code == 200
        ),
        None,
    )
    if page is None:
        return None
    ctype = (page.header("content-type") or "").split(";")[0].strip().lower()
    if ctype in ("", "text/html", "application/xhtml+xml"):
        return candidates(page.body or "", page.url, site_url)
    host, site = urlsplit(page.url).hostname or "", urlsplit(site_url).hostname or ""
    kind = next((k for p, k in _TYPE_KINDS if ctype.startswith(p)), "media")
    c = Candidate(page.url, _kind_of(page.url, kind), 0, is_first_party(host, site))
    return Found((c,) if c.first_party else (), 0 if c.first_party else 1)


_TYPE_KINDS = (
    ("image/", "image"),
    ("video/", "media"),
    ("audio/", "media"),
    ("text/css", "style"),
    ("font/", "font"),
    ("application/javascript", "script"),
    ("text/javascript", "script"),
)
