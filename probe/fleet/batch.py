"""A batch: one probe's new measurements, compressed, signed by the probe and sealed to the
collective, as an object in a bucket (issue 23).

Contract, the volunteer's side: :func:`seal` takes the canonical store rows of measurements
(``records``: every column of a ``measurements`` row as SQLite gives it back, the chain
columns of m010 among them: ``device_key``, ``seq``, ``chain_prev``, ``record_hash``,
``chain_hash``, ``body_digests``), the bodies they name (``bodies``: ``{"sha256", "length",
"stored", "text"}``, ``text`` the stored body decompressed, the UTF-8 text whose SHA-256 is the
content hash in ``body_digests``) and the signed chain heads not sent before (``heads``: rows
of ``chain_heads``; a head's ``seq`` is at most the batch's last, and may be in an earlier
batch: a round's head is signed at its end, after the batch holding its measurements may have
left), and the digest of the device's previous batch (``prev``, None for its first).
It gives a :class:`Sealed`: ``data`` (the object's bytes), ``digest`` (64 hex digits naming its
content), ``key`` (the object key, ``batches/<device_key>/<digest>.pbatch``, a content address:
the same batch sent twice is one object) and ``count`` (its records). ``device_key`` is the
store's form of the public key, raw Ed25519 in base64url (``probe.evidence.keys``), which is
safe in an object key.

The analyst's side: :func:`open_batch` gives a :class:`Batch` (``device_key``, ``prev``,
``digest``, ``records``, ``bodies``, ``heads``, and ``made_at``, when the probe sealed it) or
a :class:`Rejected` whose ``reason`` is one of :data:`REASONS`; it never raises on any input,
never decompresses before the signature is checked, and never inflates past
``max_inflated`` (default 64 times ``max_bytes``). It checks the seal, the signature and the
envelope's shape, nothing more: each record is validated by the ingester (as ``probe merge``
does), which also follows ``prev`` from batch to batch (a replayed or forked batch is its to
find: a batch alone cannot know it was seen before).

The object (all integers big-endian)::

    "PBATCH1\\n"        8 bytes, cleartext: what this is
    key id              8 bytes, cleartext: SHA-256 of the collective's public key, first 8
    length              8 bytes, cleartext: the sealed box's length (a cut object is "truncated")
    sealed box          libsodium crypto_box_seal to the collective's X25519 key, of the inner:

    "PBSIGN1\\n"        8 bytes
    device key          32 bytes, raw Ed25519 public key
    signature           64 bytes, Ed25519 over "PBSIGN1\\n" || device key || payload
    payload             zstd frame of the canonical encoding (RFC 8785, probe.evidence.canonical)
                        of {"v": 1, "device_key", "prev", "made_at", "records", "bodies", "heads"}

``digest`` is SHA-256 of the inner (Ed25519 signatures and zstd at one level are
deterministic, so it names the content, not the sealing, whose ephemeral key differs each
time). The key id tells "sealed to another collective" (``wrong key``) from a box that does not
open (``damaged``); it identifies only the collective, whose key is public anyway.

Why PyNaCl sealed boxes and not age (``pyrage``): a sealed box is one libsodium call for a
single recipient with no header to parse; its format is libsodium's, readable by every binding
(Go, Rust, JavaScript), where age's needs an age library; PyNaCl builds from source on any
Raspberry Pi with the system's libsodium (``SODIUM_INSTALL=system``) when no wheel fits, where
pyrage needs a Rust toolchain (on PyPI both have aarch64 wheels and neither armv7 nor armv6 ones,
checked with pip download); and age's features (several recipients, passphrases, streaming huge
files) are not needed for a batch of a few hundred kilobytes.
Integer-valued floats (a ``runtime`` of 1.0) come back as integers, as JSON has one number type:
the record hash is the same either way (RFC 8785 writes both as ``1``).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
import nacl.exceptions
import nacl.public
import zstandard

from probe.evidence import canonical, keys
from probe.timeutil import utc_now

__all__ = [
    "BAD_SIGNATURE",
    "DAMAGED",
    "NOT_A_BATCH",
    "OVERSIZED",
    "REASONS",
    "TRUNCATED",
    "WRONG_KEY",
    "Batch",
    "Rejected",
    "Sealed",
    "check_public_key",
    "collective_keypair",
    "key_id",
    "object_key",
    "open_batch",
    "parse_object_key",
    "public_of",
    "seal",
]

MAGIC = b"PBATCH1\n"
INNER_MAGIC = b"PBSIGN1\n"
VERSION = 1
HEADER = len(MAGIC) + 8 + 8
INNER_HEADER = len(INNER_MAGIC) + 32 + 64
ZSTD_LEVEL = 10  # measured in bench/upload.py: past 10 the CPU grows faster than the saving
SUFFIX = ".pbatch"

NOT_A_BATCH = "not a batch"
OVERSIZED = "oversized"
TRUNCATED = "truncated"
WRONG_KEY = "wrong key"
DAMAGED = "damaged"
BAD_SIGNATURE = "bad signature"
REASONS = (NOT_A_BATCH, OVERSIZED, TRUNCATED, WRONG_KEY, DAMAGED, BAD_SIGNATURE)


@dataclass(frozen=True, slots=True)
class Sealed:
    """A batch ready to send: its object key, bytes, content digest and number of records."""

    key: str
    data: bytes
    digest: str
    count: int
    device_key: str = ""
    prev: str | None = None


@dataclass(frozen=True, slots=True)
class Batch:
    """An opened batch: who signed it, what it follows, and what it holds."""

    device_key: str
    prev: str | None
    digest: str
    records: list[dict[str, Any]]
    bodies: list[dict[str, Any]] = field(default_factory=list)
    heads: list[dict[str, Any]] = field(default_factory=list)
    made_at: str | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """A batch refused, and why (one of :data:`REASONS`)."""

    reason: str


class _Envelope(msgspec.Struct, forbid_unknown_fields=True):
    v: int
    device_key: str
    prev: str | None
    made_at: str
    records: list[dict[str, Any]]
    bodies: list[dict[str, Any]]
    heads: list[dict[str, Any]]


_DECODER = msgspec.json.Decoder(_Envelope)


def collective_keypair() -> tuple[str, str]:
    """A new collective key pair (private, public), each raw X25519 in base64url."""
    private = nacl.public.PrivateKey.generate()
    return keys.b64url(bytes(private)), keys.b64url(bytes(private.public_key))


def public_of(private_key: str) -> str:
    """The public key text of a collective's private key text."""
    return keys.b64url(bytes(_private(private_key).public_key))


