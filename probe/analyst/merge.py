"""``probe merge``: several volunteers' databases joined into one, trusting none of them.

Contract: :func:`merge` checks every source before it writes anything (each must be a probe
database: a missing file, a file that is not SQLite, one whose ``measurements``, ``rounds`` or
``bodies`` is not a plain table or has a computed column, or one made by a newer probe is
refused with one line naming it), then copies each source into the output (created, or added
to), one transaction per source, and returns one line per source ("N measurements added, M
already there, Q quarantined", and notes) and a total. A source SQLite cannot read to the end (a
corrupt page) is rolled back whole and said in one quarantine row; the others are merged.

A source is never executed and never migrated, not even a copy of it: it is opened read-only
and immutable (``?mode=ro&immutable=1``: no lock, no -shm, its -wal file left unread and the
line says so) with ``PRAGMA trusted_schema = OFF``, and only the known columns of the known
tables (``measurements``, ``rounds``, ``bodies``, and ``meta``'s device id and
``_sqlite_migrations``' names) are read, by name, whatever the source's schema version: no
trigger, view or function of a source runs. Columns an older schema lacks read as NULL; a
source older than m003 gets m003's scrub of header values here, as its migration would have.

Every row is validated (msgspec: :class:`MeasurementRow`, :class:`RoundRow`,
:class:`BodyRow`, one Struct per table's columns; the JSON columns decoded into the typed
records exports read, with no field the records do not know, every number within 64 bits and
finite; ``started_at`` a UTC time in the stored form; and the current classifier replayed over
it, as ``reclassify`` would). A bad row goes to the output's ``quarantine`` table (the source's
device id, never its file name; the table; the row's id; the reason; a kind) and the rest is
merged. The quarantine table is made by the merge itself, in fleet databases only (no
volunteer's database ever has one; see :data:`QUARANTINE_SQL`).

Bodies: each is inflated within its cap and its SHA-256 recomputed. A body whose content
hashes to its key is *verified* and shared by every measurement naming it. One that does not
can be honest only when its measurement's page was larger than the prefix every probe stores
(:data:`STORED_PREFIX`), or its text was decoded from another charset or with replacement
characters; any other mismatch is refused. An unverified body is taken only if the output holds
nothing else under its key; a verified one replaces an unverified one. A refused or clashing
body is quarantined with every measurement of the source that names it. A body no measurement
of its source names is not merged (quarantined as such).

Identity is device-scoped: a measurement is (its device, its id). The same device's row again
is "already there" (its verdict may have been reclassified since: the measured facts, its
observations, start, target and URL, must be the same). Of two claims to one id (another
device's, or the same device's with other measured facts), the one its device *signed* (its
source's chain verifies for the device and a signed head covers its place) stays, whichever
file comes first, and the other is quarantined (kind ``lost``): a head commits to every record
before it, and only the device's key makes one. Two claims alike (neither signed, or both) are
*disputed*: no claim to it stays in the output (one merged before is taken out), every claim is
quarantined, and later merges keep it out. Honest ids hold a random UUID, so a clash is never
honest, and without a signed chain the merge cannot tell the squatter from the victim:
first-file-wins would let a squatter replace a volunteer's evidence, and keeping both would
mean renaming one (the id is what exports, ``reclassify`` and the chain name a measurement
by). Rows a source's own probe made
without a device id get that source's; imported OONI rows keep none. A device id is a claim
until the device's chain verifies: a source may label rows with another's device id.

Caps (:class:`Caps`, the defaults written here): ``row_bytes`` 16 MiB per measurement or round
row, all its columns together (larger rows are never loaded); ``body_bytes`` 1 MiB per body,
compressed and inflated (a zlib bomb is stopped there); ``source_bytes`` 8 GiB of rows and
bodies read per source (past it the rest of the source is left unread, said in quarantine and
on the line); ``quarantine_rows`` 1000 quarantine rows per source (one more row says how many
problems were not listed).

Chains (m010, :mod:`probe.evidence`): each source's chains are checked before anything of it is
merged, by ``probe verify``'s own checks (:func:`probe.analyst.verify.check` on the read-only,
immutable source connection), and its line names each device key: "its chain verifies", or "its
chain does not verify (2 reordered, ...)". The chain columns (``device_key``, ``seq``,
``chain_prev``, ``record_hash``, ``chain_hash``, ``body_digests``) are carried as the device
stored them, and a chained row's ``device_id`` is never filled in (the record hash covers both).
A source's signed heads are carried when they hold (of two heads of one device, kind and label,
the later place stays), and so are its prune records (m011) that hold. The measurements of a
device whose chain does not verify are merged *as stored* and marked: one
``unverified_measurements`` row each, one ``chain_problems`` row per problem found (both
fleet-only tables, see :data:`CHAIN_PROBLEMS_SQL`). Merged as stored, not quarantined, because
the evidence of the tampering is the rows themselves: quarantined, an altered record would show
in the fleet as a removed one, and ``probe verify FLEET.db`` could no longer name what was done
to it; carried unchanged, the fleet's verification names the same measurements as the source's
did, and every row stays readable by exports and ``reclassify`` (one seen again from a source
whose chain verifies and a signed head covers is no longer marked). Measurements its source stored
before its chain began (a source made before m010, or listed by its migration) are listed in the
fleet's ``unchained_measurements``; any other without a place in a chain is not. Two
measurements claiming one place of one device's chain (``device_key``, ``seq``): the claim its
device signed (its source's chain verifies and a signed head covers the place) stays and the
other is quarantined; two claims alike are disputed as two claims to one id are (neither stays,
both quarantined, the place too, ``tbl`` ``chain``, and later merges keep it out), as for ids.
Not yet: caps on what the chain check reads of a source (it streams, but reads each row whole).
Nothing else is copied: no other table, no source's ``meta``, no file name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import sqlite3
import types
import typing
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from probe.analyst import verify as verify_mod
from probe.classify import classify
from probe.classify.throughput import analyse
from probe.errors import MergeError
from probe.evidence import heads as heads_mod
from probe.evidence import pruned as pruned_mod
from probe.failures import scrub
from probe.model import ControlEvidence, HTTPTransaction, Observations, ThroughputRecord
from probe.store import Store, migrations
from probe.store._lazy import without_numpy
from probe.words import N_

with without_numpy():
    from sqlite_utils import Database

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Caps:
    """The merge's size caps (the module's contract says what each covers)."""

    row_bytes: int = 16 * MiB
    body_bytes: int = 1 * MiB
    source_bytes: int = 8 * 1024 * MiB
    quarantine_rows: int = 1000


# Every probe, the test helper and the OONI importer store at most this much of a page's body
# (probe.measure.config.MeasureConfig.store_cap, 64 KiB; the importer's 65536 characters): a
# page read larger than it is stored as a prefix, which cannot hash to the page's SHA-256.
STORED_PREFIX = 64 * 1024

QUARANTINE_SQL = (
    """CREATE TABLE IF NOT EXISTS quarantine (
    source TEXT NOT NULL,  -- the source's device id ('?' unknown), never its file name
    tbl TEXT NOT NULL,     -- measurements, rounds, bodies, or '' for the source itself
    row_id TEXT NOT NULL,  -- the row's id (a body's SHA-256), at most 200 characters
    kind TEXT NOT NULL,    -- invalid, body, disputed, lost, orphan, cap, more
    reason TEXT NOT NULL,
    UNIQUE (source, tbl, row_id, kind)
)""",
    "CREATE INDEX IF NOT EXISTS quarantine_row ON quarantine (row_id, kind)",
)

# -- the rows, as msgspec reads them ---------------------------------------------------------
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")]
Text = Annotated[str, msgspec.Meta(max_length=64 * 1024)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
Token = Annotated[str, msgspec.Meta(max_length=200)]
Stamp = Annotated[str, msgspec.Meta(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")]
Bit = Literal[0, 1]
Count = Annotated[int, msgspec.Meta(ge=0)]
Sha256 = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]
Kind = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
PublicKey = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{43}$")]  # Ed25519, base64url


class MeasurementRow(msgspec.Struct, kw_only=True):
    """One ``measurements`` row, every column of schema m009, by name."""

    id: Id
    round_id: Id | None = None
    device_id: Id | None = None
    source: Kind | None = None
    target: Name
    url: Annotated[str, msgspec.Meta(min_length=1, max_length=16 * 1024)]
    category: Token | None = None
    is_control: Bit
    started_at: Stamp
    runtime: float | None = None
    resolver: Text | None = None
    control_resolver: Text | None = None
    probe_asn: Token | None = None  # as the helper, the settings or OONI said it
    probe_cc: Token | None = None
    software: Text | None = None
    network_ok: Bit | None = None
    blocking: Kind | None = None
    accessible: Bit | None = None
    throttled: Bit | None = None
    dns_consistency: Token | None = None
    failing_step: Token | None = None
    failure: Text | None = None
    blockpage: Text | None = None
    evidence: Token | None = None
    offline: Bit | None = None
    body_proportion: float | None = None
    body_length_match: Bit | None = None
    status_code_match: Bit | None = None
    headers_match: Bit | None = None
    title_match: Bit | None = None
    rule_id: Token | None = None
    rules_version: Token | None = None
    bytes_used: Count | None = None
    observations: str
    control: str | None = None
    extra: str | None = None
    throughput: str | None = None
    network_name: Text | None = None
    resolver_kind: Token | None = None
    # m010's chain (probe.evidence): carried as the device stored it, never rewritten
    device_key: PublicKey | None = None
    seq: Annotated[int, msgspec.Meta(ge=1, lt=2**53)] | None = None
    chain_prev: Id | None = None
    record_hash: Sha256 | None = None
    chain_hash: Sha256 | None = None
    body_digests: Text | None = None
    quic: Token | None = None  # m014: the HTTP/3 verdict
    quic_rule: Token | None = None


CHAIN_FIELDS = ("device_key", "seq", "chain_prev", "record_hash", "chain_hash")


class RoundRow(msgspec.Struct, kw_only=True):
    """One ``rounds`` row, every column of schema m009, by name."""

    id: Id
    device_id: Id | None = None
    started_at: Stamp | None = None
    finished_at: Stamp | None = None
    targets: Count | None = None
    network_ok: Bit | None = None
    bytes_used: Count | None = None
    software: Text | None = None
    kind: Token | None = None
    status: Token | None = None
    note: Text | None = None
    pid: int | None = None
    probe_asn: Token | None = None  # as the helper, the settings or OONI said it
    probe_cc: Token | None = None
    network_name: Text | None = None
    resolver_kind: Token | None = None
    network_source: Token | None = None
    public_address: Token | None = None
    device_key: PublicKey | None = None


class BodyRow(msgspec.Struct, kw_only=True):
    """One ``bodies`` row: its key, the page's length, the stored length, the zlib data."""

    sha256: Sha256
    length: Count | None = None
    stored: Count | None = None
    data: bytes


