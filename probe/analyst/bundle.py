"""``probe evidence``: a self-contained bundle of chosen measurements, verifiable without the
database and without probe.

Contract: :func:`write` reads a probe database read-only (``Store.open_source``, never
migrated, ``trusted_schema`` off) and writes one zip file (:func:`layout` in
:mod:`probe.analyst.bundle_verifier`'s contract): the chosen measurements' records as stored,
their bodies, the segments of their devices' chains that tie each one to the first signed head
after it, those heads with their signatures, the device keys, the verdicts (with rule id and
rules version, outside the hash), a plain-language summary in English and Vietnamese
(``summary.en.txt``, ``summary.vi.txt``), verification instructions (``README.txt``, both
languages) and the standalone verifier (``verify_bundle.py``, a copy of
``bundle_verifier.py``). A zip, not a folder: one file to send, hash, timestamp and archive,
which every system unzips and Python's standard library reads; the verifier reads the zip or
the folder it unzips to alike.

Measurements are chosen by id, or by target and time (``RowFilter``), at most
:data:`MAX_MEASUREMENTS`. One stored before the chain began, or after its device's last signed
head, cannot be tied to a signature: :class:`~probe.errors.ExportError` names it, and nothing
is written. Nothing of the volunteer's machine goes in: no path, no setting, no file but those
above; the records are the stored (already scrubbed) rows, whose network is the ASN and
country, never the address. The links of measurements between a chosen one and its head that
were not chosen stand in their segment by their hashes alone. The bundle is checked with the
verifier before it replaces ``output`` (atomically); a database whose chain does not hold
there gives no bundle (:class:`NotWhole`, with the problems).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sqlite3
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from probe import __version__
from probe.analyst import bundle_verifier as bv
from probe.errors import ExportError
from probe.evidence import canonical
from probe.store import RowFilter, Store, chain
from probe.timeutil import utc_now
from probe.words import N_, translator, words

MAX_MEASUREMENTS = 10_000
VERDICT_FIELDS = (
    "blocking",
    "accessible",
    "throttled",
    "offline",
    "evidence",
    "dns_consistency",
    "failing_step",
    "failure",
    "blockpage",
    "body_proportion",
    "body_length_match",
    "status_code_match",
    "headers_match",
    "title_match",
    "rule_id",
    "rules_version",
)
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # every entry the same time: a bundle says when in bundle.json


class NotWhole(Exception):
    """The database's chain does not hold for the chosen measurements: ``problems``."""

    def __init__(self, problems: list[bv.Problem]) -> None:
        super().__init__(f"{len(problems)} problems")
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Written:
    path: Path
    measurements: int
    devices: int