def _public(text: str) -> nacl.public.PublicKey:
    raw = keys.from_b64url(text)
    if len(raw) != 32:
        raise ValueError("a collective public key is 32 bytes in base64url")
    return nacl.public.PublicKey(raw)


def _private(text: str) -> nacl.public.PrivateKey:
    raw = keys.from_b64url(text)
    if len(raw) != 32:
        raise ValueError("a collective private key is 32 bytes in base64url")
    return nacl.public.PrivateKey(raw)


def check_public_key(text: str) -> str:
    """``text`` when it is a collective public key (32 bytes in base64url); else ValueError."""
    _public(text)
    return text


def key_id(public_key: str) -> bytes:
    """The 8 bytes naming the collective key ``public_key`` in a batch's cleartext header."""
    return hashlib.sha256(keys.from_b64url(public_key)).digest()[:8]


def object_key(device_key: str, digest: str) -> str:
    """The content address of a batch in its bucket (before any prefix)."""
    return f"batches/{device_key}/{digest}{SUFFIX}"


def parse_object_key(key: str) -> tuple[str, str] | None:
    """(device_key, digest) of an object key :func:`object_key` makes, else None."""
    parts = key.split("/")
    if len(parts) < 3 or parts[-3] != "batches" or not parts[-1].endswith(SUFFIX):
        return None
    device, digest = parts[-2], parts[-1][: -len(SUFFIX)]
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        return None
    try:
        if len(keys.from_b64url(device)) != 32:
            return None
    except ValueError:
        return None
    return device, digest


def _digest_or_none(value: str | None) -> bool:
    return value is None or (len(value) == 64 and all(c in "0123456789abcdef" for c in value))


