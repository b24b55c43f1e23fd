"""``probe verify``: is a probe database whole? Every record hash, link, body and signed head.

Contract: :func:`verify` opens the database read-only (never created, never migrated: no
trigger or view of it runs, ``trusted_schema`` off) and yields one :class:`Problem` per thing
that is not as the probe stored it, each naming the measurement by id and the case:

- ``altered``: a chained measurement's record no longer matches its ``record_hash``;
- ``removed``: a place in a chain is empty (named by the id its successor's ``chain_prev``
  holds, or by the signed head that covers it) and no prune its own device recorded and
  signed covers it (``chain_pruned``, m011: such places are counted as pruned, and the link of
  the measurement after a pruned range is checked against the pruned one's chain hash), or a
  measurement the migration listed as stored before the chain began is gone;
- ``inserted``: a measurement in no chain stored after the chain began, one whose link does
  not hold (a place forged for it), or a second one claiming a place already taken;
- ``reordered``: a measurement whose link holds after another place than its ``seq`` says;
- ``body swapped`` / ``body removed``: a body stored under a key the record binds no longer
  has the content it was saved with (``body_digests``), or is gone;
- ``bad timestamp``: an RFC 3161 timestamp of a head (``probe merge --timestamp``) whose
  stored digest is not the head's as stored now, or, given the TSA's roots, whose token does
  not verify for it;
- ``bad signature`` / ``not as signed``: a head whose signature does not hold with the key it
  names, or a chain whose stored state at a signed head's place is not the one signed (a chain
  rewritten with every hash and link recomputed: only the device key can sign its heads).

Each chain is read by device and sequence, streamed; one point lookup per broken link and a
bounded cache of body hashes keep memory flat whatever the database's size. :class:`Summary`
(filled as the problems are read) counts what was checked and what could not be: measurements
stored before the chain began (unchained), those after a device's last signed head (linked, not
yet signed), those pruned, the timestamps, and (a fleet database) those merged from a source
whose chain did not verify. :func:`check` is the same on a connection the caller opened (``probe
merge`` checks each source so). A database from before the chain has only unchained rows and
verifies. What the hash covers is :mod:`probe.evidence.canonical`'s contract: verdicts are
outside it, derived from the facts it covers (``probe reclassify`` derives them again).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probe.evidence import canonical, heads
from probe.store import Store, chain
from probe.words import N_

ALTERED = "altered"
REMOVED = "removed"
INSERTED = "inserted"
REORDERED = "reordered"
BODY_SWAPPED = "body swapped"
BODY_REMOVED = "body removed"
BAD_SIGNATURE = "bad signature"
NOT_AS_SIGNED = "not as signed"
BAD_TIMESTAMP = "bad timestamp"

BODY_CACHE = 4096  # body content hashes kept while verifying (bodies are shared by rounds)


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing not as stored: its kind, the measurement (or head) it names, and its line
    (``template``, an English message id, with ``fields``)."""

    kind: str
    subject: str
    template: str
    fields: dict[str, Any] = field(default_factory=dict)
    device: str = ""  # the device key of the chain it is in ("" when in none)

    def line(self, gettext: Any = None) -> str:
        """``<subject>: <kind>: <what>``, in the language of ``gettext`` (English without)."""
        t = gettext or (lambda s: s)
        return f"{self.subject}: {t(self.kind)}: {t(self.template).format(**self.fields)}"


@dataclass
class Device:
    key: str
    measurements: int = 0
    last_seq: int = 0
    heads: int = 0
    signed_seq: int = 0
    last_signed: str | None = None
    stamped: int = 0  # of its signed heads, those with a timestamp


@dataclass
class Summary:
    chains: dict[str, Device] = field(default_factory=dict)
    unchained: int = 0
    problems: int = 0
    timestamps: int = 0  # RFC 3161 tokens on signed heads (probe merge --timestamp)
    timestamps_checked: bool = False  # each checked against the TSA roots given
    timestamps_bad: int = 0
    pruned: int = 0  # places of a chain its own device's prune recorded and signed
    pruned_chains: int = 0
    unverified: int = 0  # merged from a source whose chain did not verify (probe merge)

    @property
    def measurements(self) -> int:
        return sum(d.measurements for d in self.chains.values())


# The kinds, for the catalog: a problem's line translates its kind too.
KINDS = (
    N_("altered"),
    N_("removed"),
    N_("inserted"),
    N_("reordered"),
    N_("body swapped"),
    N_("body removed"),
    N_("bad signature"),
    N_("not as signed"),
    N_("bad timestamp"),
)


