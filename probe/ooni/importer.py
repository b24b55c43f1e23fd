"""Import OONI Web Connectivity measurements into the probe's database.

Contract: ``import_ooni(store, paths)`` streams each file (JSON Lines, one measurement per line,
as OONI's API and bucket serve them, optionally gzipped; or a single JSON document), turns
every Web Connectivity measurement into our observations and control evidence
(:mod:`probe.ooni.translate`), classifies it with our rules and stores it, with OONI's own verdict
kept beside ours. Memory stays flat whatever the file's size. Each measurement is one transaction,
and its id is derived from OONI's identifiers, so importing twice adds nothing. A malformed
line is reported with its line number and skipped; nothing is half-stored.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, cast

from probe.classify import classify
from probe.classify.fingerprints import FingerprintSet
from probe.errors import LineProblem, OONIFormatError
from probe.model import Measurement
from probe.ooni.translate import from_ooni
from probe.store import Store
from probe.timeutil import iso
from probe.words import N_

MAX_SINGLE_DOCUMENT = 64 * 1024 * 1024


@dataclass(slots=True)
class ImportReport:
    read: int = 0
    imported: int = 0
    duplicates: int = 0
    skipped: list[LineProblem] = field(default_factory=list)  # "FILE:LINE: reason", one a line


MAX_LINE = 64 * 2**20  # one measurement; OONI's largest (bodies included) are a few MB


def _open(path: Path) -> IO[bytes]:
    with path.open("rb") as probe_fh:
        gz = probe_fh.read(2) == b"\x1f\x8b"
    if gz:  # GzipFile opened by name closes its file with it
        return cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb")


def _lines(fh: IO[bytes]) -> Iterator[bytes | LineProblem]:
    """Each line, or a LineProblem for one over MAX_LINE (read past, never held whole)."""
    while line := fh.readline(MAX_LINE + 1):
        if len(line) > MAX_LINE and not line.endswith(b"\n"):
            while (rest := fh.readline(2**20)) and not rest.endswith(b"\n"):
                pass
            yield LineProblem(N_("longer than {size} MiB"), size=MAX_LINE // 2**20)
            continue
        yield line


def _int(text: str) -> int:
    """A JSON integer, or LineProblem past the digits Python converts (int() would raise a bare
    ValueError, which is no measurement's problem but looked like the importer's own)."""
    limit = sys.get_int_max_str_digits()
    digits = len(text) - text.startswith("-")
    if limit and digits > limit:
        raise LineProblem(
            N_("a number of {digits} digits (at most {limit})"), digits=digits, limit=limit
        )
    return int(text)


def _parse(data: bytes) -> Any:
    """The JSON value of ``data``, or LineProblem; JSONDecodeError is left to the caller."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LineProblem(
            N_("not UTF-8 (byte {byte} at {offset})"),
            byte=f"0x{data[exc.start]:02x}",
            offset=exc.start,
        ) from None
    try:
        return json.loads(text, parse_int=_int)
    except RecursionError:
        raise LineProblem(N_("nested too deeply")) from None


def _documents(path: Path) -> Iterator[tuple[int, Any | Exception]]:
    """(line number, parsed document or the error) for every measurement in a file."""
    with _open(path) as fh:
        lineno = 0
        lines = _lines(fh)
        for line in lines:
            lineno += 1
            if isinstance(line, LineProblem):
                yield lineno, line
                continue
            if not line.strip():
                continue
            try:
                yield lineno, _parse(line)
            except LineProblem as exc:
                yield lineno, exc
            except json.JSONDecodeError as exc:
                if lineno > 1 or exc.pos < len(line.rstrip()):
                    yield lineno, exc  # a malformed line; the next ones still count
                    continue
                # The first line stops where a JSON value goes on: one pretty-printed document
                # (a measurement.json file), read whole up to its cap.
                rest = fh.read(MAX_SINGLE_DOCUMENT + 1)
                if len(rest) > MAX_SINGLE_DOCUMENT:
                    cap = MAX_SINGLE_DOCUMENT // 2**20
                    yield (
                        lineno,
                        LineProblem(N_("one JSON document larger than {size} MiB"), size=cap),
                    )
                    return
                try:
                    yield lineno, _parse(line + rest)
                except LineProblem as exc2:
                    yield lineno, exc2
                except json.JSONDecodeError as exc2:
                    yield lineno + exc2.lineno - 1, exc2
                return


