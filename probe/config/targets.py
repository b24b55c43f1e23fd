"""Target lists: ``targets.yaml`` and Citizen Lab test-list CSV files, validated into Target values.

Contract: ``read_targets(path)`` returns a :class:`TargetList` of every usable entry, with one
:class:`TargetsError` per broken entry in ``problems`` (its ``str()`` the English line
``FILE:LINE: section[i].field: reason``, :meth:`~probe.errors.ProbeError.translated` the line in
a volunteer's language), so one bad entry never costs the others; it raises
:class:`TargetsError` (one line naming the file and, where known, the line) only for a file that
cannot be used at all: unreadable, over :data:`MAX_FILE_BYTES`, not YAML, or not a mapping of
``targets:`` and ``controls:`` lists.
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
from probe.errors import BadValue, ProbeError, TargetsError, URLError
from probe.model import TARGET_CLASSES
from probe.urls import check_url
from probe.words import N_

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
    # ``class:`` where the site is served from (probe.model.TARGET_CLASSES); None: from its edges
    target_class: str | None = msgspec.field(default=None, name="class")

    @property
    def interval_seconds(self) -> float | None:
        return None if self.interval is None else parse_duration(self.interval)

    def check(self) -> tuple[str, ProbeError] | None:
        """The first (field, problem) that makes this entry unusable, or None."""
        if not _NAME.match(self.name):
            return "name", BadValue(
                N_("must be 1-64 letters, digits, '.', '_' or '-', starting alnum")
            )
        for fname in ("url", "throughput_url"):
            value = getattr(self, fname)
            if value is not None:
                try:
                    check_url(value)
                except URLError as exc:
                    return fname, exc
        if self.category is not None and self.category not in CATEGORIES:
            return "category", BadValue(
                N_("unknown Citizen Lab category code {code}"), code=repr(self.category)
            )
        try:
            _ = self.interval_seconds
        except BadValue as exc:
            return "interval", exc
        if self.target_class is not None and self.target_class not in TARGET_CLASSES:
            return "class", BadValue(
                N_("unknown class {value} ({allowed})"),
                value=repr(self.target_class),
                allowed=", ".join(TARGET_CLASSES),
            )
        return None


@dataclass(frozen=True, slots=True)
class TargetList:
    """The usable entries of a target list, and one line for each entry that is not."""

    targets: tuple[Target, ...]
    controls: tuple[Target, ...]
    # One error per broken entry, the first MAX_PROBLEMS: str() is "FILE:LINE: section[i].field:
    # reason", .translated(gettext) the same line in a volunteer's language.
    problems: tuple[TargetsError, ...] = ()
    broken: int = 0  # every broken entry, listed in problems or not

    def select(self, names: Iterable[str]) -> TargetList:
        wanted = set(names)
        known = {t.name for t in (*self.targets, *self.controls)}
        missing = sorted(wanted - known)
        if missing:
            raise TargetsError(
                N_("--only: no target named {names}"), names=", ".join(map(repr, missing))
            )
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
            raise _too_big(self.path)
        return data


def _too_big(p: Path) -> TargetsError:
    return TargetsError(
        N_("{path}: larger than {cap} MiB; trim the list (the probe holds it in memory)"),
        path=p,
        cap=MAX_FILE_BYTES // 2**20,
    )


# libyaml's reasons for refusing a file, as a volunteer's mistakes produce them (a tab, a
# missing space after ':', an unclosed quote, a bad indent), marked so that the catalog
# translates them; any other reason is shown as libyaml gives it.
YAML_PROBLEMS = (
    N_("found character that cannot start any token"),
    N_("mapping values are not allowed in this context"),
    N_("found unexpected end of stream"),
    N_("did not find expected '-' indicator"),
    N_("did not find expected key"),
    N_("did not find expected ',' or ']'"),
    N_("did not find expected node content"),
    N_("could not find expected ':'"),
    N_("block sequence entries are not allowed in this context"),
    N_("found undefined tag handle"),
    N_("found incompatible YAML document"),
    N_("found invalid Unicode character escape code"),
    N_("exceeded maximum nesting depth"),
    N_("control characters are not allowed"),
    N_("invalid leading UTF-8 octet"),
    N_("invalid trailing UTF-8 octet"),
    N_("incomplete UTF-8 octet sequence"),
    N_("invalid YAML"),
)


def _reason(text: str) -> BadValue:
    """A reason given as text by another library (libyaml, msgspec): one line, translated
    where shown when the catalog knows it (:data:`YAML_PROBLEMS`), else kept as written."""
    return BadValue(" ".join(text.split()))


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

    def node(self, first: yaml.Event) -> yaml.Node | BadValue:
        """The node starting at ``first``, or the reason it is unusable (every event of the
        node is consumed either way)."""
        stack: list[tuple[yaml.Node, list[Any]]] = []
        ev, problem = first, None
        while True:
            if isinstance(ev, yaml.AliasEvent):
                problem = problem or BadValue(
                    N_("YAML aliases (*name) are not allowed in a target list")
                )
                made: yaml.Node | None = None
            elif isinstance(ev, yaml.ScalarEvent):
                tag = self._tag(yaml.ScalarNode, ev, ev.value)
                made = yaml.ScalarNode(tag, ev.value, _mark(ev.start_mark), None, ev.style)
            elif isinstance(ev, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                if len(stack) >= MAX_DEPTH:
                    problem = problem or BadValue(
                        N_("nested deeper than {depth} levels"), depth=MAX_DEPTH
                    )
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
                raise TargetsError(
                    N_("{path}: unexpected {event} in an entry"),
                    path=self.path,
                    event=type(ev).__name__,
                )
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
        raise TargetsError(N_("{path}: no such file"), path=p) from None
    except OSError as exc:
        raise _cannot_read(p, exc) from None
    with fh:
        if size > MAX_FILE_BYTES:
            raise _too_big(p)
        capped = _CappedReader(fh, p, MAX_FILE_BYTES)
        try:
            return _read(p, yaml.parse(capped, Loader=_YAML_LOADER))
        except yaml.YAMLError as exc:
            raise _yaml_problem(p, exc) from None
        except OSError as exc:
            raise _cannot_read(p, exc) from None


def _cannot_read(p: Path, exc: OSError) -> TargetsError:
    return TargetsError(N_("{path}: cannot read ({problem})"), path=p, problem=exc.strerror or exc)


def load_targets(path: str | Path) -> TargetList:
    """A target list with no broken entry, or TargetsError naming the first."""
    tl = read_targets(path)
    if tl.problems:
        raise tl.problems[0]
    return tl


def _yaml_problem(p: Path, exc: yaml.YAMLError) -> TargetsError:
    mark = getattr(exc, "problem_mark", None)
    where = f"{p}:{mark.line + 1}" if mark is not None else str(p)
    problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or "invalid YAML"
    return TargetsError(N_("{where}: {problem}"), where=where, problem=_reason(str(problem)))


def _read(p: Path, events: Iterator[yaml.Event]) -> TargetList:
    r = _Reader(p, events)
    shape = TargetsError(
        N_("{path}: expected a mapping with 'targets:' and 'controls:' lists"), path=p
    )
    ev = r.next()  # StreamStartEvent
    ev = r.next()
    if not isinstance(ev, yaml.DocumentStartEvent):
        raise shape
    ev = r.next()
    if not isinstance(ev, yaml.MappingStartEvent):
        raise shape
    sections: dict[str, list[Target]] = {"targets": [], "controls": []}
    problems: list[TargetsError] = []
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
                N_("{path}: unknown top-level key {key} (targets, controls, intervals)"),
                path=p,
                key=repr(shown),
            )
        section = key.value
        ev = r.next()
        if isinstance(ev, yaml.ScalarEvent) and ev.value in ("", "~", "null") and ev.implicit[0]:
            continue
        if not isinstance(ev, yaml.SequenceStartEvent):
            raise TargetsError(N_("{path}: '{section}:' must be a list"), path=p, section=section)
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
        raise TargetsError(N_("{path}: expected one YAML document, found more"), path=p)
    if not entries:
        raise TargetsError(N_("{path}: 'targets:' is empty"), path=p)
    if intervals:
        for listed in sections.values():
            for i, t in enumerate(listed):
                tagged = [intervals[g] for g in t.tags if g in intervals]
                if t.interval is None and tagged:
                    listed[i] = msgspec.structs.replace(t, interval=min(tagged))
    return TargetList(
        tuple(sections["targets"]), tuple(sections["controls"]), tuple(problems), broken
    )


def _intervals(p: Path, r: _Reader, node: yaml.Node | BadValue) -> dict[str, float]:
    """``intervals:``, a mapping of tag to mean gap: a target with no ``interval`` of its own
    takes the shortest of its tags'. Unlike one broken entry, a broken line here would change
    the schedule of every target with the tag, so it makes the file unusable."""
    if isinstance(node, BadValue):
        raise TargetsError(N_("{path}: intervals: {problem}"), path=p, problem=node)
    not_a_map = N_("{where}: 'intervals:' must map tags to durations (news: 6h)")
    if not isinstance(node, yaml.MappingNode):
        raise TargetsError(not_a_map, where=f"{p}:{node.start_mark.line + 1}")
    out: dict[str, float] = {}
    for k, v in node.value:
        line = f"{p}:{k.start_mark.line + 1}"
        if not isinstance(k, yaml.ScalarNode):
            raise TargetsError(not_a_map, where=line)
        value = r.loader.construct_document(v) if isinstance(v, yaml.ScalarNode) else v
        try:
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                if isinstance(value, yaml.Node):
                    raise BadValue(N_("not a duration (e.g. 45m, 6h, 90s)"))
                raise BadValue(
                    N_("{value} is not a duration (e.g. 45m, 6h, 90s)"), value=repr(value)
                )
            out[k.value] = parse_duration(value)
        except BadValue as exc:
            raise TargetsError(
                N_("{where}: intervals.{tag}: {problem}"), where=line, tag=k.value, problem=exc
            ) from None
    return out


def _entry(
    path: Path, section: str, i: int, r: _Reader, node: yaml.Node | BadValue, names: set[str]
) -> Target | TargetsError:
    """A Target, or the one-line problem that makes the entry unusable."""
    if isinstance(node, BadValue):
        return TargetsError(N_("{where}: {problem}"), where=f"{path}: {section}[{i}]", problem=node)
    where = f"{path}:{node.start_mark.line + 1}: {section}[{i}]"
    if not isinstance(node, yaml.MappingNode):
        return TargetsError(
            N_("{where}: each entry must be a mapping with name and url"), where=where
        )
    try:
        raw = r.loader.construct_document(
            node
        )  # forgets the nodes it built, unlike construct_object
    except yaml.YAMLError as exc:
        reason = _reason(str(getattr(exc, "problem", None) or exc))
        return TargetsError(N_("{where}: {problem}"), where=where, problem=reason)
    raw = {str(k): v for k, v in raw.items()}
    if isinstance(raw.get("category"), str):  # a handful of codes shared by many entries
        raw["category"] = sys.intern(raw["category"])
    if "is_control" in raw:
        return TargetsError(
            N_("{where}.is_control: not a target field (use the 'controls:' list)"), where=where
        )
    try:
        target = msgspec.convert({**raw, "is_control": section == "controls"}, type=Target)
    except msgspec.ValidationError as exc:
        text = str(exc)
        m = _FIELD.search(text)
        field = next((g for g in m.groups() if g), "entry") if m else "entry"
        return TargetsError(
            N_("{where}.{field}: {problem}"), where=where, field=field, problem=_msgspec(text)
        )
    problem = target.check()
    if problem is not None:
        return TargetsError(
            N_("{where}.{field}: {problem}"), where=where, field=problem[0], problem=problem[1]
        )
    if target.name in names:
        return TargetsError(
            N_("{where}.name: {name} is used twice (names must be unique)"),
            where=where,
            name=repr(target.name),
        )
    return target


_EXPECTED = re.compile(r"^Expected ('[^']*'), got ('[^']*')$")


def _msgspec(text: str) -> BadValue:
    """msgspec's reason for refusing an entry, in words a volunteer reads (and translated)."""
    msg = text.split(" - at ")[0].replace("`", "'")
    if msg.startswith("Object contains unknown field"):
        allowed = "name, url, category, throughput_url, tags, notes, interval, class"
        return BadValue(N_("unknown field (allowed: {allowed})"), allowed=allowed)
    if msg.startswith("Object missing required field"):
        return BadValue(N_("missing (every entry needs name and url)"))
    m = _EXPECTED.match(msg)
    if m is not None:
        return BadValue(N_("Expected {expected}, got {got}"), expected=m[1], got=m[2])
    return _reason(msg)


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
        raise _cannot_read(p, exc) from None
    if len(data) > MAX_FILE_BYTES:
        raise _too_big(p)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise TargetsError(
            N_("{where}: not UTF-8 text (byte {byte}); save it as UTF-8"),
            where=f"{p}:{line}",
            byte=f"0x{data[exc.start]:02x}",
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
            raise TargetsError(
                N_("{where}: header must have a 'url' column (Citizen Lab format)"),
                where=f"{p}:1",
            )
        for lineno, row in _rows(p, reader):
            url = (row.get("url") or "").strip()
            try:
                check_url(url)
            except URLError as exc:
                raise TargetsError(
                    N_("{where}: url: {problem}"), where=f"{p}:{lineno}", problem=exc
                ) from None
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
                    raise TargetsError(
                        N_("{where}: category_code: unknown code {code}"),
                        where=f"{p}:{lineno}",
                        code=repr(code),
                    )
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
            raise TargetsError(
                N_("{where}: {problem}"), where=f"{p}:{max(line, reader.line_num)}", problem=exc
            ) from None
        yield line, row
        line = reader.line_num + 1
