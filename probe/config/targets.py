"""Target lists: ``targets.yaml`` and Citizen Lab test-list CSV files, validated into Target values.

Contract: ``read_targets(path)`` returns a :class:`TargetList` of every usable entry, with one
line per broken entry in ``problems`` (``FILE:LINE: section[i].field: reason``), so one bad entry
never costs the others; it raises :class:`TargetsError` (one line naming the file and, where
known, the line) only for a file that cannot be used at all: unreadable, over
:data:`MAX_FILE_BYTES`, not YAML, or not a mapping of ``targets:`` and ``controls:`` lists.
``load_targets(path)`` is the strict form: any broken entry is an error. The file is read as a
stream of YAML events, so memory holds the entries, not the file's node tree. Names are unique
across targets and controls (a later duplicate is the broken one); URLs pass
:func:`probe.urls.check_url`, the validator every command shares.
"""

from __future__ import annotations

import csv
import io
import os
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import msgspec
import yaml

from probe.config.parse import parse_duration
from probe.errors import TargetsError, URLError
from probe.urls import check_url

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


class Target(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True, gc=False
):  # gc=False: text fields only, no cycles; 100,000 of them stay out of the collector's walks
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
                except URLError as exc:
                    return fname, str(exc)
        if self.category is not None and self.category not in CATEGORIES:
            return "category", f"unknown Citizen Lab category code {self.category!r}"
        try:
            _ = self.interval_seconds
        except ValueError as exc:
            return "interval", str(exc)
        return None


@dataclass(frozen=True, slots=True)
class TargetList:
    """The usable entries of a target list, and one line for each entry that is not."""

    targets: tuple[Target, ...]
    controls: tuple[Target, ...]
    problems: tuple[str, ...] = ()  # "FILE:LINE: section[i].field: reason", the first MAX_PROBLEMS
    broken: int = 0  # every broken entry, listed in problems or not

    def select(self, names: Iterable[str]) -> TargetList:
        wanted = set(names)
        known = {t.name for t in (*self.targets, *self.controls)}
        missing = sorted(wanted - known)
        if missing:
            raise TargetsError(f"--only: no target named {', '.join(map(repr, missing))}")
        return replace(self, targets=tuple(t for t in self.targets if t.name in wanted))


MAX_FILE_BYTES = 16 * 2**20  # about 200,000 plain entries; the probe keeps every entry in memory
MAX_DEPTH = 16  # an entry needs three levels (entry, tags, tag); libyaml stops at 1000
MAX_PROBLEMS = 1000
_YAML_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_FIELD = re.compile(r"`\$\.(\w+)`|field `(\w+)`")


class _CappedReader(io.RawIOBase):
    """A file that fails once more than ``cap`` bytes were read (a FIFO has no size to stat)."""

    def __init__(self, fh: BinaryIO, path: Path, cap: int) -> None:
        self.fh, self.path, self.cap, self.seen = fh, path, cap, 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.fh.read(size)
        self.seen += len(data)
        if self.seen > self.cap:
            raise TargetsError(_too_big(self.path))
        return data


def _too_big(p: Path) -> str:
    cap = MAX_FILE_BYTES // 2**20
    return f"{p}: larger than {cap} MiB; trim the list (the probe holds it in memory)"


def _mark(mark: Any) -> Any:
    """libyaml's marks and PyYAML's have the same fields; the types differ in name only."""
    return mark


