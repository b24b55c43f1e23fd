"""Blockpage fingerprints in OONI's CSV format (ooni/blocking-fingerprints), and matching.

Contract: ``load(path)`` reads a CSV with OONI's columns (``name, scope, location_found,
pattern_type, pattern, ...``; CRLF or LF; multi-line quoted patterns) and raises
:class:`FingerprintError` naming the file, line and field when a row is unusable. ``builtin()``
is the project's own small set. Rows with scope ``fp`` mark known false positives and never
flag a blockpage. Matching is pure.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from probe.errors import FingerprintError
from probe.model import HTTPTransaction

PATTERN_TYPES = {"full", "prefix", "contains", "regexp"}


@dataclass(frozen=True, slots=True)
class Fingerprint:
    name: str
    scope: str
    location: str  # "dns", "body" or "header.<name>"
    pattern_type: str
    pattern: str
    confidence: int
    regex: re.Pattern[str] | None = None

    def matches(self, value: str) -> bool:
        if self.pattern_type == "full":
            return value == self.pattern
        if self.pattern_type == "prefix":
            return value.startswith(self.pattern)
        if self.pattern_type == "contains":
            return self.pattern in value
        assert self.regex is not None
        return self.regex.search(value) is not None


@dataclass(frozen=True, slots=True)
class FingerprintSet:
    dns: tuple[Fingerprint, ...] = ()
    http: tuple[Fingerprint, ...] = ()

    def __add__(self, other: FingerprintSet) -> FingerprintSet:
        return FingerprintSet(self.dns + other.dns, self.http + other.http)

    def match_dns(self, addrs: Iterable[str]) -> Fingerprint | None:
        wanted = set(addrs)
        for fp in self.dns:
            if fp.scope != "fp" and fp.pattern in wanted:
                return fp
        return None

    def match_http(self, tx: HTTPTransaction) -> Fingerprint | None:
        for fp in self.http:
            if fp.scope == "fp":
                continue
            if fp.location == "body":
                if tx.body and fp.matches(tx.body):
                    return fp
            elif fp.location.startswith("header."):
                value = tx.header(fp.location[len("header.") :])
                if value is not None and fp.matches(value):
                    return fp
        return None


def _rows(path: Path, text: str) -> FingerprintSet:
    dns: list[Fingerprint] = []
    http: list[Fingerprint] = []
    # The csv module's own line handling (newline=""), not str.splitlines: that also splits at
    # form feeds, NEL and U+2028, which a quoted or unquoted pattern may hold.
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = {"name", "scope", "location_found", "pattern_type", "pattern"} - set(
        reader.fieldnames or []
    )
    if missing:
        raise FingerprintError(f"{path}:1: missing column {sorted(missing)[0]!r}")
    for row in reader:
        line = reader.line_num
        ptype = (row.get("pattern_type") or "").strip()
        if ptype not in PATTERN_TYPES:
            raise FingerprintError(
                f"{path}:{line}: pattern_type: {ptype!r} is not one of "
                f"{', '.join(sorted(PATTERN_TYPES))}"
            )
        pattern = (row.get("pattern") or "").replace("\r\n", "\n")
        if not pattern:
            raise FingerprintError(f"{path}:{line}: pattern: empty")
        location = (row.get("location_found") or "").strip().lower()
        if location != "dns" and location != "body" and not location.startswith("header."):
            raise FingerprintError(
                f"{path}:{line}: location_found: {location!r} (dns, body or header.NAME)"
            )
        regex = None
        if ptype == "regexp":
            try:
                regex = re.compile(pattern)
            except re.error as exc:
                raise FingerprintError(f"{path}:{line}: pattern: bad regexp ({exc})") from None
        try:
            confidence = int(row.get("confidence_no_fp") or 5)
        except ValueError:
            raise FingerprintError(f"{path}:{line}: confidence_no_fp: not a number") from None
        fp = Fingerprint(
            (row.get("name") or "").strip(),
            (row.get("scope") or "").strip(),
            location,
            ptype,
            pattern,
            confidence,
            regex,
        )
        (dns if location == "dns" else http).append(fp)
    return FingerprintSet(tuple(dns), tuple(http))


def load(path: str | Path) -> FingerprintSet:
    """Load one OONI-format fingerprint CSV (DNS or HTTP rows, or both)."""
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise FingerprintError(f"{p}: cannot read ({exc})") from None
    return _rows(p, text)


@cache
def builtin() -> FingerprintSet:
    """The project's own fingerprints (``probe/data/fingerprints.csv``)."""
    ref = resources.files("probe") / "data" / "fingerprints.csv"
    return _rows(Path("probe/data/fingerprints.csv"), ref.read_text(encoding="utf-8"))
