"""Target lists: ``targets.yaml`` and Citizen Lab test-list CSV files, validated into Target values.

Contract: ``load_targets(path)`` returns a :class:`TargetList` or raises :class:`TargetsError`
whose message is one line naming the file, the line and the field that is wrong. Names are unique
across targets and controls; URLs are http(s) with a host.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec
import yaml

from probe.errors import InputError

# Citizen Lab category codes (both the original and the 2024 codes), with our short labels.
CATEGORIES: dict[str, str] = {
    "ALDR": "Alcohol & drugs",
    "REL": "Religion",
    "PORN": "Pornography",
    "PROV": "Provocative attire",
    "POLR": "Political criticism",
    "HUMR": "Human rights",
    "ENV": "Environment",
    "MILX": "Terrorism and militants",
    "HATE": "Hate speech",
    "NEWS": "News media",
    "XED": "Sex education",
    "PUBH": "Public health",
    "GMB": "Gambling",
    "ANON": "Circumvention tools",
    "DATE": "Online dating",
    "GRP": "Social networking",
    "LGBT": "LGBTQ+",
    "FILE": "File sharing",
    "HACK": "Hacking tools",
    "COMT": "Communication tools",
    "MMED": "Media sharing",
    "HOST": "Hosting and blogging",
    "SRCH": "Search engines",
    "GAME": "Gaming",
    "CULTR": "Culture",
    "ECON": "Economics",
    "GOVT": "Government",
    "COMM": "E-commerce",
    "CTRL": "Control content",
    "IGO": "Intergovernmental organisations",
    "MISC": "Miscellaneous",
    "FEXP": "Freedom of expression",
    "POLT": "Political transformation",
    "MINF": "Minority faiths",
    "MINR": "Minority rights",
    "USMIL": "US military",
    "WOM": "Women's rights",
    "SEX": "Sex",
    "FAMR": "Family relations",
    "ALC": "Alcohol",
    "DRUG": "Drugs",
    "ALT": "Alternative lifestyles",
    "PROXY": "Proxies",
    "IMMI": "Immigration",
    "MEDT": "Medical",
    "TECH": "Technology",
    "BLOG": "Blogs",
    "EMAIL": "Email",
    "SOC": "Social",
    "INTL": "International",
    "RELG": "Religion (old)",
}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class TargetsError(InputError):
    """A targets file is unusable; the message names file, line and field."""


class Target(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    name: str
    url: str
    category: str | None = None
    throughput_url: str | None = None
    tags: tuple[str, ...] = ()
    notes: str | None = None
    is_control: bool = False
    interval: str | float | None = None  # the daemon's mean gap for this target (e.g. "6h")

    @property
    def interval_seconds(self) -> float | None:
        from probe.settings import parse_duration

        return None if self.interval is None else parse_duration(self.interval)

    def check(self) -> tuple[str, str] | None:
        """The first (field, problem) that makes this entry unusable, or None."""
        if not _NAME.match(self.name):
            return "name", "must be 1-64 letters, digits, '.', '_' or '-', starting alnum"
        for fname in ("url", "throughput_url"):
            value = getattr(self, fname)
            if value is not None:
                try:
                    check_url(value)
                except ValueError as exc:
                    return fname, str(exc)
        if self.category is not None and self.category not in CATEGORIES:
            return "category", f"unknown Citizen Lab category code {self.category!r}"
        try:
            _ = self.interval_seconds
        except ValueError as exc:
            return "interval", str(exc)
        return None


def check_url(v: str) -> None:
    parts = urlsplit(v)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{v!r} must start with http:// or https://")
    if not parts.hostname:
        raise ValueError(f"{v!r} has no host")
    try:
        _ = parts.port
    except ValueError:
        raise ValueError(f"{v!r} has a bad port") from None


@dataclass(frozen=True, slots=True)
class TargetList:
    targets: tuple[Target, ...]
    controls: tuple[Target, ...]

    def select(self, names: Iterable[str]) -> TargetList:
        wanted = set(names)
        known = {t.name for t in (*self.targets, *self.controls)}
        missing = sorted(wanted - known)
        if missing:
            raise TargetsError(f"--only: no target named {', '.join(map(repr, missing))}")
        return TargetList(tuple(t for t in self.targets if t.name in wanted), self.controls)


class _LineLoader(yaml.SafeLoader):
    """A safe loader that remembers the line of every mapping (as key ``__line__``)."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping: dict[str, Any] = {
        str(k): v for k, v in loader.construct_mapping(node, deep=True).items()
    }
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


_FIELD = re.compile(r"`\$\.(\w+)`|field `(\w+)`")