def seal(
    records: Iterable[Mapping[str, Any]],
    *,
    signing_key: keys.DeviceKey,
    collective_public_key: str,
    prev: str | None,
    bodies: Iterable[Mapping[str, Any]] = (),
    heads: Iterable[Mapping[str, Any]] = (),
    made_at: str | None = None,
) -> Sealed:
    """Seal ``records`` (with their ``bodies`` and ``heads``) as the device's batch after
    ``prev`` (see the contract). A value the canonical encoding refuses is the caller's bug
    (ValueError or TypeError)."""
    rows = [dict(r) for r in records]
    envelope = {
        "v": VERSION,
        "device_key": signing_key.public,
        "prev": prev,
        "made_at": made_at or utc_now(),
        "records": rows,
        "bodies": [dict(b) for b in bodies],
        "heads": [dict(h) for h in heads],
    }
    payload = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(canonical.encode(envelope))
    device_raw = keys.from_b64url(signing_key.public)
    signed = INNER_MAGIC + device_raw + payload
    signature = signing_key.private.sign(signed)
    inner = INNER_MAGIC + device_raw + signature + payload
    digest = hashlib.sha256(inner).hexdigest()
    box = nacl.public.SealedBox(_public(collective_public_key)).encrypt(inner)
    data = MAGIC + key_id(collective_public_key) + struct.pack(">Q", len(box)) + bytes(box)
    return Sealed(
        object_key(signing_key.public, digest), data, digest, len(rows), signing_key.public, prev
    )


def open_batch(
    data: bytes,
    *,
    collective_private_key: str,
    max_bytes: int,
    max_inflated: int | None = None,
) -> Batch | Rejected:
    """Open a batch's object bytes with the collective's private key: a :class:`Batch`, or
    :class:`Rejected` with its reason (see the contract). Never raises on ``data``."""
    if len(data) > max_bytes:
        return Rejected(OVERSIZED)
    if len(data) < HEADER:
        return Rejected(TRUNCATED if MAGIC.startswith(data[: len(MAGIC)]) else NOT_A_BATCH)
    if data[: len(MAGIC)] != MAGIC:
        return Rejected(NOT_A_BATCH)
    private = _private(collective_private_key)
    (length,) = struct.unpack(">Q", data[len(MAGIC) + 8 : HEADER])
    if data[len(MAGIC) : len(MAGIC) + 8] != key_id(keys.b64url(bytes(private.public_key))):
        return Rejected(WRONG_KEY)
    if len(data) - HEADER < length:
        return Rejected(TRUNCATED)
    if len(data) - HEADER > length:
        return Rejected(NOT_A_BATCH)
    try:
        inner = nacl.public.SealedBox(private).decrypt(data[HEADER:])
    except nacl.exceptions.CryptoError:
        return Rejected(DAMAGED)
    if len(inner) < INNER_HEADER or inner[: len(INNER_MAGIC)] != INNER_MAGIC:
        return Rejected(NOT_A_BATCH)
    device_raw = inner[len(INNER_MAGIC) : len(INNER_MAGIC) + 32]
    signature = inner[len(INNER_MAGIC) + 32 : INNER_HEADER]
    payload = inner[INNER_HEADER:]
    device_key = keys.b64url(device_raw)
    if not keys.verify(device_key, INNER_MAGIC + device_raw + payload, keys.b64url(signature)):
        return Rejected(BAD_SIGNATURE)
    cap = 64 * max_bytes if max_inflated is None else max_inflated
    try:
        with zstandard.ZstdDecompressor().stream_reader(payload) as reader:
            chunks, size = [], 0
            while size <= cap and (chunk := reader.read(min(1 << 20, cap + 1 - size))):
                chunks.append(chunk)
                size += len(chunk)
    except zstandard.ZstdError:
        return Rejected(NOT_A_BATCH)
    if size > cap:
        return Rejected(OVERSIZED)
    try:
        env = _DECODER.decode(b"".join(chunks))
    except msgspec.DecodeError:
        return Rejected(NOT_A_BATCH)
    if env.v != VERSION or env.device_key != device_key or not _digest_or_none(env.prev):
        return Rejected(NOT_A_BATCH)
    digest = hashlib.sha256(inner).hexdigest()
    return Batch(device_key, env.prev, digest, env.records, env.bodies, env.heads, env.made_at)