M_COLUMNS = list(MeasurementRow.__struct_fields__)
R_COLUMNS = list(RoundRow.__struct_fields__)
B_COLUMNS = list(BodyRow.__struct_fields__)
REQUIRED = ("id", "target", "url", "started_at", "observations")
KNOWN_TABLES = {"measurements": M_COLUMNS, "rounds": R_COLUMNS, "bodies": B_COLUMNS}
SCRUB_MIGRATION = "m003_one_record_of_observations"

_observations = msgspec.json.Decoder(Observations)
_control = msgspec.json.Decoder(ControlEvidence | None)
_throughput = msgspec.json.Decoder(ThroughputRecord | None)
_extra = msgspec.json.Decoder(dict[str, Any])
_any = msgspec.json.Decoder()


class Undecodable:
    """A TEXT value that is not UTF-8 (sqlite3 would raise and stop the whole read)."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def __repr__(self) -> str:
        return f"<not UTF-8: {self.raw[:40]!r}>"


def _text(raw: bytes) -> str | Undecodable:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return Undecodable(raw)


class Bad(Exception):
    """Why a row is quarantined (``kind``: invalid, body, disputed)."""

    def __init__(self, reason: str, kind: str = "invalid") -> None:
        super().__init__(reason)
        self.reason = reason[:300]
        self.kind = kind


# -- a source, opened so that nothing of it runs ---------------------------------------------
@dataclass
class Source:
    path: str
    con: sqlite3.Connection
    columns: dict[str, set[str]]  # known table -> its columns
    device: str | None
    older: int  # how many migrations its schema lacks
    scrub_headers: bool
    wal_unread: bool
    chain_tables: bool = True  # the chain's other tables: plain tables or absent

    def close(self) -> None:
        self.con.close()

    def read(self, sql: str, params: list[Any] | None = None) -> Iterator[tuple[Any, ...]]:
        """The rows of a query of the source; a source that cannot be read to the end (a
        corrupt page, a file changed under us) raises :class:`Unreadable`."""
        try:
            yield from self.con.execute(sql, params or [])
        except sqlite3.DatabaseError as exc:
            raise Unreadable(str(exc)[:200]) from None


class Unreadable(Exception):
    """A source SQLite stopped reading half-way: none of it is merged."""


def open_source(path: str) -> Source:
    """``path`` opened read-only and immutable, its schema checked, nothing of it executed;
    raises :class:`MergeError` (one line naming it) when it is not a probe database we know."""
    p = Path(path)
    if not p.is_file():
        raise MergeError(N_("{path}: no such database"), path=path)
    try:
        con = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    except sqlite3.Error as exc:
        raise MergeError(
            N_("{path}: not a usable SQLite database ({problem})"), path=path, problem=exc
        ) from None
    try:
        con.text_factory = _text
        con.execute("PRAGMA trusted_schema = OFF")
        con.execute("PRAGMA query_only = ON")
        schema = {
            str(name): (str(kind), str(sql or ""))
            for name, kind, sql in con.execute("SELECT name, type, sql FROM sqlite_master")
        }
        source = _check(path, con, schema)
    except sqlite3.DatabaseError as exc:
        con.close()
        raise MergeError(
            N_("{path}: not a usable SQLite database ({problem})"), path=path, problem=exc
        ) from None
    except BaseException:
        con.close()
        raise
    return source


def _plain_table(schema: dict[str, tuple[str, str]], name: str) -> bool:
    kind, sql = schema[name]
    return kind == "table" and not sql.lstrip().upper().startswith("CREATE VIRTUAL")


def _readable(
    con: sqlite3.Connection, schema: dict[str, tuple[str, str]], table: str, *columns: str
) -> bool:
    """Whether ``table`` is a plain table with these stored columns (a source's meta and
    migrations tables are read only then)."""
    if table not in schema or not _plain_table(schema, table):
        return False
    stored = {str(r[1]) for r in con.execute(f"PRAGMA table_xinfo({table})") if r[6] == 0}
    return set(columns) <= stored


def _check(path: str, con: sqlite3.Connection, schema: dict[str, tuple[str, str]]) -> Source:
    tables = sorted(n for n, (kind, _) in schema.items() if kind == "table")
    if "measurements" not in schema:
        shown = ", ".join(tables) or "none"
        raise MergeError(
            N_("{path}: not a probe database (tables: {tables})"), path=path, tables=shown
        )
    columns: dict[str, set[str]] = {}
    for table, known in KNOWN_TABLES.items():
        if table not in schema:
            continue
        if not _plain_table(schema, table):
            raise MergeError(
                N_("{path}: not a probe database ({table} is not a table)"), path=path, table=table
            )
        info = list(con.execute(f"PRAGMA table_xinfo({table})"))
        for row in info:
            if str(row[1]) in known and row[6] != 0:
                raise MergeError(
                    N_("{path}: not a probe database ({column} is computed, not stored)"),
                    path=path,
                    column=f"{table}.{row[1]}",
                )
        columns[table] = {str(r[1]) for r in info} & set(known)
    missing = [c for c in REQUIRED if c not in columns["measurements"]]
    if missing:
        raise MergeError(
            N_("{path}: not a probe database (measurements has no column {column})"),
            path=path,
            column=missing[0],
        )
    applied: set[str] = set()
    if _readable(con, schema, "_sqlite_migrations", "migration_set", "name"):
        applied = {
            str(r[0])
            for r in con.execute(
                "SELECT substr(name, 1, 200) FROM _sqlite_migrations "
                "WHERE migration_set = 'probe' LIMIT 1000"
            )
        }
    released = {m.name for m in migrations.pending(Database(memory=True))}
    newer = sorted(applied - released)
    if newer:
        raise MergeError(
            N_("{path}: made by a newer probe (migration {name})"), path=path, name=newer[0]
        )
    device = None
    if _readable(con, schema, "meta", "key", "value"):
        row = con.execute(
            "SELECT value FROM meta WHERE key = 'device_id' AND typeof(value) = 'text' "
            "AND length(value) <= 200 LIMIT 1"
        ).fetchone()
        if row is not None:
            try:
                device = msgspec.convert(row[0], Id)
            except msgspec.ValidationError:
                device = None
    wal = Path(f"{path}-wal")
    chain_tables = all(
        t not in schema or _plain_table(schema, t)
        for t in ("chain_heads", "unchained_measurements", "chain_pruned", "timestamps")
    )
    return Source(
        path=path,
        con=con,
        columns=columns,
        device=device,
        older=len(released - applied),
        scrub_headers=SCRUB_MIGRATION not in applied,
        wal_unread=wal.is_file() and wal.stat().st_size > 0,
        chain_tables=chain_tables,
    )


CHAIN_PROBLEMS_SQL = (
    """CREATE TABLE IF NOT EXISTS chain_problems (
    device_key TEXT NOT NULL,  -- the chain's device key ('' for a measurement in no chain)
    source TEXT NOT NULL,      -- the source's device id ('?' unknown), never its file name
    subject TEXT NOT NULL,     -- what probe verify names: a measurement id, a head, a seq
    kind TEXT NOT NULL,        -- probe verify's kind: altered, removed, inserted, ...
    reason TEXT NOT NULL,      -- probe verify's line, in English
    UNIQUE (device_key, subject, kind)
)""",
    """CREATE TABLE IF NOT EXISTS unverified_measurements (
    id TEXT PRIMARY KEY,       -- a merged measurement whose chain did not verify in its source
    device_key TEXT NOT NULL,  -- its device key ('' for one in no chain)
    reason TEXT NOT NULL
)""",
)


@dataclass
class ChainCheck:
    """What ``probe verify``'s checks said of a source's chains, before anything of it is
    merged: per device key, its chain's summary and its problems' kinds counted; the first
    problems themselves (at most the quarantine cap); the ids of measurements its problems
    name (they are merged as stored and marked unverified)."""

    devices: dict[str, verify_mod.Device] = field(default_factory=dict)
    kinds: dict[str, Counter[str]] = field(default_factory=dict)
    problems: list[verify_mod.Problem] = field(default_factory=list)
    unreadable: str | None = None

    def verified(self, device: str) -> bool:
        return self.unreadable is None and not self.kinds.get(device)


def verify_chain(source: Source, caps: Caps | None = None) -> ChainCheck | None:
    """A source's chains checked as ``probe verify`` checks a database
    (:func:`probe.analyst.verify.check` on the source's read-only, immutable connection, so
    nothing of it runs); None when the source has no chain (made before m010)."""
    if "seq" not in source.columns["measurements"]:
        return None
    found = ChainCheck()
    if not source.chain_tables:
        found.unreadable = (
            "a table of its chain (chain_heads, unchained_measurements, chain_pruned, "
            "timestamps) is not a plain table"
        )
        return found
    cap = (caps or Caps()).quarantine_rows
    summary = verify_mod.Summary()
    try:
        for p in verify_mod.check(source.con, summary):
            found.kinds.setdefault(p.device, Counter())[p.kind] += 1
            if len(found.problems) < cap:
                found.problems.append(p)
    except sqlite3.DatabaseError as exc:
        found.unreadable = f"its chain could not be read to the end ({str(exc)[:200]})"
    found.devices = summary.chains
    return found


def _chain_notes(found: ChainCheck | None) -> list[str]:
    """The source line's notes on its chains, one per device."""
    if found is None:
        return []
    if found.unreadable is not None:
        return [f"its chain was not verified: {found.unreadable}; merged, marked unverified"]
    notes = []
    for key, d in sorted(found.devices.items()):
        if found.verified(key):
            notes.append(
                f"device {key}: its chain verifies ({d.measurements} measurements, "
                f"{d.heads} signed heads)"
            )
    for key, kinds in sorted(found.kinds.items()):
        told = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
        who = f"device {key}: its chain does not verify" if key else "measurements in no chain"
        notes.append(f"{who} ({told}): merged as stored, marked unverified in chain_problems")
    return notes