def _entry(path: Path, section: str, i: int, raw: Any, is_control: bool) -> Target:
    if not isinstance(raw, dict):
        raise TargetsError(
            f"{path}: {section}[{i}]: each entry must be a mapping with name and url"
        )
    line = raw.pop("__line__", "?")
    where = f"{path}:{line}: {section}[{i}]"
    if "is_control" in raw:
        raise TargetsError(f"{where}.is_control: not a target field (use the 'controls:' list)")
    try:
        target = msgspec.convert({**raw, "is_control": is_control}, type=Target)
    except msgspec.ValidationError as exc:
        text = str(exc)
        m = _FIELD.search(text)
        field = next((g for g in m.groups() if g), "entry") if m else "entry"
        msg = text.split(" - at ")[0].replace("`", "'")
        if msg.startswith("Object contains unknown field"):
            allowed = "name, url, category, throughput_url, tags, notes, interval"
            msg = f"unknown field (allowed: {allowed})"
        elif msg.startswith("Object missing required field"):
            msg = "missing (every entry needs name and url)"
        raise TargetsError(f"{where}.{field}: {msg}") from None
    problem = target.check()
    if problem is not None:
        raise TargetsError(f"{where}.{problem[0]}: {problem[1]}")
    return target


def load_targets(path: str | Path) -> TargetList:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TargetsError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TargetsError(f"{p}: cannot read ({exc})") from None
    try:
        doc = yaml.load(text, Loader=_LineLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{p}:{mark.line + 1}" if mark is not None else str(p)
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise TargetsError(f"{where}: {problem}") from None
    if not isinstance(doc, dict):
        raise TargetsError(f"{p}: expected a mapping with 'targets:' and 'controls:' lists")
    doc.pop("__line__", None)
    unknown = sorted(set(doc) - {"targets", "controls"})
    if unknown:
        raise TargetsError(f"{p}: unknown top-level key {unknown[0]!r} (targets, controls)")
    sections: dict[str, list[Target]] = {"targets": [], "controls": []}
    for section in ("targets", "controls"):
        raw = doc.get(section) or []
        if not isinstance(raw, list):
            raise TargetsError(f"{p}: '{section}:' must be a list")
        for i, item in enumerate(raw):
            sections[section].append(_entry(p, section, i, item, section == "controls"))
    if not sections["targets"]:
        raise TargetsError(f"{p}: 'targets:' is empty")
    seen: set[str] = set()
    for t in (*sections["targets"], *sections["controls"]):
        if t.name in seen:
            raise TargetsError(f"{p}: name {t.name!r} is used twice (names must be unique)")
        seen.add(t.name)
    return TargetList(tuple(sections["targets"]), tuple(sections["controls"]))


def name_for(url: str) -> str:
    host = (urlsplit(url).hostname or "site").lower().removeprefix("www.")
    path = urlsplit(url).path.strip("/")
    base = re.sub(r"[^a-z0-9._-]+", "-", host)
    if path:
        base += "-" + re.sub(r"[^a-z0-9._-]+", "-", path.lower())[:20].strip("-")
    return base[:64].strip("-.") or "site"


def import_citizenlab_csv(
    path: str | Path, existing: TargetList | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Entries for targets.yaml from a Citizen Lab CSV; returns (entries, duplicates skipped)."""
    p = Path(path)
    try:
        fh = p.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise TargetsError(f"{p}: cannot read ({exc})") from None
    seen_urls = set()
    names = set()
    if existing is not None:
        for t in (*existing.targets, *existing.controls):
            seen_urls.add(t.url.rstrip("/"))
            names.add(t.name)
    out: list[dict[str, Any]] = []
    skipped = 0
    with fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or "url" not in reader.fieldnames:
            raise TargetsError(f"{p}:1: header must have a 'url' column (Citizen Lab format)")
        for lineno, row in enumerate(reader, start=2):
            url = (row.get("url") or "").strip()
            try:
                check_url(url)
            except ValueError as exc:
                raise TargetsError(f"{p}:{lineno}: url: {exc}") from None
            if url.rstrip("/") in seen_urls:
                skipped += 1
                continue
            seen_urls.add(url.rstrip("/"))
            name = name_for(url)
            base, n = name, 2
            while name in names:
                name = f"{base[:60]}-{n}"
                n += 1
            names.add(name)
            entry: dict[str, Any] = {"name": name, "url": url}
            code = (row.get("category_code") or "").strip()
            if code:
                if code not in CATEGORIES:
                    raise TargetsError(f"{p}:{lineno}: category_code: unknown code {code!r}")
                entry["category"] = code
            notes = (row.get("notes") or "").strip()
            if notes:
                entry["notes"] = notes
            out.append(entry)
    return out, skipped