def measurement_id(m: dict[str, Any]) -> str:
    """Stable across imports: OONI's measurement_uid, else a hash of the measurement itself
    (report ids repeat across a report's inputs, and are empty in OONI's own QA data)."""
    uid = m.get("measurement_uid")
    if isinstance(uid, str) and uid:
        return f"ooni-{uid}"
    canonical = json.dumps(m, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "ooni-" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _started_at(text: Any) -> str:
    """OONI's "2024-02-12 20:33:47" (UTC) -> "2024-02-12T20:33:47.000Z"."""
    if not isinstance(text, str):
        raise OONIFormatError(N_("measurement_start_time is missing"))
    try:
        t = datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        raise OONIFormatError(
            N_("measurement_start_time {value} is not OONI's format"), value=repr(text[:40])
        ) from None
    return iso(t)


def to_measurement(m: dict[str, Any], fingerprints: FingerprintSet) -> Measurement:
    imported = from_ooni(m)
    verdict = classify(
        imported.observations,
        control=imported.control,
        fingerprints=fingerprints,
        network_ok=imported.network_ok,
    )
    meta = imported.meta
    runtime = m.get("test_runtime")
    return Measurement(
        id=measurement_id(m),
        target=imported.observations.url,
        url=imported.observations.url,
        started_at=_started_at(m.get("measurement_start_time")),
        observations=imported.observations,
        verdict=verdict,
        runtime=float(runtime) if isinstance(runtime, int | float) else 0.0,
        control=imported.control,
        network_ok=imported.network_ok,
        source="ooni",
        probe_asn=meta.get("probe_asn"),
        probe_cc=meta.get("probe_cc"),
        software=f"{meta.get('software_name')}/{meta.get('software_version')}",
        extra={
            "ooni_verdict": imported.ooni_verdict,
            "report_id": meta.get("report_id"),
            "test_version": meta.get("test_version"),
        },
    )


def _skip(where: str, why: str = "", **fields: object) -> LineProblem:
    """``where``: why the line is skipped (a ``why`` message id with ``fields``, or the
    ``problem`` field alone, a LineProblem or OONIFormatError translated with it)."""
    problem = LineProblem(why, **fields) if why else fields["problem"]
    return LineProblem(N_("{where}: {problem}"), where=where, problem=problem)


def import_ooni(
    store: Store,
    paths: list[Path],
    fingerprints: FingerprintSet,
    progress: Callable[[ImportReport], None] = lambda r: None,
) -> ImportReport:
    report = ImportReport()
    for path in paths:
        for lineno, doc in _documents(path):
            report.read += 1
            where = f"{path}:{lineno}"
            if isinstance(doc, json.JSONDecodeError):
                report.skipped.append(_skip(where, N_("not JSON ({problem})"), problem=doc.msg))
                continue
            if isinstance(doc, Exception):
                report.skipped.append(_skip(where, problem=doc))
                continue
            if not isinstance(doc, dict):
                report.skipped.append(_skip(where, N_("not a JSON object")))
                continue
            if store.exists(measurement_id(doc)):
                report.duplicates += 1
                continue
            try:
                m = to_measurement(doc, fingerprints)
            except OONIFormatError as exc:  # the only error bad input can raise
                report.skipped.append(_skip(where, problem=exc))
                continue
            except RecursionError:  # json.loads took it; walking it did not
                report.skipped.append(_skip(where, N_("nested too deeply")))
                continue
            store.save(m)
            report.imported += 1
            if report.read % 1000 == 0:
                progress(report)
    return report
