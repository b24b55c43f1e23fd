#!/usr/bin/env python3
"""Verify a probe evidence bundle with nothing but the bundle: no database, no probe.

Contract: this one file is copied into every bundle ``probe evidence`` writes (as
``verify_bundle.py``) and is what ``probe verify --bundle`` runs. It needs Python 3.11 or newer
and two packages, ``cryptography`` (Ed25519) and ``rfc8785`` (the JSON Canonicalization
Scheme): ``python3 -m pip install cryptography rfc8785``. It never imports ``probe``, so it
states again what ``probe.evidence`` defines (the record's fields, its version, the genesis
link, a head's statement); tests/analyst/test_bundle.py holds the two together.

A bundle (a zip file, or the folder it unzips to) holds, under one top folder :data:`TOP`:
``bundle.json`` (format, version, the measurement ids, the device keys), for each measurement
``measurements/<id>/record.json`` (its record's plain fields) beside the stored text of each
of its hashed JSON columns (``observations.json``, ``control.json``, ``extra.json``,
``body_digests.json``; absent when NULL) and ``verdict.json`` (the verdict, outside the hash),
``bodies/<key>`` (each stored body's content), and ``chains/<device key>.json``: segments of
the device's chain, each a start (a seq and its chain hash), the links after it up to a signed
head (``seq``, ``id``, ``chain_prev``, ``record_hash``, ``chain_hash``; the links of
measurements left out of the bundle stand by their hashes alone) and the heads signed there
(``kind``, ``label``, ``statement``, ``signature``, and ``timestamps`` when the database had
any: ``tsa_url``, ``time``, ``digest`` hex, ``token`` base64 DER).

:func:`check` recomputes everything: each record's hash from its fields and files (one byte
changed anywhere changes it), each body's content hash against the digests the record binds,
each link from the segment's start (the start's chain hash needs no proof: a record that
matched another start would be a SHA-256 preimage), and each head's Ed25519 signature, by the
key of the segment's device, over exactly the chain state computed at its seq. It gives one
:class:`Problem` per thing that is not so, naming the measurement (or head) and the case:
altered, removed, inserted, reordered, body swapped, body removed, bad signature, not as
signed; and a head's RFC 3161 timestamps (``probe merge --timestamp``) must stamp that head
(bad timestamp; their tokens' signatures are checked by ``probe verify --bundle --tsa-ca``).
A bundle it cannot read at all raises :class:`Unreadable`. Verdicts are not checked:
they are derived from the facts the hash covers, by rules named by id and version.

Run alone: ``python3 verify_bundle.py [BUNDLE]`` (default: the folder this file is in); exit
status 0 when whole, 1 when not, 2 when it is no bundle it can read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import sys
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import rfc8785
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
except ImportError as exc:  # pragma: no cover - the message is the point
    sys.exit(f"verify_bundle: {exc.name} is missing: python3 -m pip install cryptography rfc8785")

FORMAT = "probe-evidence"
VERSION = 1
TOP = "probe-evidence"  # the one top folder of a bundle
MAX_ENTRY = 64 * 1024 * 1024  # no file of a bundle is larger (a zip bomb is refused)

# What probe.evidence.canonical defines (record version 1); see the contract.
RECORD_VERSION = 1
RECORD_FIELDS = (
    "id",
    "round_id",
    "device_id",
    "device_key",
    "source",
    "target",
    "url",
    "category",
    "is_control",
    "started_at",
    "runtime",
    "resolver",
    "control_resolver",
    "probe_asn",
    "probe_cc",
    "software",
    "network_ok",
    "network_name",
    "resolver_kind",
    "observations",
    "control",
    "extra",
    "body_digests",
)
DIGESTED_FIELDS = frozenset({"observations", "control", "extra", "body_digests"})
PLAIN_FIELDS = tuple(f for f in RECORD_FIELDS if f not in DIGESTED_FIELDS)
GENESIS = "0" * 64
HEAD_FIELDS = frozenset({"device_key", "seq", "chain_hash", "at", "kind"})
HEAD_KINDS = ("round", "day")

ALTERED = "altered"
REMOVED = "removed"
INSERTED = "inserted"
REORDERED = "reordered"
BODY_SWAPPED = "body swapped"
BODY_REMOVED = "body removed"
BAD_SIGNATURE = "bad signature"
NOT_AS_SIGNED = "not as signed"
BAD_TIMESTAMP = "bad timestamp"

_HEX64 = re.compile(r"[0-9a-f]{64}")
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


def N_(message: str) -> str:
    return message


class Unreadable(Exception):
    """Not a bundle this verifier can read: ``template`` (an English message id) with
    ``fields``."""

    def __init__(self, template: str, **fields: Any) -> None:
        super().__init__(template.format(**fields))
        self.template, self.fields = template, fields


@dataclass(frozen=True, slots=True)
class Problem:
    kind: str
    subject: str
    template: str
    fields: dict[str, Any] = field(default_factory=dict)

    def line(self, gettext: Callable[[str], str] | None = None) -> str:
        t = gettext or (lambda s: s)
        return f"{self.subject}: {t(self.kind)}: {t(self.template).format(**self.fields)}"


@dataclass(frozen=True, slots=True)
class Timestamp:
    """An RFC 3161 timestamp of a head: which, by whom, the time it vouches for, the digest it
    stamps (hex) and the token (DER)."""

    subject: str
    tsa_url: str
    time: str
    digest: str
    token: bytes


@dataclass
class Result:
    """What :func:`check` found: the problems, and what was checked."""

    problems: list[Problem] = field(default_factory=list)
    measurements: list[str] = field(default_factory=list)
    devices: dict[str, list[str]] = field(default_factory=dict)  # key -> when its heads were signed
    timestamps: list[Timestamp] = field(default_factory=list)
    timestamps_checked: bool = False  # their tokens verified (probe verify --bundle --tsa-ca)

    @property
    def whole(self) -> bool:
        return not self.problems


# -- the encoding, the hashes and the link (probe.evidence.canonical's) --------------------------
def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def record_hash(record: dict[str, Any]) -> str:
    """SHA-256 of a whole record's (fields and ``"v"``) RFC 8785 encoding."""
    return sha256(rfc8785.dumps(record))