class _Reader:
    """Entries of a YAML target list, one at a time: libyaml's events are composed into one
    entry's nodes and built by PyYAML's own safe constructor, so memory does not grow with
    the file (a whole-file node tree took 580 MB for 100,000 entries) and nesting is bounded."""

    def __init__(self, path: Path, events: Iterator[yaml.Event]) -> None:
        self.path = path
        self.events = events
        self.loader = yaml.SafeLoader("")  # its resolver and constructor, on our nodes

    def next(self) -> yaml.Event:
        return next(self.events)

    def _tag(self, kind: type[yaml.Node], ev: Any, value: str | None) -> str:
        """The event's explicit tag, else the one PyYAML's resolver gives (int, bool, str...)."""
        if ev.tag not in (None, "!"):
            return str(ev.tag)
        resolve: Any = self.loader.resolve
        return str(resolve(kind, value, ev.implicit))

    def node(self, first: yaml.Event) -> yaml.Node | str:
        """The node starting at ``first``, or the reason it is unusable (every event of the
        node is consumed either way)."""
        stack: list[tuple[yaml.Node, list[Any]]] = []
        ev, problem = first, ""
        while True:
            if isinstance(ev, yaml.AliasEvent):
                problem = problem or "YAML aliases (*name) are not allowed in a target list"
                made: yaml.Node | None = None
            elif isinstance(ev, yaml.ScalarEvent):
                tag = self._tag(yaml.ScalarNode, ev, ev.value)
                made = yaml.ScalarNode(tag, ev.value, _mark(ev.start_mark), None, ev.style)
            elif isinstance(ev, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                if len(stack) >= MAX_DEPTH:
                    problem = problem or f"nested deeper than {MAX_DEPTH} levels"
                kind = (
                    yaml.MappingNode
                    if isinstance(ev, yaml.MappingStartEvent)
                    else yaml.SequenceNode
                )
                items: list[Any] = []
                tag = self._tag(kind, ev, None)
                stack.append((kind(tag, items, _mark(ev.start_mark), None, ev.flow_style), items))
                ev = self.next()
                continue
            elif isinstance(ev, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                made, _ = stack.pop()
                if isinstance(made, yaml.MappingNode):
                    flat = made.value
                    made.value = list(zip(flat[::2], flat[1::2], strict=True))
            else:  # document or stream events cannot occur inside a node
                raise TargetsError(f"{self.path}: unexpected {type(ev).__name__} in an entry")
            if not stack:
                return problem or made  # type: ignore[return-value]
            stack[-1][1].append(made)
            ev = self.next()


def read_targets(path: str | Path) -> TargetList:
    """Every usable entry of a YAML target list, and a one-line problem for each broken one.

    Raises TargetsError for a file that cannot be used at all: unreadable, over
    MAX_FILE_BYTES, not YAML, not a mapping of ``targets:`` and ``controls:`` lists, no entry
    under ``targets:``."""
    p = Path(path)
    try:
        fh = p.open("rb")
        size = os.fstat(fh.fileno()).st_size
    except FileNotFoundError:
        raise TargetsError(f"{p}: no such file") from None
    except OSError as exc:
        raise TargetsError(f"{p}: cannot read ({exc.strerror or exc})") from None
    with fh:
        if size > MAX_FILE_BYTES:
            raise TargetsError(_too_big(p))
        capped = _CappedReader(fh, p, MAX_FILE_BYTES)
        try:
            return _read(p, yaml.parse(capped, Loader=_YAML_LOADER))
        except yaml.YAMLError as exc:
            raise TargetsError(_yaml_problem(p, exc)) from None
        except OSError as exc:
            raise TargetsError(f"{p}: cannot read ({exc.strerror or exc})") from None


def load_targets(path: str | Path) -> TargetList:
    """A target list with no broken entry, or TargetsError naming the first."""
    tl = read_targets(path)
    if tl.problems:
        raise TargetsError(tl.problems[0])
    return tl


def _yaml_problem(p: Path, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f"{p}:{mark.line + 1}" if mark is not None else str(p)
    problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or "invalid YAML"
    return f"{where}: {' '.join(str(problem).split())}"


def _read(p: Path, events: Iterator[yaml.Event]) -> TargetList:
    r = _Reader(p, events)
    shape = f"{p}: expected a mapping with 'targets:' and 'controls:' lists"
    ev = r.next()  # StreamStartEvent
    ev = r.next()
    if not isinstance(ev, yaml.DocumentStartEvent):
        raise TargetsError(shape)
    ev = r.next()
    if not isinstance(ev, yaml.MappingStartEvent):
        raise TargetsError(shape)
    sections: dict[str, list[Target]] = {"targets": [], "controls": []}
    problems: list[str] = []
    broken = 0
    names: set[str] = set()
    entries = 0
    intervals: dict[str, float] = {}
    while not isinstance(ev := r.next(), yaml.MappingEndEvent):
        key = r.node(ev)
        if isinstance(key, yaml.ScalarNode) and key.value == "intervals":
            intervals = _intervals(p, r, r.node(r.next()))
            continue
        if not isinstance(key, yaml.ScalarNode) or key.value not in sections:
            shown = key.value if isinstance(key, yaml.ScalarNode) else "?"
            raise TargetsError(
                f"{p}: unknown top-level key {shown!r} (targets, controls, intervals)"
            )
        section = key.value
        ev = r.next()
        if isinstance(ev, yaml.ScalarEvent) and ev.value in ("", "~", "null") and ev.implicit[0]:
            continue
        if not isinstance(ev, yaml.SequenceStartEvent):
            raise TargetsError(f"{p}: '{section}:' must be a list")
        i = 0
        while not isinstance(ev := r.next(), yaml.SequenceEndEvent):
            entries += section == "targets"
            got = _entry(p, section, i, r, r.node(ev), names)
            if isinstance(got, Target):
                sections[section].append(got)
                names.add(got.name)
            else:
                broken += 1
                if len(problems) < MAX_PROBLEMS:
                    problems.append(got)
            i += 1
    ev = r.next()  # DocumentEndEvent
    if not isinstance(r.next(), yaml.StreamEndEvent):
        raise TargetsError(f"{p}: expected one YAML document, found more")
    if not entries:
        raise TargetsError(f"{p}: 'targets:' is empty")
    if intervals:
        for listed in sections.values():
            for i, t in enumerate(listed):
                tagged = [intervals[g] for g in t.tags if g in intervals]
                if t.interval is None and tagged:
                    listed[i] = msgspec.structs.replace(t, interval=min(tagged))
    return TargetList(
        tuple(sections["targets"]), tuple(sections["controls"]), tuple(problems), broken
    )


def _intervals(p: Path, r: _Reader, node: yaml.Node | str) -> dict[str, float]:
    """``intervals:``, a mapping of tag to mean gap: a target with no ``interval`` of its own
    takes the shortest of its tags'. Unlike one broken entry, a broken line here would change
    the schedule of every target with the tag, so it makes the file unusable."""
    if isinstance(node, str):
        raise TargetsError(f"{p}: intervals: {node}")
    where = f"{p}:{node.start_mark.line + 1}"
    if not isinstance(node, yaml.MappingNode):
        raise TargetsError(f"{where}: 'intervals:' must map tags to durations (news: 6h)")
    out: dict[str, float] = {}
    for k, v in node.value:
        line = f"{p}:{k.start_mark.line + 1}"
        if not isinstance(k, yaml.ScalarNode):
            raise TargetsError(f"{line}: 'intervals:' must map tags to durations (news: 6h)")
        value = r.loader.construct_document(v) if isinstance(v, yaml.ScalarNode) else v
        try:
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                if isinstance(value, yaml.Node):
                    raise ValueError("not a duration (e.g. 45m, 6h, 90s)")
                raise ValueError(f"{value!r} is not a duration (e.g. 45m, 6h, 90s)")
            out[k.value] = parse_duration(value)
        except ValueError as exc:
            raise TargetsError(f"{line}: intervals.{k.value}: {exc}") from None
    return out


def _entry(
    path: Path, section: str, i: int, r: _Reader, node: yaml.Node | str, names: set[str]
) -> Target | str:
    """A Target, or the one-line problem that makes the entry unusable."""
    if isinstance(node, str):
        return f"{path}: {section}[{i}]: {node}"
    where = f"{path}:{node.start_mark.line + 1}: {section}[{i}]"
    if not isinstance(node, yaml.MappingNode):
        return f"{where}: each entry must be a mapping with name and url"
    try:
        raw = r.loader.construct_document(
            node
        )  # forgets the nodes it built, unlike construct_object
    except yaml.YAMLError as exc:
        return f"{where}: {' '.join(str(getattr(exc, 'problem', None) or exc).split())}"
    raw = {str(k): v for k, v in raw.items()}
    if isinstance(raw.get("category"), str):  # a handful of codes shared by many entries
        raw["category"] = sys.intern(raw["category"])
    if "is_control" in raw:
        return f"{where}.is_control: not a target field (use the 'controls:' list)"
    try:
        target = msgspec.convert({**raw, "is_control": section == "controls"}, type=Target)
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
        return f"{where}.{field}: {msg}"
    problem = target.check()
    if problem is not None:
        return f"{where}.{problem[0]}: {problem[1]}"
    if target.name in names:
        return f"{where}.name: {target.name!r} is used twice (names must be unique)"
    return target


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
        with p.open("rb") as raw:
            data = raw.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise TargetsError(f"{p}: cannot read ({exc.strerror or exc})") from None
    if len(data) > MAX_FILE_BYTES:
        raise TargetsError(_too_big(p))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise TargetsError(
            f"{p}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); save it as UTF-8"
        ) from None
    fh = io.StringIO(text, newline="")
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
        for lineno, row in _rows(p, reader):
            url = (row.get("url") or "").strip()
            try:
                check_url(url)
            except URLError as exc:
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


def _rows(p: Path, reader: csv.DictReader[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line where the row starts, row); a malformed row is a TargetsError naming its line."""
    line = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise TargetsError(f"{p}:{max(line, reader.line_num)}: {exc}") from None
        yield line, row
        line = reader.line_num + 1
