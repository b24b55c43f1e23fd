"""The canonical encoding of a record, its hash, and the chain's link.

Contract: :func:`encode` is RFC 8785 (the JSON Canonicalization Scheme: keys sorted by their
UTF-16 code units, no whitespace, ECMAScript number form, minimal string escapes), done by the
``rfc8785`` package, never by hand; it accepts None, booleans, integers within +-2**53, finite
floats, strings, lists and string-keyed dicts; anything else is a bug of its caller (the
package's ``CanonicalizationError``, a ValueError, or TypeError). The ``rfc8785`` package is
the reference, and slow (a Python walk writing to a BytesIO): :func:`encode` first tries a
faster path for what records are made of (exact ``None``, ``bool``, ``int``, ``str``,
``float``, ``list``, ``tuple`` and ``dict`` with ASCII keys; strings with nothing to escape
written as they are, and those whose only escapes are quotes and backslashes escaped by
``str.replace``; floats in Python's shortest form when it has no exponent), and hands the
whole value to ``rfc8785`` whenever it meets anything else (a subclass, a key outside ASCII, an
integer past +-(2**53 - 1)); a string with something to escape and a float with an exponent are
written by ``rfc8785`` itself. Its output is byte-identical to ``rfc8785.dumps`` (a Hypothesis
test holds it to that, over arbitrary JSON values), and so are its errors.
:func:`digest` is SHA-256 over that encoding, as 64 lowercase hex digits.

A measurement's *record* is :data:`RECORD_FIELDS` of its ``measurements`` row, as SQLite gives
them back, plus ``"v"`` (:data:`RECORD_VERSION`); the text columns of :data:`DIGESTED_FIELDS`
(the JSON records ``observations``, ``control``, ``extra`` and ``body_digests``) stand in it as
the SHA-256 (hex) of their stored text's UTF-8 bytes, so one byte changed anywhere in them
changes the hash, and the canonical encoding stays short (RFC 8785 over a few kilobytes of
escaped JSON text costs ten times more than SHA-256 over it). Left out, because they are
derived later and may change, or are the chain itself: the verdict columns (``reclassify``
rewrites them), ``throughput`` and ``bytes_used`` (a throughput test is added to a stored
measurement once it ran), and ``seq``, ``chain_prev``, ``record_hash``, ``chain_hash``.
Response bodies are bound by ``body_digests``, the JSON text of the list ``[[key,
content_sha256], ...]``: each stored body's key (``bodies.sha256``) and the SHA-256 of its
stored content (the UTF-8 text the ``bodies`` row holds, decompressed). The key alone cannot
bind it: it is the hash of the body as it came off the wire, of which only the first part is
kept, as text.

The link: ``chain_hash = SHA-256(prev_chain_hash || record_hash)`` over the 32 raw bytes of
each, per device; the first link of a device starts from :data:`GENESIS` (32 zero bytes).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

import msgspec
import rfc8785

RECORD_VERSION = 1

# The measured facts of a measurement row that its record hash covers (see the contract).
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

# Text columns that stand in the record as the SHA-256 of their text.
DIGESTED_FIELDS = frozenset({"observations", "control", "extra", "body_digests"})

GENESIS = "0" * 64


def encode(value: Any) -> bytes:
    """``value`` in the RFC 8785 canonical form (UTF-8 bytes)."""
    if type(value) is dict:
        flat = _flat(value)
        if flat is not None:
            return flat
    parts: list[str] = []
    try:
        _fast(value, parts)
    except (_Slow, RecursionError):
        return rfc8785.dumps(value)
    return "".join(parts).encode("utf-8")


class _Slow(Exception):
    """The fast path met something it leaves to ``rfc8785``."""


_INT_MAX = 2**53 - 1  # rfc8785's domain: the integers a double holds exactly
# What a string needs escaped (or refused: a lone surrogate is no UTF-8) in RFC 8785.
_ESCAPE = re.compile(r'[\x00-\x1f"\\\ud800-\udfff]')
_HARD = re.compile(r"[\x00-\x1f\ud800-\udfff]")  # escapes of their own, or refused


def _flat(d: dict[Any, Any]) -> bytes | None:
    """A flat object (a record: ASCII keys, scalar values) written by msgspec in C, or None
    when it is not one. msgspec sorts keys by code point, which for ASCII is UTF-16's order;
    its output for a string is the string itself unless it escapes something, and then has a
    backslash (left to the slow path); its floats are not ECMAScript's, so each float is
    written here (or the object left to the slow path)."""
    try:
        if not "".join(d).isascii():
            return None
    except TypeError:  # a key that is not a string
        return None
    copy: dict[str, Any] | None = None
    for k, v in d.items():
        t = type(v)
        if t is str or v is None or t is bool:
            continue
        if t is int:
            if not -_INT_MAX <= v <= _INT_MAX:
                return None
            continue
        if t is not float:
            return None
        text = repr(v)
        if "e" in text or "n" in text:
            return None
        if copy is None:
            copy = dict(d)
        copy[k] = msgspec.Raw(
            b"0" if v == 0 else (text[:-2] if text.endswith(".0") else text).encode()
        )
    try:
        out = msgspec.json.encode(d if copy is None else copy, order="sorted")
    except (msgspec.EncodeError, UnicodeEncodeError):  # a lone surrogate
        return None
    return None if b"\\" in out else out


def _fast(v: Any, out: list[str]) -> None:
    t = type(v)
    if t is str:
        if _ESCAPE.search(v) is None:
            out.append(f'"{v}"')
        elif _HARD.search(v) is None:  # only quotes and backslashes (JSON text in a record)
            out.append('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"')
        else:
            out.append(rfc8785.dumps(v).decode("utf-8"))
    elif v is None:
        out.append("null")
    elif t is bool:
        out.append("true" if v else "false")
    elif t is int:
        if not -_INT_MAX <= v <= _INT_MAX:
            raise _Slow
        out.append(str(v))
    elif t is float:
        text = repr(v)
        if "e" in text or "n" in text:  # an exponent (or inf, nan): rfc8785 writes it
            out.append(rfc8785.dumps(v).decode("ascii"))
        elif v == 0:
            out.append("0")
        else:
            out.append(text[:-2] if text.endswith(".0") else text)
    elif t is list or t is tuple:
        out.append("[")
        for i, item in enumerate(v):
            if i:
                out.append(",")
            _fast(item, out)
        out.append("]")
    elif t is dict:
        keys = list(v)
        for k in keys:
            if type(k) is not str or not k.isascii():  # UTF-16 order: rfc8785's own sort
                raise _Slow
        keys.sort()
        out.append("{")
        for i, k in enumerate(keys):
            if i:
                out.append(",")
            out.append(f'"{k}":' if _ESCAPE.search(k) is None else f"{rfc8785.dumps(k).decode()}:")
            _fast(v[k], out)
        out.append("}")
    else:
        raise _Slow


def digest(value: Any) -> str:
    """SHA-256 of ``value``'s canonical encoding, 64 hex digits."""
    return hashlib.sha256(encode(value)).hexdigest()