def write(
    database: str | Path,
    output: str | Path,
    *,
    ids: Sequence[str] = (),
    row_filter: RowFilter | None = None,
    now: str | None = None,
) -> Written:
    """Write the bundle of the measurements ``ids`` and those ``row_filter`` chooses (see the
    contract)."""
    out = Path(output)
    store = Store.open_source(database)
    conn = store.db.conn
    try:
        conn.execute("PRAGMA trusted_schema = OFF")
        conn.execute("PRAGMA query_only = ON")
        rows = _chosen(conn, ids, row_filter)
        files = _files(conn, rows, now or utc_now())
    finally:
        store.close()
    if out.exists() and out.is_dir():
        raise ExportError(N_("{path}: is a folder, not a file to write"), path=out)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".evidence-", suffix=".zip", dir=out.parent or ".")
    except OSError as exc:
        raise ExportError(
            N_("{path}: cannot write the bundle ({cause})"), path=out, cause=exc.strerror
        ) from None
    try:
        with os.fdopen(fd, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as z:
            for name in sorted(files):
                info = zipfile.ZipInfo(f"{bv.TOP}/{name}", _ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = (0o755 if name.endswith(".py") else 0o644) << 16
                z.writestr(info, files[name])
        result = bv.check(tmp)
        if result.problems:
            raise NotWhole(result.problems)
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return Written(out, len(rows), len({r["device_key"] for r in rows}))


def verify(
    path: str | Path,
    gettext: Callable[[str], str],
    ngettext: Callable[[str, str, int], str],
    roots: Sequence[Any] | None = None,
) -> tuple[int, list[str]]:
    """``probe verify --bundle``: (exit status, lines) of the bundle at ``path``, checked with
    this probe's own copy of the verifier (not the bundle's); with ``roots`` (the TSA's root
    certificates), each timestamp's token too (:func:`probe.analyst.timestamp.verify`)."""
    try:
        result = bv.check(path)
    except bv.Unreadable as exc:
        raise ExportError(exc.template, **exc.fields) from None
    if roots:
        from probe.analyst import timestamp
        from probe.errors import TimestampError

        for t in result.timestamps:
            try:
                timestamp.verify(t.token, bytes.fromhex(t.digest), roots=roots)
            except (TimestampError, ValueError) as exc:
                result.problems.append(
                    bv.Problem(
                        bv.BAD_TIMESTAMP,
                        t.subject,
                        N_("its timestamp does not hold ({why})"),
                        {"why": str(exc)[:200]},
                    )
                )
        result.timestamps_checked = True
    return (0 if result.whole else 1), bv.lines(result, path, gettext, ngettext)


# -- choosing ------------------------------------------------------------------------------------
def _chosen(
    conn: sqlite3.Connection, ids: Sequence[str], row_filter: RowFilter | None
) -> list[dict[str, Any]]:
    have = chain.columns(conn, "measurements")
    if "seq" not in have:
        raise ExportError(
            N_("the database was made before the chain: no measurement of it can be bundled")
        )
    wanted = [
        c for c in (*canonical.RECORD_FIELDS, *chain.CHAIN_COLUMNS, *VERDICT_FIELDS) if c in have
    ]
    wanted += ["throughput"] if "throughput" in have else []
    select = ", ".join(f'"{c}"' for c in wanted)
    found: dict[str, dict[str, Any]] = {}

    def add(cursor: Iterable[Sequence[Any]]) -> None:
        for r in cursor:
            row = dict(zip(wanted, r, strict=True))
            found.setdefault(str(row["id"]), row)
            if len(found) > MAX_MEASUREMENTS:
                raise ExportError(
                    N_(
                        "more than {n} measurements chosen: choose fewer "
                        "(--id, --target, --since, --until)"
                    ),
                    n=MAX_MEASUREMENTS,
                )

    for mid in ids:
        before = len(found)
        add(conn.execute(f"SELECT {select} FROM measurements WHERE id = ?", [mid]))
        if len(found) == before and mid not in found:
            raise ExportError(N_("{id}: no such measurement"), id=mid)
    if row_filter is not None:
        where, params = row_filter.where()
        add(
            conn.execute(
                f"SELECT {select} FROM measurements WHERE {where} ORDER BY started_at", params
            )
        )
    if not found:
        raise ExportError(N_("no measurement is chosen: none matches the given target and time"))
    for mid, row in found.items():
        if row["seq"] is None or row["device_key"] is None:
            raise ExportError(
                N_("{id}: stored before the chain began: no signature covers it"), id=mid
            )
        if not bv._SAFE.fullmatch(mid):
            raise ExportError(N_("{id}: not a measurement id a bundle can hold"), id=mid)
    return sorted(found.values(), key=lambda r: (str(r["device_key"]), int(r["seq"])))


# -- the files -----------------------------------------------------------------------------------
def _files(conn: sqlite3.Connection, rows: list[dict[str, Any]], now: str) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    by_device: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_device.setdefault(str(row["device_key"]), []).append(row)
        files.update(_measurement(conn, row))
    signed: dict[str, dict[str, Any]] = {}  # id -> the head that ties it
    for device, chosen in by_device.items():
        segments = _segments(conn, device, chosen, signed)
        files[f"chains/{device}.json"] = _json({"device_key": device, "segments": segments})
    manifest = {
        "format": bv.FORMAT,
        "version": bv.VERSION,
        "made_at": now,
        "made_by": f"probe {__version__}",
        "measurements": [str(r["id"]) for r in rows],
        "devices": sorted(by_device),
    }
    files["bundle.json"] = _json(manifest)
    files["verify_bundle.py"] = Path(bv.__file__).read_bytes()
    for lang in ("en", "vi"):
        files[f"summary.{lang}.txt"] = summary(rows, signed, now, lang).encode("utf-8")
    files["README.txt"] = (readme("en") + "\n\n" + readme("vi")).encode("utf-8")
    return files


def _json(value: Any) -> bytes:
    try:
        text = json.dumps(value, ensure_ascii=False, indent=1, sort_keys=True)
        return (text + "\n").encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: escaped, it reads back the same
        return (json.dumps(value, indent=1, sort_keys=True) + "\n").encode("ascii")


def _measurement(conn: sqlite3.Connection, row: dict[str, Any]) -> dict[str, bytes]:
    folder = f"measurements/{row['id']}"
    files = {f"{folder}/record.json": _json({f: row.get(f) for f in bv.PLAIN_FIELDS})}
    for name in bv.DIGESTED_FIELDS:
        text = row.get(name)
        if isinstance(text, str):
            files[f"{folder}/{name}.json"] = text.encode("utf-8", "surrogatepass")
        elif isinstance(text, bytes):
            files[f"{folder}/{name}.json"] = text
    verdict = {f: row.get(f) for f in VERDICT_FIELDS}
    verdict["words"] = _words(row)
    files[f"{folder}/verdict.json"] = _json(verdict)
    try:
        digests = json.loads(row.get("body_digests") or "[]")
    except ValueError:
        digests = []
    for key, _content in digests:
        data = chain.body_data(conn, str(key))
        if isinstance(data, bytes) and bv._HEX64.fullmatch(str(key)):
            with contextlib.suppress(zlib.error):  # not as stored: the verifier names it
                files[f"bodies/{key}"] = zlib.decompress(data)
    return files


def _throttle_label(row: dict[str, Any]) -> str | None:
    try:
        label = json.loads(row.get("throughput") or "null")["analysis"]["label"]
    except (ValueError, TypeError, KeyError):
        return None
    return label if isinstance(label, str) else None


def _words(row: dict[str, Any], lang: str = "en") -> str:
    return words(
        row.get("blocking"),
        row.get("accessible"),
        row.get("evidence"),
        bool(row.get("offline")),
        row.get("throttled"),
        blockpage=row.get("blockpage"),
        throttle_label=_throttle_label(row),
        lang=lang,
    )


def _segments(
    conn: sqlite3.Connection,
    device: str,
    chosen: list[dict[str, Any]],
    signed: dict[str, dict[str, Any]],
) -> list[dict[str, Any]]:
    """The segments of ``device``'s chain from each chosen measurement to the first head
    signed at or after it (chosen ones sharing a head share a segment)."""
    heads = list(
        conn.execute(
            "SELECT kind, label, seq, at, statement, signature, rowid FROM chain_heads "
            "WHERE device_key = ? ORDER BY seq, kind, label",
            [device],
        )
    )
    stamps = _timestamps(conn)
    groups: dict[int, list[dict[str, Any]]] = {}
    for row in chosen:
        seq = int(row["seq"])
        end = next((int(h[2]) for h in heads if int(h[2]) >= seq), None)
        if end is None:
            raise ExportError(
                N_(
                    "{id}: no signed head covers it yet (seq {seq}): bundle it after its "
                    "device's next round"
                ),
                id=row["id"],
                seq=seq,
            )
        groups.setdefault(end, []).append(row)
    segments = []
    for end, group in sorted(groups.items()):
        first = min(int(r["seq"]) for r in group)
        if first == 1:
            start = canonical.GENESIS
        else:
            before = chain.at_seq(conn, device, first - 1)
            if before:
                start = str(before[0]["chain_hash"])
            else:  # pruned: the chain hash its device's signed prune record kept
                start = next(
                    (
                        r.last_chain_hash
                        for _, r in chain.prunes(conn)
                        if r is not None
                        and r.own
                        and r.device_key == device
                        and r.last == first - 1
                    ),
                    canonical.GENESIS,
                )
        cursor = conn.execute(
            "SELECT seq, id, chain_prev, record_hash, chain_hash FROM measurements "
            "WHERE device_key = ? AND seq BETWEEN ? AND ? ORDER BY seq",
            [device, first, end],
        )
        links = [
            dict(zip(("seq", "id", "chain_prev", "record_hash", "chain_hash"), r, strict=True))
            for r in cursor
        ]
        at_end = [
            {"kind": h[0], "label": h[1], "statement": h[4], "signature": h[5]}
            | ({"timestamps": stamps[int(h[6])]} if int(h[6]) in stamps else {})
            for h in heads
            if int(h[2]) == end
        ]
        segments.append(
            {"start": {"seq": first - 1, "chain_hash": start}, "links": links, "heads": at_end}
        )
        last_at = max(str(h[3]) for h in heads if int(h[2]) == end)
        for row in group:
            signed[str(row["id"])] = {"seq": end, "at": last_at}
    return segments


def _timestamps(conn: sqlite3.Connection) -> dict[int, list[dict[str, str]]]:
    """The RFC 3161 timestamps of a fleet database's heads (``probe merge --timestamp``), by
    head rowid: each its TSA, the time it vouches for, the digest it stamps (hex) and the DER
    token (base64)."""
    if "timestamps" not in chain.tables(conn):
        return {}
    found: dict[int, list[dict[str, str]]] = {}
    for head_id, url, at, digest, token in conn.execute(
        "SELECT head_id, tsa_url, time, digest, token FROM timestamps ORDER BY head_id, tsa_url"
    ):
        if isinstance(digest, bytes) and isinstance(token, bytes):
            found.setdefault(int(head_id), []).append(
                {
                    "tsa_url": str(url),
                    "time": str(at),
                    "digest": digest.hex(),
                    "token": base64.b64encode(token).decode("ascii"),
                }
            )
    return found


# -- the words: summary and instructions ---------------------------------------------------------
def summary(
    rows: list[dict[str, Any]], signed: dict[str, dict[str, Any]], now: str, lang: str
) -> str:
    """What a reader of the bundle needs to know, in ``lang``."""
    t = translator(lang)
    _, ngettext = t.gettext, t.ngettext
    n = len(rows)
    unknown = _("not known")
    out = [
        _(
            "Evidence from a network-measurement probe: {measurements}, bundled at {now} "
            "by probe {version}"
        ).format(
            measurements=ngettext("{n} measurement", "{n} measurements", n).format(n=n),
            now=now,
            version=__version__,
        ),
        "",
        _("What was measured"),
        "",
    ]
    for i, row in enumerate(sorted(rows, key=lambda r: (str(r["started_at"]), str(r["id"]))), 1):
        head = signed[str(row["id"])]
        kind = (
            _("a control (a site expected to be reachable)")
            if row.get("is_control")
            else _("a target")
        )
        out += [
            f"{i}. {row['target']}: {row['url']} ({kind})",
            "   "
            + _("Measured at: {at} (UTC, by the device's clock)").format(at=row["started_at"]),
            "   "
            + _(
                "Network: {name}, {asn}, country {cc} (the volunteer's address is not in "
                "this bundle)"
            ).format(
                name=row.get("network_name") or unknown,
                asn=row.get("probe_asn") or unknown,
                cc=row.get("probe_cc") or unknown,
            ),
            "   "
            + _("Verdict: {verdict} (rule {rule}, rules version {version})").format(
                verdict=_words(row, lang),
                rule=row.get("rule_id") or "?",
                version=row.get("rules_version") or "?",
            ),
            "   "
            + _(
                "Measurement id: {id}; number {seq} in the chain of device {device}, signed at {at}"
            ).format(id=row["id"], seq=row["seq"], device=row["device_key"], at=head["at"]),
            "",
        ]
    out += [
        _("What the verification proves"),
        "",
        _(
            'When verify_bundle.py (or probe verify --bundle) says "whole": each record in this '
            "bundle, with its observations and the page contents it names, is byte for byte the "
            "one the device stored; each is linked into the device's chain of measurements, with "
            "nothing removed, inserted or reordered up to a head of that chain; and the device's "
            "key signed that head. Only the holder of the device's private key can sign a head, "
            "so a record altered after it was signed does not verify."
        ),
        "",
        _("What it does not prove"),
        "",
        _(
            "- Who holds the key: the device key is a pseudonym, tied to no person. Whether "
            "the key is the one of the probe you think of must be known otherwise (for "
            "instance from an earlier bundle or the fleet's records)."
        ),
        _(
            "- When: the times are the device's own clock. Only an independent timestamp of a "
            "signed head (RFC 3161) shows that it existed by a given time."
        ),
        _(
            "- That a site was blocked: the verdict is the probe's rules applied to the facts "
            "(its rule id and rules version are given); it is not signed, and probe reclassify "
            "derives it again from the signed facts."
        ),
        _(
            "- That nothing else was measured: other measurements of the same chain are in this "
            "bundle only as hashes."
        ),
        _(
            "- That the verifier in this bundle is genuine: it can be altered too. Compare its "
            "SHA-256 with the probe's own copy, or use probe verify --bundle."
        ),
        "",
    ]
    return "\n".join(out)


def readme(lang: str) -> str:
    """The verification instructions, in ``lang``: they need only the bundle."""
    _ = translator(lang).gettext
    return "\n".join(
        [
            _("How to verify this bundle"),
            "",
            _(
                "You need only this bundle, Python 3.11 or newer, and two Python packages, "
                "cryptography and rfc8785:"
            ),
            "",
            "    python3 -m pip install cryptography rfc8785",
            "    unzip evidence.zip",
            "    python3 probe-evidence/verify_bundle.py",
            "",
            _(
                "(or python3 verify_bundle.py evidence.zip, which reads the zip itself). With "
                "probe installed: probe verify --bundle evidence.zip. The last lines say whether "
                "the bundle is whole; any other line names a measurement or a signed head and what "
                "is wrong with it. Exit status 0: whole; 1: not whole; 2: not a bundle."
            ),
            "",
            _(
                "What the files are: bundle.json lists the measurements and devices; "
                "measurements/ holds each record as stored (record.json and its JSON columns) and "
                "its verdict (verdict.json); bodies/ the page contents the records name; chains/ "
                "the links that tie each record to a signed head, and the heads with their "
                "signatures; the device's public key names its file. summary.en.txt and "
                "summary.vi.txt say what was measured and what the verification proves."
            ),
        ]
    )