def verify(
    path: str | Path, summary: Summary | None = None, roots: Sequence[Any] | None = None
) -> Iterator[Problem]:
    """Every problem of the database at ``path`` (see the contract); ``summary`` is filled
    as they are read; ``roots`` (the TSA's root certificates) check each timestamp's token.
    Raises :class:`~probe.errors.StoreError` for what is not a probe database."""
    summary = summary if summary is not None else Summary()
    store = Store.open_source(path)
    conn = store.db.conn
    try:
        conn.execute("PRAGMA trusted_schema = OFF")
        conn.execute("PRAGMA query_only = ON")
        yield from check(conn, summary, roots)
    finally:
        store.close()


def check(
    conn: sqlite3.Connection, summary: Summary | None = None, roots: Sequence[Any] | None = None
) -> Iterator[Problem]:
    """Every problem of the probe database open on ``conn`` (see the contract), reading
    only; ``summary`` is filled as they are read. The caller opens the connection (``probe
    merge`` its read-only, immutable source) and keeps triggers and views from running."""
    summary = summary if summary is not None else Summary()
    for p in _check(conn, summary):
        summary.problems += 1
        yield p
    for p in _timestamps(conn, summary, roots):
        summary.problems += 1
        summary.timestamps_bad += 1
        yield p
    if "unverified_measurements" in chain.tables(conn):
        summary.unverified = int(
            conn.execute("SELECT count(*) FROM unverified_measurements").fetchone()[0]
        )


def _timestamps(
    conn: sqlite3.Connection, summary: Summary, roots: Sequence[Any] | None
) -> Iterator[Problem]:
    """A fleet database's timestamps (``probe merge --timestamp``): each token's stored
    digest is its head's as stored now; with ``roots``, the token verifies for it
    (:func:`probe.analyst.timestamp.verify`: the TSA's signature and chain, the imprint)."""
    if "timestamps" not in chain.tables(conn) or "chain_heads" not in chain.tables(conn):
        return
    from probe.analyst import timestamp
    from probe.errors import TimestampError

    summary.timestamps_checked = bool(roots)
    for h, token, stored in chain.timestamps(conn):
        summary.timestamps += 1
        subject = f"head {h['kind']} {h['label']}"
        d = summary.chains.setdefault(str(h["device_key"]), Device(str(h["device_key"])))
        d.stamped += 1
        try:
            digest = timestamp.head_digest(
                str(h["device_key"]), int(h["seq"]), h["chain_hash"], h["signature"]
            )
        except (TimestampError, TypeError, ValueError):
            digest = b""
        if digest != stored:
            yield Problem(
                BAD_TIMESTAMP,
                subject,
                N_("its timestamp is for another state of the head"),
                device=d.key,
            )
            continue
        if roots:
            try:
                timestamp.verify(token, digest, roots=roots)
            except TimestampError as exc:
                yield Problem(
                    BAD_TIMESTAMP,
                    subject,
                    N_("its timestamp does not hold ({why})"),
                    {"why": str(exc)[:200]},
                    device=d.key,
                )


def _check(conn: sqlite3.Connection, summary: Summary) -> Iterator[Problem]:
    if "seq" not in chain.columns(conn, "measurements"):  # made before the chain
        summary.unchained = int(conn.execute("SELECT count(*) FROM measurements").fetchone()[0])
        return
    prunes = _prunes(conn, summary)
    yield from _chains(conn, summary, prunes)
    yield from _heads(conn, summary, prunes)
    for mid, listed in chain.unchained(conn):
        if listed:
            summary.unchained += 1
        else:
            yield Problem(INSERTED, mid, N_("in no chain, and stored after the chain began"))
    for mid in chain.unchained_missing(conn):
        yield Problem(REMOVED, mid, N_("stored before the chain began"))


class Prunes:
    """The ranges of each chain that its own device's prunes recorded and signed
    (``probe.evidence.pruned``); a record signed by any other key, or whose columns are not
    what it signed, counts for nothing (its places read as removed)."""

    def __init__(self) -> None:
        self.ranges: dict[str, list[tuple[int, int, str]]] = {}

    def add(self, device: str, first: int, last: int, last_chain_hash: str) -> None:
        self.ranges.setdefault(device, []).append((first, last, last_chain_hash))

    def covers(self, device: str, seq: int) -> bool:
        return any(a <= seq <= b for a, b, _ in self.ranges.get(device, ()))

    def uncovered(self, device: str, first: int, last: int) -> list[tuple[int, int]]:
        """The runs of ``first..last`` no range covers."""
        out: list[tuple[int, int]] = []
        n = first
        for a, b, _ in sorted(self.ranges.get(device, ())):
            if b < n or a > last:
                continue
            if a > n:
                out.append((n, a - 1))
            n = max(n, b + 1)
        if n <= last:
            out.append((n, last))
        return out

    def ending(self, device: str, seq: int) -> str | None:
        """The chain hash of the pruned place ``seq``, when a range ends there."""
        return next((h for a, b, h in self.ranges.get(device, ()) if b == seq), None)