def record(row: Mapping[str, Any]) -> dict[str, Any]:
    """The record of a ``measurements`` row: :data:`RECORD_FIELDS` (missing ones as None)
    and the record's version."""
    out: dict[str, Any] = {name: row.get(name) for name in RECORD_FIELDS}
    for name in DIGESTED_FIELDS:
        text = out[name]
        if isinstance(text, str):
            out[name] = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        elif isinstance(text, bytes):  # not what the store writes, but bound all the same
            out[name] = hashlib.sha256(text).hexdigest()
    out["v"] = RECORD_VERSION
    return out


def record_hash(row: Mapping[str, Any]) -> str:
    """The record hash of a ``measurements`` row (64 hex digits)."""
    return digest(record(row))


def link(prev_chain_hash: str, record_hash: str) -> str:
    """The chain hash after ``prev_chain_hash`` (64 hex digits; :data:`GENESIS` for a first
    link) for a record of hash ``record_hash``: SHA-256 over their 64 raw bytes."""
    return hashlib.sha256(bytes.fromhex(prev_chain_hash) + bytes.fromhex(record_hash)).hexdigest()


def content_hash(text: bytes) -> str:
    """SHA-256 of a stored body's content (its UTF-8 bytes), 64 hex digits."""
    return hashlib.sha256(text).hexdigest()


def decode_object(text: bytes, fields: set[str] | frozenset[str]) -> dict[str, Any] | None:
    """The JSON object ``text`` holds when it has exactly ``fields`` as keys (a signed
    statement's shape), else None. Whether it is in the canonical form is the caller's check:
    encoding the parsed value again must give ``text`` back."""
    try:
        data: Any = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) and set(data) == set(fields) else None


def is_int(value: Any) -> bool:
    """An integer that is not a boolean (JSON's true is Python's 1)."""
    return isinstance(value, int) and not isinstance(value, bool)
