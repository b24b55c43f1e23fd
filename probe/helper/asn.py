"""The helper's IP-to-ASN table: which network (AS number, country, name) an address is in.

Contract: ``load(paths)`` reads each file its operator supplies - the public-domain iptoasn TSV
(``range_start range_end AS_number country_code AS_description``, IPv4 and/or IPv6, plain or
gzipped; AS 0 means "not routed"), or a MaxMind-format database (``.mmdb``: GeoLite2-ASN or
DB-IP's ``autonomous_system_number``/``autonomous_system_organization``, a Country or City
database's ``country.iso_code``, or IPinfo's ``asn``/``as_name``/``country``), told apart by
their bytes - and raises :class:`AsnDbError` naming the file (and line) when one is unusable.
``Table.lookup(address)`` merges the files in order (the first to know a field wins) and
returns an :class:`Entry`, or None. Addresses are looked up in memory and never written
anywhere.
"""

from __future__ import annotations

import bisect
import gzip
import ipaddress
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from probe.errors import AsnDbError
from probe.network import normalise_asn, normalise_cc
from probe.words import N_

MMDB_MARKER = b"\xab\xcd\xefMaxMind.com"


@dataclass(frozen=True, slots=True)
class Entry:
    asn: str | None = None  # "AS7552"
    cc: str | None = None
    name: str | None = None

    def merged(self, other: Entry | None) -> Entry:
        if other is None:
            return self
        return Entry(self.asn or other.asn, self.cc or other.cc, self.name or other.name)


class Source(Protocol):
    def lookup(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Entry | None: ...


class TsvTable:
    """iptoasn ranges, sorted, searched by bisection; each range's entry shared by index."""

    def __init__(self) -> None:
        self._starts: dict[int, list[int]] = {4: [], 6: []}
        self._ends: dict[int, list[int]] = {4: [], 6: []}
        self._rows: dict[int, array[int]] = {4: array("I"), 6: array("I")}
        self._entries: list[Entry] = []
        self._index: dict[Entry, int] = {}

    def add(self, start: int, end: int, version: int, entry: Entry) -> None:
        k = self._index.setdefault(entry, len(self._entries))
        if k == len(self._entries):
            self._entries.append(entry)
        self._starts[version].append(start)
        self._ends[version].append(end)
        self._rows[version].append(k)

    def finish(self) -> None:
        for v in (4, 6):
            order = sorted(range(len(self._starts[v])), key=self._starts[v].__getitem__)
            self._starts[v] = [self._starts[v][i] for i in order]
            self._ends[v] = [self._ends[v][i] for i in order]
            self._rows[v] = array("I", (self._rows[v][i] for i in order))

    def lookup(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Entry | None:
        v, n = ip.version, int(ip)
        i = bisect.bisect_right(self._starts[v], n) - 1
        if i < 0 or n > self._ends[v][i]:
            return None
        return self._entries[self._rows[v][i]]

    def __len__(self) -> int:
        return len(self._starts[4]) + len(self._starts[6])


def _tsv(path: Path, raw: bytes) -> TsvTable:
    table = TsvTable()
    text = raw.decode("utf-8", "replace")
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) < 4:
            raise AsnDbError(
                N_(
                    "{where}: expected range_start, range_end, AS number, "
                    "country and description, separated by tabs (the iptoasn format)"
                ),
                where=f"{path}:{lineno}",
            )
        try:
            start, end = ipaddress.ip_address(parts[0]), ipaddress.ip_address(parts[1])
            asn_number = int(parts[2])
        except ValueError as exc:
            raise AsnDbError(
                N_("{where}: {problem}"), where=f"{path}:{lineno}", problem=exc
            ) from None
        if start.version != end.version or int(end) < int(start):
            raise AsnDbError(
                N_("{where}: {range} is not a range"),
                where=f"{path}:{lineno}",
                range=f"{parts[0]}-{parts[1]}",
            )
        if asn_number == 0:
            continue  # "Not routed"
        cc = parts[3].strip()
        name = parts[4].strip() if len(parts) > 4 else ""
        entry = Entry(
            normalise_asn(asn_number),
            normalise_cc(cc) if len(cc) == 2 and cc.isalpha() else None,
            name[:200] or None,
        )
        table.add(int(start), int(end), start.version, entry)
    if not len(table):
        raise AsnDbError(
            N_("{path}: no routed range in it (is it an iptoasn TSV file?)"), path=path
        )
    table.finish()
    return table


class MmdbTable:
    def __init__(self, path: Path) -> None:
        import maxminddb

        try:
            self.reader = maxminddb.open_database(str(path))
        except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
            raise AsnDbError(
                N_("{path}: not a usable MaxMind database ({problem})"), path=path, problem=exc
            ) from None

    def lookup(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Entry | None:
        import maxminddb

        try:
            rec = self.reader.get(ip)
        except (ValueError, maxminddb.InvalidDatabaseError):
            return None
        return _from_record(rec) if isinstance(rec, dict) else None


def _from_record(rec: dict[str, Any]) -> Entry | None:
    """MaxMind's, DB-IP's and IPinfo's field names."""
    asn = rec.get("autonomous_system_number") or rec.get("asn")
    name = rec.get("autonomous_system_organization") or rec.get("as_name") or rec.get("name")
    country = rec.get("country")
    cc = country.get("iso_code") if isinstance(country, dict) else country
    cc = cc or rec.get("country_code")
    try:
        entry = Entry(
            normalise_asn(asn) if asn else None,
            normalise_cc(cc) if isinstance(cc, str) and cc else None,
            str(name)[:200] if name else None,
        )
    except ValueError:
        return None
    return entry if entry != Entry() else None


@dataclass(frozen=True, slots=True)
class Table:
    sources: tuple[Source, ...] = ()

    def lookup(self, address: str) -> Entry | None:
        try:
            ip = ipaddress.ip_address(address.split("%")[0])
        except ValueError:
            return None
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        out: Entry | None = None
        for s in self.sources:
            found = s.lookup(ip)
            out = found if out is None else out.merged(found)
        return out if out != Entry() else None


def load(paths: Sequence[str | Path]) -> Table:
    sources: list[Source] = []
    for p in map(Path, paths):
        try:
            raw = p.read_bytes()
        except OSError as exc:
            raise AsnDbError(
                N_("{path}: cannot read ({problem})"), path=p, problem=exc.strerror or exc
            ) from None
        gzipped = raw[:2] == b"\x1f\x8b"
        if gzipped:
            try:
                raw = gzip.decompress(raw)
            except (OSError, EOFError) as exc:
                raise AsnDbError(
                    N_("{path}: a broken gzip file ({problem})"), path=p, problem=exc
                ) from None
        if MMDB_MARKER in raw[-128 * 1024 :]:
            if gzipped:
                raise AsnDbError(
                    N_("{path}: a compressed MaxMind database: decompress it first"), path=p
                )
            sources.append(MmdbTable(p))
        else:
            sources.append(_tsv(p, raw))
        del raw
    return Table(tuple(sources))


def entry_fields(entry: Entry | None) -> dict[str, str | None]:
    e = entry or Entry()
    return {"asn": e.asn, "cc": e.cc, "network_name": e.name}