def link(prev_chain_hash: str, record_hash_: str) -> str:
    return sha256(bytes.fromhex(prev_chain_hash) + bytes.fromhex(record_hash_))


def from_b64url(text: str) -> bytes:
    if not isinstance(text, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", text):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError(str(exc)) from None


def signed(public: str, data: bytes, signature: str) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(from_b64url(public)).verify(from_b64url(signature), data)
    except (ValueError, InvalidSignature):
        return False
    return True


def head_of(statement: bytes) -> dict[str, Any] | None:
    """The head a statement states, when it is a canonical head statement."""
    try:
        data = json.loads(statement)
    except ValueError:
        return None
    if not isinstance(data, dict) or set(data) != HEAD_FIELDS:
        return None
    seq = data["seq"]
    if not isinstance(seq, int) or isinstance(seq, bool) or data["kind"] not in HEAD_KINDS:
        return None
    if not all(isinstance(data[k], str) for k in ("device_key", "chain_hash", "at")):
        return None
    return data if rfc8785.dumps(data) == statement else None


# -- reading a bundle: a zip or its folder -------------------------------------------------------
class Files:
    """A bundle's files by their name under :data:`TOP`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        self._folder: Path | None = None
        self.names: set[str] = set()
        if path.is_dir():
            folder = path if (path / "bundle.json").is_file() else path / TOP
            if not (folder / "bundle.json").is_file():
                raise Unreadable(
                    N_("{path}: not a probe evidence bundle (no bundle.json)"), path=path
                )
            self._folder = folder
            self.names = {
                p.relative_to(folder).as_posix()
                for p in folder.rglob("*")
                if p.is_file() and not p.is_symlink()
            }
            return
        try:
            self._zip = zipfile.ZipFile(path)
        except (OSError, zipfile.BadZipFile) as exc:
            raise Unreadable(
                N_("{path}: not a probe evidence bundle ({cause})"), path=path, cause=exc
            ) from None
        for info in self._zip.infolist():
            if not info.is_dir() and info.filename.startswith(TOP + "/"):
                self.names.add(info.filename[len(TOP) + 1 :])
        if "bundle.json" not in self.names:
            raise Unreadable(N_("{path}: not a probe evidence bundle (no bundle.json)"), path=path)

    def read(self, name: str) -> bytes | None:
        if name not in self.names:
            return None
        if self._folder is not None:
            p = self._folder / name
            if p.stat().st_size > MAX_ENTRY:
                raise Unreadable(N_("{path}: {name} is too large"), path=self.path, name=name)
            return p.read_bytes()
        assert self._zip is not None
        info = self._zip.getinfo(f"{TOP}/{name}")
        if info.file_size > MAX_ENTRY:
            raise Unreadable(N_("{path}: {name} is too large"), path=self.path, name=name)
        try:
            return self._zip.read(info)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise Unreadable(
                N_("{path}: {name} cannot be read ({cause})"), path=self.path, name=name, cause=exc
            ) from None

    def json(self, name: str) -> Any:
        data = self.read(name)
        if data is None:
            return None
        try:
            return json.loads(data)
        except ValueError:
            return _BAD

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


_BAD = object()  # a file that is not JSON


# -- checking ------------------------------------------------------------------------------------
def check(path: str | Path) -> Result:
    """Every problem of the bundle at ``path`` (see the contract)."""
    files = Files(Path(path))
    try:
        return _check(files)
    finally:
        files.close()


def _check(files: Files) -> Result:
    manifest = files.json("bundle.json")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise Unreadable(
            N_("{path}: not a probe evidence bundle (no bundle.json)"), path=files.path
        )
    if manifest.get("version") != VERSION:
        raise Unreadable(
            N_("{path}: a bundle of version {version}, which this verifier does not know"),
            path=files.path,
            version=manifest.get("version"),
        )
    mids = manifest.get("measurements")
    if not isinstance(mids, list) or not all(
        isinstance(m, str) and _SAFE.fullmatch(m) for m in mids
    ):
        raise Unreadable(N_("{path}: bundle.json lists no measurements"), path=files.path)
    result = Result(measurements=list(mids))
    hashes: dict[str, tuple[str, str | None]] = {}  # id -> (record hash, device key)
    for mid in mids:
        result.problems += _record(files, mid, hashes)
    listed = set(mids)
    for name in sorted(files.names):
        parts = name.split("/")
        if parts[0] == "measurements" and len(parts) == 3 and parts[1] not in listed:
            listed.add(parts[1])
            result.problems.append(
                Problem(INSERTED, parts[1], N_("in the bundle, but not listed in bundle.json"))
            )
    linked: dict[str, int] = {}
    for name in sorted(n for n in files.names if n.startswith("chains/")):
        result.problems += _chain(files, name, hashes, linked, result)
    for mid in mids:
        if mid in hashes and mid not in linked:
            result.problems.append(
                Problem(REMOVED, mid, N_("no chain segment of the bundle holds its link"))
            )
    return result


def _record(files: Files, mid: str, hashes: dict[str, tuple[str, str | None]]) -> list[Problem]:
    folder = f"measurements/{mid}"
    plain = files.json(f"{folder}/record.json")
    if plain is None:
        return [Problem(REMOVED, mid, N_("listed in the bundle, but its record is not in it"))]
    if not isinstance(plain, dict):
        return [Problem(ALTERED, mid, N_("its record is not a JSON object"))]
    out: list[Problem] = []
    for name in sorted(set(PLAIN_FIELDS) - set(plain)):
        out.append(Problem(ALTERED, mid, N_("its record lacks {field}"), {"field": name}))
    for name in sorted(set(plain) - set(PLAIN_FIELDS)):
        out.append(
            Problem(
                ALTERED, mid, N_("its record holds {field}, which no record has"), {"field": name}
            )
        )
    record: dict[str, Any] = {name: plain.get(name) for name in PLAIN_FIELDS}
    texts: dict[str, bytes | None] = {}
    for name in sorted(DIGESTED_FIELDS):
        texts[name] = files.read(f"{folder}/{name}.json")
        record[name] = None if texts[name] is None else sha256(texts[name] or b"")
    record["v"] = RECORD_VERSION
    if record["id"] != mid:
        out.append(
            Problem(
                ALTERED, mid, N_("its record names another id ({other})"), {"other": record["id"]}
            )
        )
    try:
        computed = record_hash(record)
    except Exception:
        return [*out, Problem(ALTERED, mid, N_("its record is not a JSON object"))]
    device = record["device_key"] if isinstance(record["device_key"], str) else None
    hashes[mid] = (computed, device)
    out += _bodies(files, mid, texts["body_digests"])
    return out


def _bodies(files: Files, mid: str, text: bytes | None) -> list[Problem]:
    if text is None:
        return []
    try:
        digests = [(str(k), str(v)) for k, v in json.loads(text)]
    except (ValueError, TypeError):
        return []  # not the text it was saved with: the record's hash says so
    out = []
    for key, content in digests:
        data = files.read(f"bodies/{key}") if _HEX64.fullmatch(key) else None
        if data is None:
            out.append(
                Problem(BODY_REMOVED, mid, N_("no body is stored under {key}"), {"key": key})
            )
        elif sha256(data) != content:
            out.append(
                Problem(
                    BODY_SWAPPED,
                    mid,
                    N_("the body stored under {key} is not the one it was saved with"),
                    {"key": key},
                )
            )
    return out


def _chain(
    files: Files,
    name: str,
    hashes: dict[str, tuple[str, str | None]],
    linked: dict[str, int],
    result: Result,
) -> Iterator[Problem]:
    data = files.json(name)
    device = name[len("chains/") :].removesuffix(".json")
    if (
        not isinstance(data, dict)
        or data.get("device_key") != device
        or not isinstance(data.get("segments"), list)
    ):
        yield Problem(ALTERED, name, N_("not a chain segment of the device it is named after"))
        return
    for segment in data["segments"]:
        try:
            yield from _segment(device, segment, hashes, linked, result)
        except (KeyError, TypeError, ValueError, AttributeError):
            yield Problem(ALTERED, name, N_("not a chain segment of the device it is named after"))


def _segment(
    device: str,
    segment: dict[str, Any],
    hashes: dict[str, tuple[str, str | None]],
    linked: dict[str, int],
    result: Result,
) -> Iterator[Problem]:
    start = segment["start"]
    seq, prev = int(start["seq"]), str(start["chain_hash"])
    if seq == 0:
        prev = GENESIS  # a chain's first link starts from the genesis value, whatever is stated
    last_id = None
    for entry in segment["links"]:
        mid, at = str(entry["id"]), int(entry["seq"])
        stated, rh = str(entry["chain_hash"]), str(entry["record_hash"])
        if not (_HEX64.fullmatch(stated) and _HEX64.fullmatch(rh)):
            yield Problem(
                INSERTED, mid, N_("its link to the chain does not hold (seq {seq})"), {"seq": at}
            )
            continue
        if at > seq + 1:
            where = f"{seq + 1}..{at - 1}" if seq + 1 < at - 1 else str(seq + 1)
            named = entry.get("chain_prev") or f"seq {seq + 1}"
            yield Problem(
                REMOVED,
                str(named),
                N_("seq {where} of its chain segment is missing"),
                {"where": where},
            )
            seq, prev = at, stated  # picked up again after the gap, which is named
        elif at <= seq:
            yield Problem(
                REORDERED,
                mid,
                N_("seq {seq}, but its chain segment puts it after seq {other_seq}"),
                {"seq": at, "other_seq": seq},
            )
            seq, prev = at, stated
        else:
            seq, computed = at, link(prev, rh)
            if computed != stated:
                yield Problem(
                    INSERTED,
                    mid,
                    N_("its link to the chain does not hold (seq {seq})"),
                    {"seq": at},
                )
            prev = computed
        last_id = mid
        if mid in linked:
            yield Problem(
                INSERTED, mid, N_("it stands twice in its chain (seq {seq})"), {"seq": at}
            )
        linked[mid] = at
        if mid in hashes:
            computed_record, named_device = hashes[mid]
            if computed_record != rh:
                yield Problem(
                    ALTERED,
                    mid,
                    N_("its record no longer matches its hash (seq {seq})"),
                    {"seq": at},
                )
            if named_device != device:
                yield Problem(INSERTED, mid, N_("its record names another device than its chain's"))
    good = 0
    for h in segment["heads"]:
        subject = f"head {h.get('kind')} {h.get('label')}"
        statement = str(h["statement"]).encode("utf-8", "surrogatepass")
        head = head_of(statement)
        if head is None or not signed(head["device_key"], statement, str(h["signature"])):
            yield Problem(
                BAD_SIGNATURE, subject, N_("its signature does not hold with the key it names")
            )
            continue
        if head["device_key"] != device:
            yield Problem(
                BAD_SIGNATURE, subject, N_("it is signed by another device than its chain's")
            )
            continue
        if head["seq"] != seq or head["chain_hash"] != prev:
            yield Problem(
                NOT_AS_SIGNED,
                str(last_id or subject),
                N_("the chain up to it (seq {seq}) is not the one signed at {at}"),
                {"seq": seq, "at": head["at"]},
            )
            continue
        good += 1
        result.devices.setdefault(device, []).append(str(head["at"]))
        yield from _timestamps(subject, head, h, result)
    if not good:
        yield Problem(
            NOT_AS_SIGNED,
            str(last_id or device),
            N_("no signed head ends its chain segment (seq {seq})"),
            {"seq": seq},
        )


def head_digest(head: dict[str, Any], signature: str) -> str:
    """What a timestamp of a head stamps (probe.analyst.timestamp.head_digest of its stored
    text columns): SHA-256 of the canonical JSON of its chain hash, device key, seq and
    signature, hex."""
    value = {
        "chain_hash": head["chain_hash"],
        "device_key": head["device_key"],
        "seq": head["seq"],
        "signature": signature,
    }
    return sha256(rfc8785.dumps(value))


def _timestamps(
    subject: str, head: dict[str, Any], h: dict[str, Any], result: Result
) -> Iterator[Problem]:
    """The timestamps a verified head carries: each must stamp this head. Their tokens (the
    TSA's signature and certificates) are checked by ``probe verify --bundle --tsa-ca FILE``,
    or by OpenSSL (``openssl ts -verify -digest HEX -in TOKEN -token_in -CAfile ROOT``)."""
    stamps = h.get("timestamps") or []
    if not isinstance(stamps, list):
        raise TypeError("timestamps")
    want = head_digest(head, str(h["signature"]))
    for t in stamps:
        digest = str(t["digest"])
        token = base64.b64decode(str(t["token"]), validate=True)
        if digest != want:
            yield Problem(
                BAD_TIMESTAMP, subject, N_("its timestamp is for another state of the head")
            )
            continue
        result.timestamps.append(
            Timestamp(subject, str(t["tsa_url"]), str(t["time"]), digest, token)
        )


# -- saying it -----------------------------------------------------------------------------------
def _english_ngettext(singular: str, plural: str, n: int) -> str:
    return singular if n == 1 else plural


def lines(
    result: Result,
    path: str | Path,
    gettext: Callable[[str], str] | None = None,
    ngettext: Callable[[str, str, int], str] | None = None,
) -> list[str]:
    """What a person reads: one line per problem, then whether the bundle is whole, then one
    line per device (in the language of ``gettext``/``ngettext``; English without)."""
    _ = gettext or (lambda s: s)
    ngettext = ngettext or _english_ngettext
    out = [p.line(_) for p in result.problems]
    n = len(result.measurements)
    counted = {
        "path": path,
        "measurements": ngettext("{n} measurement", "{n} measurements", n).format(n=n),
    }
    if result.problems:
        out.append(
            ngettext(
                "{path}: not whole: {n} problem, in {measurements}",
                "{path}: not whole: {n} problems, in {measurements}",
                len(result.problems),
            ).format(n=len(result.problems), **counted)
        )
    else:
        out.append(
            _(
                "{path}: whole: {measurements}, each tied to a signed head of its device's "
                "chain; every hash, link and signature holds"
            ).format(**counted)
        )
    for key, ats in sorted(result.devices.items()):
        out.append(
            ngettext(
                "device {key}: {n} signed head, the last at {at}",
                "device {key}: {n} signed heads, the last at {at}",
                len(ats),
            ).format(key=key, n=len(ats), at=max(ats))
        )
    for t in result.timestamps:
        out.append(
            (
                _("{subject}: timestamped by {url} at {time}; the token holds")
                if result.timestamps_checked
                else _(
                    "{subject}: timestamped by {url} at {time}, as its token says (its "
                    "signature: probe verify --bundle FILE --tsa-ca ROOT)"
                )
            ).format(subject=t.subject, url=t.tsa_url, time=t.time)
        )
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1 or (args and args[0] in ("-h", "--help")):
        print(f"usage: python3 verify_bundle.py [BUNDLE]\n\n{__doc__}")
        return 0 if args and args[0] in ("-h", "--help") else 2
    path = Path(args[0]) if args else Path(__file__).resolve().parent
    try:
        result = check(path)
    except Unreadable as exc:
        print(f"verify_bundle: {exc}", file=sys.stderr)
        return 2
    for line in lines(result, path):
        print(line)
    own = sha256(Path(__file__).read_bytes())
    print(f"verifier: verify_bundle.py sha256 {own} (compare it with the probe's own copy)")
    return 0 if result.whole else 1


if __name__ == "__main__":
    sys.exit(main())