def _prunes(conn: sqlite3.Connection, summary: Summary) -> Prunes:
    found = Prunes()
    chains: set[str] = set()
    for row, record in chain.prunes(conn):
        if record is None or not record.own:
            continue
        if (record.device_key, record.first, record.last, record.last_chain_hash) != (
            row["device_key"],
            row["first_seq"],
            row["last_seq"],
            row["last_chain_hash"],
        ) or not _is_hash(record.last_chain_hash):
            continue
        found.add(record.device_key, record.first, record.last, record.last_chain_hash)
        summary.pruned += record.last - record.first + 1
        chains.add(record.device_key)
    summary.pruned_chains = len(chains)
    return found


def _chains(conn: sqlite3.Connection, summary: Summary, prunes: Prunes) -> Iterator[Problem]:
    at = [""]  # the device of the row being read: every problem is of its chain
    for p in _chain_problems(conn, summary, at, prunes):
        yield dataclasses.replace(p, device=at[0])


def _chain_problems(
    conn: sqlite3.Connection, summary: Summary, at: list[str], prunes: Prunes
) -> Iterator[Problem]:
    body_hash = functools.lru_cache(maxsize=BODY_CACHE)(
        lambda key: chain.body_content_hash(chain.body_data(conn, key))
    )
    prev: dict[str, Any] | None = None
    # A measurement whose link holds after another place than its seq says is only called
    # reordered when the next one does not follow it either: the one after two swapped
    # measurements is in its place, though its predecessor is not.
    moved: Problem | None = None
    for row in chain.chained(conn):
        device = at[0] = str(row["device_key"])
        if device not in summary.chains:
            summary.chains[device] = Device(device)
            prev = moved = None
        if moved is not None and row["chain_prev"] != moved.subject:
            yield moved
        moved = None
        d = summary.chains[device]
        d.measurements += 1
        mid = str(row["id"])
        if not _well_formed(row):
            yield Problem(ALTERED, mid, N_("its chain columns are not what the probe writes"))
            continue
        seq = int(row["seq"])
        d.last_seq = max(d.last_seq, seq)
        try:
            altered = canonical.record_hash(row) != row["record_hash"]
        except (ValueError, TypeError):  # a value no probe stores (a blob, a huge integer)
            altered = True
        if altered:
            yield Problem(
                ALTERED, mid, N_("its record no longer matches its hash (seq {seq})"), {"seq": seq}
            )
        yield from _bodies(row, body_hash, altered)
        for p in _link(conn, row, prev, prunes):
            if p.kind == REORDERED:
                moved = p
            else:
                yield p
        prev = row


def _is_hash(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in _HEX for c in value)


_HEX = frozenset("0123456789abcdef")


def _well_formed(row: dict[str, Any]) -> bool:
    """Chain columns of the types the store writes (a hostile file may hold anything)."""
    seq, prev = row["seq"], row["chain_prev"]
    return (
        isinstance(seq, int)
        and seq >= 1
        and _is_hash(row["record_hash"])
        and _is_hash(row["chain_hash"])
        and (prev is None or isinstance(prev, str))
    )


def _bodies(row: dict[str, Any], body_hash: Any, altered: bool) -> Iterator[Problem]:
    raw = row.get("body_digests")
    if raw is None:
        return
    try:
        digests = [(str(k), str(v)) for k, v in json.loads(raw)]
    except (ValueError, TypeError):
        return  # not the text it was saved with: the record hash says so
    for key, content in digests:
        held = body_hash(key)
        if held is None:
            yield Problem(
                BODY_REMOVED, str(row["id"]), N_("no body is stored under {key}"), {"key": key}
            )
        elif held != content:
            yield Problem(
                BODY_SWAPPED,
                str(row["id"]),
                N_("the body stored under {key} is not the one it was saved with"),
                {"key": key},
            )