# -- validation --------------------------------------------------------------------------------
def _numbers_fit(value: Any) -> bool:
    """Every number within 64 bits and finite (SQLite, Arrow and JSON readers all agree)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, bool) or v is None or isinstance(v, str):
            continue
        if isinstance(v, int):
            if not -(2**63) <= v < 2**63:
                return False
        elif isinstance(v, float):
            if not math.isfinite(v):
                return False
        elif isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return True


def _unknown_field(raw: Any, typed: Any, where: str = "$") -> str | None:
    """The first field of ``raw`` (decoded JSON) that the typed record does not know."""
    stack = [(raw, typed, where)]
    while stack:
        r, t, at = stack.pop()
        if isinstance(r, dict) and isinstance(t, dict):
            for k, v in r.items():
                if k not in t:
                    return f"{at}.{k}"
                stack.append((v, t[k], f"{at}.{k}"))
        elif isinstance(r, list) and isinstance(t, (list, tuple)):
            stack.extend((a, b, f"{at}[{i}]") for i, (a, b) in enumerate(zip(r, t, strict=False)))
    return None


def _strict(tp: Any, made: dict[Any, Any]) -> Any:
    """``tp`` with each dataclass of it replaced by a msgspec Struct of the same fields (the
    same defaults, the same required ones) that refuses a field it does not know
    (``forbid_unknown_fields``), each ``int`` bounded to 64 bits, and each ``float`` a bounded
    ``int`` or a float (a JSON integer in a float field is an integer to :func:`_numbers_fit`):
    decoding into it finds what :func:`_unknown_field` and :func:`_numbers_fit` find, in C. A
    type it holds that it cannot bound (``Any``) goes in ``made[Any]``: the column is then
    searched for large integers as well."""
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if tp not in made:
            made[tp] = None  # a placeholder while its fields are made (no record nests itself)
            hints = typing.get_type_hints(tp, include_extras=True)
            fields: list[Any] = []  # the same fields, required as the record's are
            for f in dataclasses.fields(tp):
                t = _strict(hints[f.name], made)
                if f.default is not dataclasses.MISSING:
                    fields.append((f.name, t, f.default))
                elif f.default_factory is not dataclasses.MISSING:
                    fields.append((f.name, t, msgspec.field(default_factory=f.default_factory)))
                else:
                    fields.append((f.name, t))
            made[tp] = msgspec.defstruct(
                f"Strict{tp.__name__}", fields, kw_only=True, forbid_unknown_fields=True
            )
        return made[tp]
    if tp is int:
        return _Int64
    if tp is float:
        return _Int64 | float
    if tp is Any or tp is object:
        made[Any] = True
        return tp
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is None or origin is Literal:
        return tp
    if origin is typing.Annotated:
        return typing.Annotated[(_strict(args[0], made), *args[1:])]
    if origin in (types.UnionType, typing.Union):
        return typing.Union[tuple(_strict(a, made) for a in args)]  # noqa: UP007
    mapped = tuple(... if a is ... else _strict(a, made) for a in args)
    return origin[mapped] if len(mapped) > 1 else origin[mapped[0]]


_Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]


def _strict_decoder(tp: Any) -> tuple[msgspec.json.Decoder[Any], bool]:
    """The strict decoder of a column's type, and whether its text must still be searched for
    large integers (the type holds ``Any``)."""
    made: dict[Any, Any] = {}
    strict = _strict(tp, made)
    return msgspec.json.Decoder(strict), Any in made


_STRICT = {
    "observations": _strict_decoder(Observations),
    "control": _strict_decoder(ControlEvidence | None),
    "throughput": _strict_decoder(ThroughputRecord | None),
    "extra": (_extra, True),
}
# Where an integer could be out of 64 bits: an integer part of 19 digits or more after what
# precedes a number inside JSON (a colon, a comma, a bracket, and spaces; every column is an
# object, so none is a number alone); text without one holds none (one of 19 digits may fit:
# that column takes the walk, which says). A float is always finite: msgspec refuses a number
# past a double's range ("1e400").
_BIG_NUMBER = re.compile(r"[:,\[]\s*-?\d{19}")


def _json(column: str, text: str | None, decoder: msgspec.json.Decoder[Any]) -> Any:
    """A JSON column decoded into its typed record, or :class:`Bad`: what :func:`_json_walk`
    says, found faster (:func:`_json_check`)."""
    value, lazy = _json_check(column, text, decoder)
    return decoder.decode(text) if lazy else value  # type: ignore[arg-type]


def _json_check(
    column: str, text: str | None, decoder: msgspec.json.Decoder[Any]
) -> tuple[Any, bool]:
    """A JSON column checked as :func:`_json_walk` checks it, or :class:`Bad`, in C: a decode
    into the strict copy of its record's types (:func:`_strict`: the same fields required, no
    unknown field, every integer within 64 bits) and, for a type holding ``Any`` (``extra``), a
    search of the text for an integer too large to fit. What the strict types take, the
    record's own take (they take less), and the walk passes; any other column is judged by the
    walk itself, which gives the reason. Returns (the strict value, True), whose typed record is
    ``decoder.decode(text)``, or (the walk's typed record, False)."""
    if text is None:
        return None, False
    strict, search = _STRICT.get(column, (None, True))
    if strict is not None:
        try:
            value = strict.decode(text)
        except (msgspec.DecodeError, msgspec.ValidationError):
            pass
        else:
            if not search or _BIG_NUMBER.search(text) is None:
                return value, True
    return _json_walk(column, text, decoder), False


def _json_walk(column: str, text: str | None, decoder: msgspec.json.Decoder[Any]) -> Any:
    """The reference check of a JSON column: the typed decode, then Python walks over the
    plain decode (every number within 64 bits and finite, no field the record does not know)."""
    if text is None:
        return None
    try:
        typed = decoder.decode(text)
        raw = _any.decode(text)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise Bad(f"{column}: {exc}") from None
    if not _numbers_fit(raw):
        raise Bad(f"{column}: a number out of range (64 bits, finite)")
    unknown = _unknown_field(raw, msgspec.to_builtins(typed))
    if unknown is not None:
        raise Bad(f"{column}: {unknown} is no field of a probe record")
    return typed


def _stamp(column: str, value: str | None) -> None:
    if value is not None:
        try:
            datetime.fromisoformat(value[:-1])
        except ValueError:
            raise Bad(f"{column}: {value[:40]!r} is not a UTC time") from None


def _scrub_headers(text: str) -> str:
    """m003's scrub of header values (all but Location), for rows of an older schema."""
    try:
        obs = json.loads(text)
        changed = False
        for h in obs.get("http", []) if isinstance(obs, dict) else []:
            headers = h.get("headers") or []
            new = [[k, v if str(k).lower() == "location" else scrub(str(v))] for k, v in headers]
            if new != headers:
                h["headers"], changed = new, True
    except (ValueError, TypeError, AttributeError):
        return text  # not the shape m003 reads: validation says what it is
    return json.dumps(obs, ensure_ascii=False) if changed else text


_UNREAD: Any = object()  # a typed record not decoded yet (its column is checked)


class Checked:
    """A measurement row checked: its row, and its JSON columns' typed records (decoded when
    first asked for: the fleet's ingest reads only the throughput record's)."""

    __slots__ = ("_control", "_obs", "_throughput", "row")

    def __init__(
        self,
        row: MeasurementRow,
        obs: Observations = _UNREAD,
        control: ControlEvidence | None = _UNREAD,
        throughput: ThroughputRecord | None = _UNREAD,
    ) -> None:
        self.row, self._obs, self._control, self._throughput = row, obs, control, throughput

    @property
    def obs(self) -> Observations:
        if self._obs is _UNREAD:
            self._obs = _observations.decode(self.row.observations)
        return self._obs

    @property
    def control(self) -> ControlEvidence | None:
        if self._control is _UNREAD:
            text = self.row.control
            self._control = None if text is None else _control.decode(text)
        return self._control

    @property
    def throughput(self) -> ThroughputRecord | None:
        if self._throughput is _UNREAD:
            text = self.row.throughput
            self._throughput = None if text is None else _throughput.decode(text)
        return self._throughput


def check_measurement(values: dict[str, Any], scrub_headers: bool) -> Checked:
    """A measurement row validated, or :class:`Bad` saying which column and why."""
    if scrub_headers and isinstance(values.get("observations"), str):
        values = {**values, "observations": _scrub_headers(values["observations"])}
    try:
        row = msgspec.convert(values, MeasurementRow, strict=True)
    except msgspec.ValidationError as exc:
        raise Bad(f"measurements: {exc}") from None
    _stamp("started_at", row.started_at)
    if row.seq is not None:  # a place in a chain: whose, and its hashes (chain_prev: None at 1)
        missing = [f for f in CHAIN_FIELDS if f != "chain_prev" and getattr(row, f) is None]
        if missing:
            raise Bad(f"chain columns: {', '.join(missing)} missing beside seq")
    for name in ("runtime", "body_proportion"):
        v = getattr(row, name)
        if v is not None and not math.isfinite(v):
            raise Bad(f"{name}: not a finite number")
    obs, lazy_obs = _json_check("observations", row.observations, _observations)
    if any(h.body is not None for h in obs.http):  # the strict record or the typed one
        raise Bad("observations: a body inside the record (bodies are stored apart)")
    control, lazy_control = _json_check("control", row.control, _control)
    throughput, lazy_throughput = _json_check("throughput", row.throughput, _throughput)
    _json_check("extra", row.extra, _extra)
    return Checked(
        row,
        _UNREAD if lazy_obs else obs,
        _UNREAD if lazy_control else control,
        _UNREAD if lazy_throughput else throughput,
    )


def _replay(c: Checked, obs: Observations) -> None:
    """The classifier and the throughput analysis over the row, as ``reclassify`` runs them:
    a row they cannot read would break ``reclassify`` of the whole fleet."""
    try:
        network_ok = None if c.row.network_ok is None else bool(c.row.network_ok)
        classify(obs, control=c.control, network_ok=network_ok)
        tp = c.throughput
        if tp is not None and tp.flows:
            analyse(tp.flows, tests_in_round=tp.tests_in_round or 1, helper_speed=tp.helper_speed)
    except Exception as exc:  # hostile data: any failure is the row's
        raise Bad(f"the classifier cannot replay it ({type(exc).__name__}: {exc})"[:300]) from None


def _named_bodies(values: dict[str, Any]) -> set[str]:
    """The body keys a row that failed validation names, as far as its JSON says."""
    try:
        obs = _any.decode(values.get("observations") or "")
        return {
            h["body_sha256"]
            for h in obs.get("http", [])
            if isinstance(h, dict) and isinstance(h.get("body_sha256"), str)
        }
    except Exception:  # best effort for a row already refused
        return set()


# -- bodies --------------------------------------------------------------------------------------
@dataclass
class Body:
    key: str
    raw: bytes | None  # the inflated content; None when refused
    verified: bool = False
    problem: str | None = None


def inflate(key: str, values: dict[str, Any], caps: Caps) -> Body:
    """A source's body row validated and inflated within the cap, its hash recomputed."""
    try:
        row = msgspec.convert({k: values.get(k) for k in B_COLUMNS}, BodyRow, strict=True)
    except msgspec.ValidationError as exc:
        return Body(key, None, problem=f"bodies: {exc}")
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(row.data, caps.body_bytes + 1)
    except zlib.error as exc:
        return Body(key, None, problem=f"data: not zlib-compressed ({exc})")
    if len(raw) > caps.body_bytes or inflater.unconsumed_tail:
        cap = caps.body_bytes
        why = f"data: inflates past the cap (body_bytes = {cap}), larger than a stored body can be"
        return Body(key, None, problem=why)
    if not inflater.eof:
        return Body(key, None, problem="data: a truncated zlib stream")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return Body(key, None, problem="data: not UTF-8 text")
    return Body(key, raw, verified=hashlib.sha256(raw).hexdigest() == key)


_CHARSET = re.compile(r"charset=([\w.:-]+)", re.IGNORECASE)


def honest_mismatch(h: HTTPTransaction, raw: bytes) -> bool:
    """Whether a body that does not hash to its key can be honest for this transaction: the
    page was larger than the stored prefix, or its text was decoded (another charset, or
    bytes that were not UTF-8, replaced)."""
    if (h.body_length or 0) > STORED_PREFIX:
        return True
    ctype = next((v for k, v in h.headers if k.lower() == "content-type"), "")
    m = _CHARSET.search(ctype)
    if m and m.group(1).lower().replace("_", "-") not in ("utf-8", "utf8", "us-ascii", "ascii"):
        return True
    return "\ufffd" in raw.decode("utf-8")


# -- one source into the output ------------------------------------------------------------------
@dataclass
class Result:
    added: int = 0
    seen: int = 0
    quarantined: int = 0
    taken_out: int = 0  # rows merged before (another claim to their id) taken out
    cut: bool = False
    notes: list[str] = field(default_factory=list)


class Quarantine:
    """The output's quarantine rows for one source, capped."""

    def __init__(self, conn: sqlite3.Connection, device: str | None, caps: Caps) -> None:
        self.conn, self.device, self.cap = conn, device or "?", caps.quarantine_rows
        self.count = 0

    def add(self, table: str, row_id: object, reason: str, kind: str) -> None:
        self.add_for(self.device, table, row_id, reason, kind)

    def add_for(
        self, device: str | None, table: str, row_id: object, reason: str, kind: str
    ) -> None:
        """A quarantine row on behalf of ``device`` (another's claim this merge took out)."""
        self.count += 1
        if self.count > self.cap:
            return
        source = device or "?"
        shown = row_id if isinstance(row_id, str) else repr(row_id)
        self.conn.execute(
            "INSERT OR IGNORE INTO quarantine (source, tbl, row_id, kind, reason) "
            "VALUES (?, ?, ?, ?, ?)",
            [source, table, shown[:200], kind, reason[:300]],
        )

    def close(self) -> None:
        if self.count > self.cap:
            more = self.count - self.cap
            self.conn.execute(
                "INSERT OR REPLACE INTO quarantine (source, tbl, row_id, kind, reason) "
                "VALUES (?, '', '', 'more', ?)",
                [
                    self.device,
                    f"{more} more problems in this source, not listed "
                    f"(quarantine_rows = {self.cap})",
                ],
            )


def _capped_select(table: str, columns: list[str], present: set[str], cap: int) -> str:
    """The row's size (all its known columns), its id (at most 200 characters), then each known
    column: NULL where the table lacks it, and every one of a row past the cap, so that an
    oversized row never reaches Python."""
    size = " + ".join(f"ifnull(length(CAST({c} AS BLOB)), 0)" for c in columns if c in present)
    inner = ", ".join(c for c in columns if c in present)
    outer = ", ".join(
        f"CASE WHEN _size <= {int(cap)} THEN {c} END" if c in present else "NULL" for c in columns
    )
    rid = "substr(id, 1, 200)" if "id" in present else "NULL"
    return (
        f"SELECT _size, _id, {outer} "
        f"FROM (SELECT {size} AS _size, {rid} AS _id, {inner} FROM {table})"
    )


class Merger:
    """One source merged into the output, inside the output's write transaction: its
    measurements (with the bodies they name), its rounds, then the bodies none named."""

    def __init__(
        self, target: Store, source: Source, caps: Caps, chain: ChainCheck | None = None
    ) -> None:
        self.target, self.source, self.caps, self.chain = target, source, caps, chain
        self.out = target.db.conn
        self.q = Quarantine(self.out, source.device, caps)
        self.result = Result()
        self.budget = caps.source_bytes
        self.bodies: dict[str, Body] = {}  # this source's bodies, each read and checked once
        self.named: set[str] = set()  # body keys this source's measurements name
        self.refused: set[str] = set()  # body keys refused (each quarantined once)

    def run(self) -> Result:
        for sql in (*QUARANTINE_SQL, *CHAIN_PROBLEMS_SQL):
            self.out.execute(sql)
        self.measurements()
        self.rounds()
        self.orphans()
        self.heads()
        self.prunes()
        self.chain_problems()
        self.q.close()
        self.result.quarantined = self.q.count - self.result.taken_out
        return self.result

    def spend(self, n: int) -> bool:
        """Count ``n`` bytes read against the source's cap; False (once said) past it."""
        if self.result.cut:
            return False
        self.budget -= n
        if self.budget >= 0:
            return True
        self.result.cut = True
        cap = self.caps.source_bytes
        self.q.add("", "", f"the source's cap (source_bytes = {cap}) was reached: "
                   "the rest of it was not read", "cap")  # fmt: skip
        return False

    def rows(self, table: str, columns: list[str]) -> Iterator[tuple[Any, dict[str, Any]]]:
        """The table's rows within the caps, as (id, known columns); an oversized one is
        quarantined here."""
        present = self.source.columns.get(table)
        if present is None:
            return
        cap = self.caps.row_bytes
        for row in self.source.read(_capped_select(table, columns, present, cap)):
            size = int(row[0] or 0)
            if not self.spend(size):
                return
            if size > cap:
                why = f"size: {size} bytes, over the cap (row_bytes = {cap})"
                self.q.add(table, row[1], why, "invalid")
                continue
            yield row[1], dict(zip(columns, row[2:], strict=True))

    # measurements ------------------------------------------------------------------------
    def measurements(self) -> None:
        for rid, values in self.rows("measurements", M_COLUMNS):
            try:
                checked = check_measurement(values, self.source.scrub_headers)
            except Bad as bad:
                self.named |= _named_bodies(values)
                self.q.add("measurements", rid, bad.reason, bad.kind)
                continue
            try:
                self.measurement(checked)
            except Bad as bad:
                self.q.add("measurements", rid, bad.reason, bad.kind)

    def measurement(self, c: Checked) -> None:
        """One valid row: its bodies checked, the classifier replayed over it, its claim to
        its id weighed, and then written; raises :class:`Bad` when refused."""
        row = c.row
        if row.seq is None:  # a chained row's device id is in its record: never filled in
            own = self.source.device if row.source == "probe" else None
            row = msgspec.structs.replace(row, device_id=row.device_id or own)
        bodies: dict[str, Body] = {}
        for h in c.obs.http:
            if h.body_sha256:
                self.named.add(h.body_sha256)
                if h.body_sha256 not in bodies and (body := self.body(h)) is not None:
                    bodies[h.body_sha256] = body
        texts = {k: b.raw.decode("utf-8") for k, b in bodies.items() if b.raw is not None}
        http = tuple(
            replace(h, body=texts[k] if k in texts else self.target.body(k))
            if (k := h.body_sha256)
            else h
            for h in c.obs.http
        )
        _replay(c, replace(c.obs, http=http))
        if self.claimed(row):
            return
        self.place(row)
        self.out.execute(
            f"INSERT INTO measurements ({', '.join(M_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in M_COLUMNS)})",
            [getattr(row, col) for col in M_COLUMNS],
        )
        if row.seq is None and self.listed_unchained(row.id):
            self.out.execute(
                "INSERT OR IGNORE INTO unchained_measurements (id) VALUES (?)", [row.id]
            )
        else:
            self.flag(row)
        for key, b in bodies.items():
            if b.raw is None:
                continue
            length = next((h.body_length for h in c.obs.http if h.body_sha256 == key), None)
            # A verified body is the page with that hash: it replaces an unverified one.
            conflict = (
                "UPDATE SET length = excluded.length, stored = excluded.stored, "
                "data = excluded.data"
                if b.verified
                else "NOTHING"
            )
            self.out.execute(
                "INSERT INTO bodies (sha256, length, stored, data) VALUES (?, ?, ?, ?) "
                f"ON CONFLICT (sha256) DO {conflict}",
                [key, length, len(b.raw), zlib.compress(b.raw, 6)],
            )
        self.result.added += 1

    def claimed(self, row: MeasurementRow) -> bool:
        """True when the output already holds this very claim (already there), False when
        the id is free (or held by a claim its device did not sign, which this one, signed,
        takes out); raises :class:`Bad` when the row loses: to a claim its device signed, or
        when the id is disputed (two claims alike), taking out the claim the output held."""
        if self.out.execute(
            "SELECT 1 FROM quarantine WHERE row_id = ? AND kind = 'disputed' "
            "AND tbl = 'measurements' LIMIT 1",
            [row.id],
        ).fetchone():
            raise Bad("measurement id disputed: more than one claim to it", "disputed")
        held = self.out.execute(
            "SELECT device_id, device_key, observations, started_at, target, url, seq "
            "FROM measurements WHERE id = ?",
            [row.id],
        ).fetchone()
        if held is None:
            return False
        theirs, their_key, facts, their_seq = held[0], held[1], tuple(held[2:6]), held[6]
        if (theirs, their_key) == (row.device_id, row.device_key) and facts == (
            row.observations,
            row.started_at,
            row.target,
            row.url,
        ):
            self.result.seen += 1
            if self.signed(row):  # merged unverified before, now from a source that verifies
                self.out.execute("DELETE FROM unverified_measurements WHERE id = ?", [row.id])
            return True
        if (theirs, their_key) != (row.device_id, row.device_key):
            why_theirs = f"measurement id also claimed by device {row.device_id or '?'}"
            why_ours = f"measurement id already claimed by device {theirs or '?'}"
        else:
            why_theirs = why_ours = "the same device's measurement id with other measured facts"
        ours, signed_theirs = self.signed(row), self.held_signed(row.id, their_key, their_seq)
        if signed_theirs and not ours:  # the signed claim stays; this one is refused alone
            raise Bad(f"{why_ours}, which its device signed", "lost")
        for table in ("measurements", "unverified_measurements", "unchained_measurements"):
            self.out.execute(f"DELETE FROM {table} WHERE id = ?", [row.id])
        self.result.taken_out += 1
        if ours and not signed_theirs:  # the signed claim takes the id; the other is refused
            self.q.add_for(theirs, "measurements", row.id, f"{why_theirs}, which signed it", "lost")
            return False
        self.q.add_for(theirs, "measurements", row.id, why_theirs, "disputed")
        raise Bad(why_ours, "disputed")

    def place(self, row: MeasurementRow) -> None:
        """Weigh the row's claim to its place in its device's chain against one the output
        holds (the output keeps one measurement per place). A claim its device signed (its
        source's chain verifies for the device, and a signed head there covers the place)
        wins over one that is not: a head commits to every record before it, and only the
        device's key signs one. Two claims alike (both signed: the device forked its chain, a
        restored backup; or neither) are held by neither, as two claims to one id, both
        named, and later merges keep the place out. Raises :class:`Bad` when the row loses."""
        if row.seq is None:
            return
        place = f"{row.device_key}:{row.seq}"
        why = f"seq {row.seq} of device {row.device_key}: more than one measurement claims it"
        if self.out.execute(
            "SELECT 1 FROM quarantine WHERE tbl = 'chain' AND row_id = ? AND kind = 'disputed' "
            "LIMIT 1",
            [place],
        ).fetchone():
            raise Bad(f"its place in its chain is disputed ({why})", "disputed")
        held = self.out.execute(
            "SELECT id, device_id FROM measurements WHERE device_key = ? AND seq = ?",
            [row.device_key, row.seq],
        ).fetchone()
        if held is None:
            return
        ours, theirs = self.signed(row), self.held_signed(str(held[0]), row.device_key, row.seq)
        if theirs and not ours:
            raise Bad(
                f"its place in its chain (seq {row.seq}) is held by measurement {held[0]}, "
                "which its device signed",
                "lost",
            )
        self.out.execute("DELETE FROM measurements WHERE id = ?", [held[0]])
        self.out.execute("DELETE FROM unverified_measurements WHERE id = ?", [held[0]])
        self.result.taken_out += 1
        if ours and not theirs:
            self.q.add_for(
                held[1],
                "measurements",
                held[0],
                f"its place in its chain (seq {row.seq}) is claimed by measurement {row.id}, "
                "which its device signed",
                "lost",
            )
            return
        self.q.add_for(
            held[1], "measurements", held[0], f"its place in its chain: {why}", "disputed"
        )
        self.q.add_for(held[1], "chain", place, why, "disputed")
        raise Bad(f"its place in its chain: {why}", "disputed")

    def signed(self, row: MeasurementRow) -> bool:
        """Did the row's device sign it: its source's chain verifies for the device, and a
        signed head there covers its place?"""
        found, key = self.chain, row.device_key or ""
        if found is None or row.seq is None or not found.verified(key):
            return False
        device = found.devices.get(key)
        return device is not None and row.seq <= device.signed_seq

    def held_signed(self, measurement_id: str, device_key: object, seq: object) -> bool:
        """Did its device sign a measurement the output holds (at ``seq`` of ``device_key``'s
        chain): merged unflagged, and a head of the device the output holds covers its
        place?"""
        if seq is None or device_key is None:
            return False
        if self.out.execute(
            "SELECT 1 FROM unverified_measurements WHERE id = ?", [measurement_id]
        ).fetchone():
            return False
        return bool(
            self.out.execute(
                "SELECT 1 FROM chain_heads WHERE device_key = ? AND seq >= ? LIMIT 1",
                [device_key, seq],
            ).fetchone()
        )

    def flag(self, row: MeasurementRow) -> None:
        """Mark a merged measurement unverified when its source's chain check did not hold
        for its device (or it is in no chain, and its source says nothing of why)."""
        found = self.chain
        if found is None:
            return
        if found.unreadable is not None:
            why = found.unreadable
        elif row.seq is None:
            if not found.kinds.get(""):
                return
            why = "in no chain, and stored after its source's chain began"
        elif found.verified(row.device_key or ""):
            return
        else:
            why = "its device's chain does not verify in its source (see chain_problems)"
        self.out.execute(
            "INSERT OR REPLACE INTO unverified_measurements (id, device_key, reason) "
            "VALUES (?, ?, ?)",
            [row.id, row.device_key or "", why],
        )

    def listed_unchained(self, measurement_id: str) -> bool:
        """Is a measurement without a place in a chain one that its source stored before the
        chain began (a source made before m010, or one its migration listed)? Only those are
        listed as such in the output; any other is in no chain, as ``probe verify`` says."""
        if "seq" not in self.source.columns["measurements"]:
            return True
        if self.chain is None or self.chain.unreadable is not None:
            return False
        return any(
            self.source.read(
                "SELECT 1 FROM unchained_measurements WHERE id = ? LIMIT 1", [measurement_id]
            )
        )

    def heads(self) -> None:
        """The source's signed chain heads that hold (signed by the key they name, their
        columns what they signed), into the output's ``chain_heads``: of two heads of one
        device, kind and label (a day's head re-signed at each round), the later place
        stays. A head that does not hold is not copied (the chain's problems say so)."""
        if self.chain is None or self.chain.unreadable is not None:
            return
        if "chain_heads" not in {t for (t,) in self.source.read(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}:  # fmt: skip
            return
        for row in self.source.read(
            "SELECT device_key, kind, label, seq, chain_hash, at, statement, signature "
            "FROM chain_heads WHERE length(CAST(statement AS BLOB)) <= 4096 "
            "AND length(CAST(signature AS BLOB)) <= 200 AND length(CAST(label AS BLOB)) <= 200"
        ):
            key, kind, label, seq, chain_hash, at, statement, signature = row
            if not (isinstance(statement, str) and isinstance(signature, str)):
                continue
            head = heads_mod.check(statement.encode(), signature)
            if head is None or not isinstance(label, str):
                continue
            if (head.device_key, head.kind, head.seq, head.chain_hash, head.at) != (
                key, kind, seq, chain_hash, at):  # fmt: skip
                continue
            self.out.execute(
                "INSERT INTO chain_heads (device_key, kind, label, seq, chain_hash, at, "
                "statement, signature) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (device_key, kind, label) DO UPDATE SET seq = excluded.seq, "
                "chain_hash = excluded.chain_hash, at = excluded.at, "
                "statement = excluded.statement, signature = excluded.signature "
                "WHERE excluded.seq > chain_heads.seq",
                [key, kind, label, seq, chain_hash, at, statement, signature],
            )

    def prunes(self) -> None:
        """The source's prune records (m011) that hold, as ``probe verify`` reads them (signed by
        the device whose chain they prune, their columns what they signed), into the output's
        ``chain_pruned``: of two records of one device starting at one seq, the longer stays."""
        if self.chain is None or self.chain.unreadable is not None:
            return
        names = {
            t for (t,) in self.source.read("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        if "chain_pruned" not in names:
            return
        for row in self.source.read(
            "SELECT device_key, first_seq, last_seq, last_chain_hash, at, by_key, statement, "
            "signature FROM chain_pruned WHERE length(CAST(statement AS BLOB)) <= 4096 "
            "AND length(CAST(signature AS BLOB)) <= 200"
        ):
            statement, signature = row[6], row[7]
            if not (isinstance(statement, str) and isinstance(signature, str)):
                continue
            record = pruned_mod.check(statement.encode(), signature)
            if record is None or not record.own:
                continue
            said = (record.device_key, record.first, record.last, record.last_chain_hash,
                    record.at, record.by)  # fmt: skip
            if tuple(row[:6]) != said:
                continue
            self.out.execute(
                "INSERT INTO chain_pruned (device_key, first_seq, last_seq, last_chain_hash, at, "
                "by_key, statement, signature) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (device_key, first_seq) DO UPDATE SET last_seq = excluded.last_seq, "
                "last_chain_hash = excluded.last_chain_hash, at = excluded.at, "
                "by_key = excluded.by_key, statement = excluded.statement, "
                "signature = excluded.signature WHERE excluded.last_seq > chain_pruned.last_seq",
                [*said, statement, signature],
            )

    def chain_problems(self) -> None:
        """What the source's chain check found, one row per problem, beside the rows it
        names: they are merged as stored, and marked unverified here."""
        if self.chain is None:
            return
        source = self.source.device or "?"
        found = list(self.chain.problems)
        if self.chain.unreadable is not None:
            found.insert(0, verify_mod.Problem("unverified", "", self.chain.unreadable))
        for p in found:
            self.out.execute(
                "INSERT OR IGNORE INTO chain_problems (device_key, source, subject, kind, reason) "
                "VALUES (?, ?, ?, ?, ?)",
                [p.device, source, p.subject[:200], p.kind, p.line()[:300]],
            )

    def body(self, h: HTTPTransaction) -> Body | None:
        """The source's body for ``h``, checked against its key and against what the output
        holds under it; None when the source has none. Raises :class:`Bad` (the body
        quarantined once) when it is refused."""
        key = h.body_sha256 or ""
        body = self.bodies.get(key)
        if body is None:
            if re.fullmatch(r"[0-9a-f]{64}", key):
                body = self.fetch(key)
            else:
                body = Body(key, None, problem="body_sha256: not a SHA-256")
            if body is None:
                return None
            self.bodies[key] = body
        if body.problem is None and body.raw is not None and not body.verified:
            if not honest_mismatch(h, body.raw):
                body.problem = (
                    "its content does not match its SHA-256 (and the page was no larger than "
                    "what a probe stores)"
                )
            else:
                held = self.out.execute("SELECT data FROM bodies WHERE sha256 = ?", [key])
                data = held.fetchone()
                if data is not None and _inflate_own(data[0]) != body.raw:
                    body.problem = (
                        "another source holds different content under this SHA-256, which "
                        "neither content matches"
                    )
        if body.problem is None:
            return body
        if key not in self.refused:
            self.refused.add(key)
            self.q.add("bodies", key, body.problem, "body")
        raise Bad(f"its body {key[:64]} is refused: {body.problem}", "body")

    def fetch(self, key: str) -> Body | None:
        """The source's body row for ``key``, inflated within the cap; None if it has none."""
        present = self.source.columns.get("bodies")
        if present is None or not {"sha256", "data"} <= present:
            return None
        cap = self.caps.body_bytes
        length, stored = (c if c in present else "NULL" for c in ("length", "stored"))
        row = next(
            self.source.read(
                f"SELECT length(CAST(data AS BLOB)), CASE WHEN length(CAST(data AS BLOB)) "
                f"<= {cap} THEN data END, {length}, {stored} FROM bodies WHERE sha256 = ? LIMIT 1",
                [key],
            ),
            None,
        )
        if row is None:
            return None
        size = int(row[0] or 0)
        if not self.spend(size):
            raise Bad("the source's cap was reached before its body was read", "cap")
        if size > cap:
            return Body(key, None, problem=f"data: larger than the cap (body_bytes = {cap})")
        return inflate(
            key, {"sha256": key, "data": row[1], "length": row[2], "stored": row[3]}, caps=self.caps
        )

    # rounds, and bodies no measurement names -----------------------------------------------
    def rounds(self) -> None:
        for rid, values in self.rows("rounds", R_COLUMNS):
            try:
                r = msgspec.convert(values, RoundRow, strict=True)
                _stamp("started_at", r.started_at)
                _stamp("finished_at", r.finished_at)
            except msgspec.ValidationError as exc:
                self.q.add("rounds", rid, f"rounds: {exc}", "invalid")
                continue
            except Bad as bad:
                self.q.add("rounds", rid, bad.reason, bad.kind)
                continue
            r = msgspec.structs.replace(r, device_id=r.device_id or self.source.device)
            held = self.out.execute("SELECT device_id FROM rounds WHERE id = ?", [r.id]).fetchone()
            if held is None:
                self.out.execute(
                    f"INSERT INTO rounds ({', '.join(R_COLUMNS)}) "
                    f"VALUES ({', '.join('?' for _ in R_COLUMNS)})",
                    [getattr(r, c) for c in R_COLUMNS],
                )
            elif held[0] != r.device_id:  # a round is no evidence: the first one stays
                why = f"round id already held by device {held[0] or '?'}"
                self.q.add("rounds", r.id, why, "disputed")

    def orphans(self) -> None:
        present = self.source.columns.get("bodies")
        if self.result.cut or present is None or "sha256" not in present:
            return
        for (key,) in self.source.read("SELECT substr(sha256, 1, 200) FROM bodies"):
            if key not in self.named and key not in self.refused:
                why = "no measurement of this source names it: not merged"
                self.q.add("bodies", key, why, "orphan")


def _inflate_own(data: bytes) -> bytes | None:
    """A body the output already holds (written by a probe or a merge, checked then)."""
    try:
        return zlib.decompress(data)
    except zlib.error:
        return None


# -- the command -----------------------------------------------------------------------------------
def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def merge(sources: list[str], output: str, *, caps: Caps | None = None) -> list[str]:
    """Merge ``sources`` into ``output``; returns one line per source, then a total."""
    caps = caps or Caps()
    out = Path(output)
    if not out.absolute().parent.is_dir():
        raise MergeError(
            N_("{path}: no such folder (for -o {output})"),
            path=out.absolute().parent,
            output=output,
        )
    opened: list[Source] = []
    try:
        for src in sources:
            if _same_file(Path(src), out):
                raise MergeError(N_("{path}: is the output itself"), path=src)
            opened.append(open_source(src))
        target = Store.open(out)
        try:
            lines = [_line(s, merge_source(target, s, caps), caps) for s in opened]
            measurements, devices = target.counts()
        finally:
            target.close()
        lines.append(f"{output}: {measurements} measurements from {devices} devices")
        return lines
    finally:
        for s in opened:
            s.close()


def merge_source(target: Store, source: Source, caps: Caps | None = None) -> Result:
    """One source into ``target``, in one write transaction through the store's write path."""
    chain = verify_chain(source, caps)
    try:
        result = target.merge_from(lambda: Merger(target, source, caps or Caps(), chain).run())
    except Unreadable as exc:  # rolled back: the source is quarantined whole, the rest goes on
        why = f"the source could not be read to the end ({exc}): none of it merged"

        def note() -> None:
            for sql in QUARANTINE_SQL:
                target.db.conn.execute(sql)
            Quarantine(target.db.conn, source.device, caps or Caps()).add("", "", why, "unreadable")

        target.merge_from(note)
        result = Result(
            quarantined=1, notes=[f"not merged: it could not be read to the end ({exc})"]
        )
    result.notes.extend(_chain_notes(chain))
    return result


def _line(source: Source, r: Result, caps: Caps) -> str:
    notes = list(r.notes)
    if source.older:
        notes.insert(
            0, f"an older schema ({source.older} migrations behind): read as it is, not migrated"
        )
    if r.taken_out:
        notes.append(
            f"{r.taken_out} measurements merged before taken out: their ids or places "
            "are claimed again"
        )
    if r.cut:
        notes.append(f"cut at the cap source_bytes = {caps.source_bytes}")
    if source.wal_unread:
        notes.append("its -wal file was not read: stop its probe first for its latest measurements")
    tail = f" ({'; '.join(notes)})" if notes else ""
    return (
        f"{source.path}: {r.added} measurements added, {r.seen} already there, "
        f"{r.quarantined} quarantined{tail}"
    )