def _link(
    conn: sqlite3.Connection, row: dict[str, Any], prev: dict[str, Any] | None, prunes: Prunes
) -> Iterator[Problem]:
    """The problems of one measurement's place in its chain, ``prev`` the one read before it
    (None at the chain's start)."""
    seq, mid, named = int(row["seq"]), str(row["id"]), row["chain_prev"]
    record_hash, chain_hash = str(row["record_hash"]), str(row["chain_hash"])
    if prev is not None and int(prev["seq"]) == seq:
        yield Problem(
            INSERTED,
            mid,
            N_("it claims seq {seq}, the place of {other}"),
            {"seq": seq, "other": prev["id"]},
        )
        return
    if named is None:
        if seq == 1 and canonical.link(canonical.GENESIS, record_hash) == chain_hash:
            return
        yield Problem(
            INSERTED, mid, N_("its link to the chain does not hold (seq {seq})"), {"seq": seq}
        )
        return
    before = prev if prev is not None and prev["id"] == named else chain.at_id(conn, str(named))
    if before is None:
        first = int(prev["seq"]) + 1 if prev is not None else 1
        device = str(row["device_key"])
        pruned_hash = prunes.ending(device, seq - 1) if first < seq else None
        if pruned_hash is not None and not prunes.uncovered(device, first, seq - 1):
            # every place before it pruned, as its device recorded and signed: its link
            # must still hold after the last one pruned
            if canonical.link(pruned_hash, record_hash) != chain_hash:
                yield Problem(
                    INSERTED,
                    mid,
                    N_("its link to the chain does not hold (seq {seq})"),
                    {"seq": seq},
                )
            return
        if first < seq:
            gaps = prunes.uncovered(device, first, seq - 1) or [(first, seq - 1)]
            where = ", ".join(f"{a}..{b}" if a < b else str(a) for a, b in gaps)
            yield Problem(
                REMOVED, str(named), N_("seq {where} of its chain is missing"), {"where": where}
            )
        else:
            yield Problem(
                INSERTED, mid, N_("its link to the chain does not hold (seq {seq})"), {"seq": seq}
            )
        return
    if not _is_hash(before["chain_hash"]) or not isinstance(before["seq"], int):
        yield Problem(
            INSERTED, mid, N_("its link to the chain does not hold (seq {seq})"), {"seq": seq}
        )
        return
    if canonical.link(str(before["chain_hash"]), record_hash) != chain_hash:
        yield Problem(
            INSERTED, mid, N_("its link to the chain does not hold (seq {seq})"), {"seq": seq}
        )
        return
    if int(before["seq"]) != seq - 1 or before["device_key"] != row["device_key"]:
        yield Problem(
            REORDERED,
            mid,
            N_("seq {seq}, but its chain puts it after {other} (seq {other_seq})"),
            {"seq": seq, "other": before["id"], "other_seq": before["seq"]},
        )


def _heads(conn: sqlite3.Connection, summary: Summary, prunes: Prunes) -> Iterator[Problem]:
    at = [""]  # the device the head being read names
    for p in _head_problems(conn, summary, at, prunes):
        yield dataclasses.replace(p, device=at[0])


def _head_problems(
    conn: sqlite3.Connection, summary: Summary, at: list[str], prunes: Prunes
) -> Iterator[Problem]:
    missing: set[tuple[str, int]] = set()
    for h in chain.chain_heads(conn):
        at[0] = str(h["device_key"])
        subject = f"head {h['kind']} {h['label']}"
        head = heads.check(str(h["statement"] or "").encode(), str(h["signature"] or ""))
        if head is None:
            yield Problem(
                BAD_SIGNATURE, subject, N_("its signature does not hold with the key it names")
            )
            continue
        if (head.device_key, head.seq, head.chain_hash, head.kind) != (
            h["device_key"],
            h["seq"],
            h["chain_hash"],
            h["kind"],
        ):
            yield Problem(BAD_SIGNATURE, subject, N_("its columns are not what it signed"))
            continue
        d = summary.chains.setdefault(head.device_key, Device(head.device_key))
        d.heads += 1
        if head.seq >= d.signed_seq:
            d.signed_seq, d.last_signed = head.seq, head.at
        rows = chain.at_seq(conn, head.device_key, head.seq)
        if not rows:
            if prunes.covers(head.device_key, head.seq):
                continue  # its place pruned, as its device recorded and signed
            if (head.device_key, head.seq) not in missing:
                missing.add((head.device_key, head.seq))
                yield Problem(
                    REMOVED,
                    f"seq {head.seq}",
                    N_("missing, though the signed head of {at} covers it"),
                    {"at": head.at},
                )
            continue
        if all(r["chain_hash"] != head.chain_hash for r in rows):
            yield Problem(
                NOT_AS_SIGNED,
                str(rows[0]["id"]),
                N_("the chain up to it (seq {seq}) is not the one signed at {at}"),
                {"seq": head.seq, "at": head.at},
            )
