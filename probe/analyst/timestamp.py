"""RFC 3161 timestamps of signed chain heads, obtained by the analyst, never by the probe.

Contract: a timestamp authority (TSA) sees a digest and the address of whoever asks; the
analyst asks, after merging, so no TSA ever sees a volunteer's address. Three steps, each
refusing with one :class:`~probe.errors.TimestampError` line that names the TSA's URL (or the
database and head, or the file) and the cause:

- :func:`request` POSTs a TimeStampReq (RFC 3161 section 2.4.1: version 1, the SHA-256
  ``messageImprint`` of the digest given, a random 64-bit ``nonce``, ``certReq`` true, no policy)
  as ``application/timestamp-query`` with httpx, and returns the DER TimeStampResp once it is
  one: HTTP 200, content type ``application/timestamp-reply``, at most :data:`REPLY_CAP` bytes,
  within ``timeout`` seconds, status granted, and for this query (the imprint and the nonce
  echoed). It does not verify the signature: :func:`verify` does.
- :func:`verify` takes a TimeStampResp or a bare TimeStampToken (the CMS ContentInfo that
  :func:`token_of` cuts out, the form stored) and returns its ``genTime`` (aware, UTC) only when
  the imprint is SHA-256 and equals the digest, the nonce is the one given (when given), the
  signer's certificate has the critical ``timeStamping`` extended key usage (RFC 3161 section
  2.3), and rfc3161-client's verifier accepts it (once the certificates the token carries are
  in DER's order: see :func:`_certificates_sorted`): the signature over the TSTInfo, and the
  signer's chain built from the certificates the token carries up to one of the ``roots``
  given, with OpenSSL's timestamp-signing purpose, valid at ``genTime``. Only those roots are
  trusted, and only as self-signed anchors: never the system's store, never a certificate the
  token carries (the tests' re-signed tokens carry their root, to make sure), never an
  intermediate or the TSA's own certificate given as a root.
- :func:`timestamp_heads` stamps every signed chain head of a fleet database that has no
  timestamp from this TSA yet, verifying each token before it stores it, one head per
  transaction (a TSA failing half-way keeps what was stamped before; a second run asks only for
  the rest; a head whose stored columns changed since it was stamped, a day's head signed again
later, is stamped again, its new token replacing the old). The digest stamped is
:func:`head_digest` of the head's stored columns.

The tables it reads and writes (the chain's own ``chain_heads``, m010, has more columns:
``kind``, ``label``, ``at``, ``statement``; only these are read, a head named by its rowid,
which ``probe merge`` keeps when it carries a later head of the same device, kind and label)::

    chain_heads(rowid, device_key TEXT, seq INTEGER,
                chain_hash BLOB or TEXT, signature BLOB or TEXT; NULL: not signed)
    timestamps(head_id INTEGER  -> chain_heads.rowid,
               tsa_url TEXT     the TSA asked,
               digest BLOB      head_digest(...), the token's message imprint,
               token BLOB       the DER TimeStampToken as the TSA signed it (its
                                unsigned certificate set in DER's order),
               time TEXT        its genTime, probe.timeutil.iso form;
               PRIMARY KEY (head_id, tsa_url))

``timestamps`` is created when absent. This module opens the database itself (sqlite3), the one
place outside ``probe.store`` that writes SQL, until the fleet database's schema owns the table.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import sqlite3
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtendedKeyUsageOID
from rfc3161_client import (
    PKIStatus,
    TimeStampResponse,
    VerificationError,
    VerifierBuilder,
    decode_timestamp_response,
)

from probe.errors import TimestampError
from probe.timeutil import iso

QUERY_TYPE = "application/timestamp-query"
REPLY_TYPES = ("application/timestamp-reply", "application/timestamp-response")  # RFC, older
REPLY_CAP = 256 * 1024  # a reply is a few kilobytes: the token and its certificates
SHA256_OID = x509.ObjectIdentifier("2.16.840.1.101.3.4.2.1")
# AlgorithmIdentifier { id-sha256, NULL }, as OpenSSL and most TSAs write it
_SHA256_ALGORITHM = bytes.fromhex("300d06096086480165030402010500")


# -- DER, just enough for a TimeStampReq -------------------------------------------------------
def _der(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def _integer(n: int) -> bytes:
    """A non-negative INTEGER, a leading zero byte where the high bit would make it negative."""
    return _der(0x02, n.to_bytes(n.bit_length() // 8 + 1, "big"))


def query(digest: bytes, nonce: int) -> bytes:
    """The DER TimeStampReq for a SHA-256 ``digest``: version 1, ``nonce``, certReq true."""
    imprint = _der(0x30, _SHA256_ALGORITHM + _der(0x04, digest))
    return _der(0x30, _integer(1) + imprint + _integer(nonce) + b"\x01\x01\xff")


def _check_digest(digest: bytes) -> None:
    if not isinstance(digest, bytes) or len(digest) != 32:
        what = f"{len(digest)} bytes" if isinstance(digest, bytes) else type(digest).__name__
        raise TimestampError(f"the digest to timestamp must be 32 bytes (SHA-256), not {what}")


# -- asking a TSA ------------------------------------------------------------------------------
def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _post(url: str, body: bytes, timeout: float, client: httpx.Client) -> bytes:
    deadline = time.monotonic() + timeout
    headers = {"Content-Type": QUERY_TYPE, "Accept": REPLY_TYPES[0]}
    with client.stream("POST", url, content=body, headers=headers, timeout=timeout) as r:
        if r.status_code != 200:
            raise TimestampError(f"{url}: HTTP {r.status_code} from the timestamp authority")
        kind = r.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if kind not in REPLY_TYPES:
            raise TimestampError(
                f"{url}: answered {kind or 'no content type'}, not {REPLY_TYPES[0]}"
            )
        reply = bytearray()
        for chunk in r.iter_bytes():
            reply += chunk
            if len(reply) > REPLY_CAP:
                raise TimestampError(f"{url}: a reply larger than {REPLY_CAP} bytes")
            if time.monotonic() > deadline:
                raise httpx.ReadTimeout("the whole reply took too long")
        return bytes(reply)


def request(
    digest: bytes,
    url: str,
    *,
    timeout: float,
    nonce: int | None = None,
    client: httpx.Client | None = None,
) -> bytes:
    """The TSA at ``url``'s DER TimeStampResp for the SHA-256 ``digest`` (a random nonce unless
    ``nonce`` is given; ``client``: an httpx client to reuse, else one for this request)."""
    _check_digest(digest)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TimestampError(f"{url}: not an http:// or https:// URL of a timestamp authority")
    if nonce is None:
        nonce = secrets.randbits(64)
    elif not 0 <= nonce < 2**160:
        raise TimestampError(f"nonce {nonce}: not between 0 and 2**160 (RFC 3161 asks 64 bits)")
    own = client is None
    http = client if client is not None else httpx.Client()
    try:
        reply = _post(url, query(digest, nonce), timeout, http)
    except httpx.TimeoutException:
        raise TimestampError(f"{url}: no answer within {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise TimestampError(
            f"{url}: cannot reach the timestamp authority: {_one_line(exc)}"
        ) from None
    finally:
        if own:
            http.close()
    response = _decode(reply, url)
    info = response.tst_info
    if info.message_imprint.message != digest:
        raise TimestampError(
            f"{url}: a reply for another digest ({info.message_imprint.message.hex()}),"
            f" not {digest.hex()}"
        )
    if info.nonce != nonce:
        raise TimestampError(f"{url}: a reply with nonce {info.nonce}, not this query's {nonce}")
    return reply


def _element(der: bytes, at: int) -> tuple[int, int, int]:
    """The DER element at ``at``: (tag, where its content starts, where it ends); ValueError when
    it does not fit in ``der`` (or has an indefinite length, which DER has not)."""
    if at + 2 > len(der):
        raise ValueError("short")
    tag, first = der[at], der[at + 1]
    if first < 0x80:
        start, n = at + 2, first
    else:
        size = first & 0x7F
        if size == 0 or size > 4:
            raise ValueError("length")
        start, n = at + 2 + size, int.from_bytes(der[at + 2 : at + 2 + size], "big")
    if start + n > len(der):
        raise ValueError("short")
    return tag, start, start + n


def _children(der: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """The elements from ``start`` to ``end``: (tag, element start, content start, end)."""
    found = []
    while start < end:
        tag, content, stop = _element(der, start)
        found.append((tag, start, content, stop))
        start = stop
    return found


def _certificates_sorted(der: bytes) -> bytes:
    """The TimeStampResp ``der`` with its token's certificate set in DER's order (X.690 11.6:
    by encoding). OpenSSL's ``ts`` writes the set in chain order, as Microsoft's and Bouncy
    Castle's TSAs do, and rfc3161-client refuses a set out of order as malformed; the set is
    outside the signature (RFC 5652 section 5.1), so its order vouches for nothing. ``der``
    unchanged when it has not that shape: the parser then says what is wrong."""
    try:
        _, start, end = _element(der, 0)  # TimeStampResp
        token = _children(der, start, end)[1]  # status, timeStampToken
        _, content_info = _children(der, token[2], token[3])  # contentType, [0] content
        _, signed_start, signed_end = _element(der, content_info[2])  # SignedData
        fields = _children(der, signed_start, signed_end)
        certificates = fields[3]  # version, digestAlgorithms, encapContentInfo, [0] certificates
    except (ValueError, IndexError):
        return der
    if certificates[0] != 0xA0:
        return der
    try:
        items = _children(der, certificates[2], certificates[3])
    except ValueError:
        return der
    ordered = b"".join(sorted(der[a:b] for _, a, _, b in items))
    return der[: certificates[2]] + ordered + der[certificates[3] :]


def _as_response(der: bytes) -> bytes:
    """``der`` as a TimeStampResp: a bare TimeStampToken (a ContentInfo, whose first element is
    an OID) wrapped in a granted status; anything else as it is."""
    if len(der) < 4 or der[0] != 0x30:
        return der
    header = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    if len(der) > header and der[header] == 0x06:
        return _der(0x30, _der(0x30, _der(0x02, b"\x00")) + der)
    return der


def _decode(der: bytes, where: str) -> TimeStampResponse:
    """A granted TimeStampResp that holds a token, or one line naming ``where``."""
    try:
        response = decode_timestamp_response(_certificates_sorted(_as_response(der)))
    except ValueError as exc:
        raise TimestampError(f"{where}: not a timestamp response ({_one_line(exc)})") from None
    if response.status not in (PKIStatus.GRANTED, PKIStatus.GRANTED_WITH_MODS):
        try:
            status = PKIStatus(response.status).name.lower()
        except ValueError:
            status = f"status {response.status}"
        said = "; ".join(response.status_string)
        raise TimestampError(
            f"{where}: the timestamp authority answered {status}" + (f" ({said})" if said else "")
        )
    try:
        response.tst_info  # noqa: B018  (parsed lazily: a granted status without a token)
    except ValueError as exc:
        raise TimestampError(f"{where}: not a timestamp response ({_one_line(exc)})") from None
    return response


def token_of(reply: bytes) -> bytes:
    """The DER TimeStampToken (CMS ContentInfo) in a TimeStampResp: the form :func:`verify`
    reads back and :func:`timestamp_heads` stores."""
    return _decode(reply, "the reply").time_stamp_token()


# -- verifying a token -------------------------------------------------------------------------
# What cryptography raises for a certificate it cannot read (most specific first is moot: any
# of them means the token carries a malformed certificate); its deprecation warning for a
# non-positive serial number is raised as an error here, and is one too.
_BAD_CERTIFICATE = (
    ValueError,
    KeyError,
    x509.DuplicateExtension,
    x509.InvalidVersion,
    x509.UnsupportedGeneralNameType,
    CryptographyDeprecationWarning,
)


def _signer(response: TimeStampResponse, where: str) -> x509.Certificate:
    """The certificate the token names as its signer (issuer and serial number), among those
    it carries, once every one of them reads as a certificate and the signer's has the critical
    timeStamping extended key usage; one line otherwise."""
    infos = list(response.signed_data.signer_infos)
    if len(infos) != 1:
        raise TimestampError(f"{where}: {len(infos)} signers in the token, not one")
    signer = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", CryptographyDeprecationWarning)
            for der in response.signed_data.certificates:
                cert = x509.load_der_x509_certificate(der)
                if cert.issuer == infos[0].issuer and cert.serial_number == infos[0].serial_number:
                    signer = cert
            if signer is None:
                raise TimestampError(f"{where}: the token carries no certificate of its signer")
            try:
                eku = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
            except x509.ExtensionNotFound:
                eku = None
            name = signer.subject.rfc4514_string()
    except _BAD_CERTIFICATE as exc:
        why = _one_line(exc) or type(exc).__name__
        raise TimestampError(f"{where}: a malformed certificate in the token ({why})") from None
    if eku is None or not eku.critical or ExtendedKeyUsageOID.TIME_STAMPING not in eku.value:
        raise TimestampError(
            f"{where}: the token does not verify: its signer ({name})"
            " lacks the critical timeStamping extended key usage of a TSA"
        )
    return signer


def _why(exc: Exception) -> str:
    """rfc3161-client's message (an OpenSSL error stack) in a few words."""
    text = _one_line(exc)
    if "certificate verify error" in text:
        found = re.search(r'data: "Verify error: ([^"]+)"', text)
        detail = found.group(1) if found else "no chain"
        return f"the TSA's certificate chain does not lead to a root given ({detail})"
    if "signature failure" in text or "digest failure" in text:
        return "its signature does not match its content"
    return text


def verify(
    der: bytes,
    digest: bytes,
    *,
    roots: Sequence[x509.Certificate],
    nonce: int | None = None,
    where: str = "the timestamp",
) -> datetime:
    """The time a TSA vouches ``digest`` existed, from its TimeStampResp or TimeStampToken
    ``der``, verified against ``roots`` alone (and ``nonce``, when given); ``where`` names the
    token in the error."""
    _check_digest(digest)
    if not roots:
        raise TimestampError(f"{where}: no root certificate given to verify the TSA's chain")
    response = _decode(der, where)
    imprint = response.tst_info.message_imprint
    if imprint.hash_algorithm != SHA256_OID:
        raise TimestampError(
            f"{where}: the token's imprint is not SHA-256 ({imprint.hash_algorithm.dotted_string})"
        )
    if imprint.message != digest:
        raise TimestampError(
            f"{where}: the token is for another digest ({imprint.message.hex()}),"
            f" not {digest.hex()}"
        )
    if nonce is not None and response.tst_info.nonce != nonce:
        raise TimestampError(
            f"{where}: the token's nonce is {response.tst_info.nonce}, not {nonce}"
        )
    _signer(response, where)
    builder = VerifierBuilder()
    for root in {r.fingerprint(hashes.SHA256()): r for r in roots}.values():
        builder = builder.add_root_certificate(root)
    if nonce is not None:
        builder = builder.nonce(nonce)
    try:
        builder.build().verify(response, digest)
    except (VerificationError, ValueError) as exc:  # ValueError: rfc3161-client's parsing
        raise TimestampError(f"{where}: the token does not verify: {_why(exc)}") from None
    return response.tst_info.gen_time.astimezone(UTC)


def load_roots(path: str | Path) -> list[x509.Certificate]:
    """The root certificates in a PEM file (or one DER certificate)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TimestampError(f"{path}: cannot read the roots: {exc.strerror}") from None
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise TimestampError(f"{path}: not a PEM or DER certificate") from None


# -- the heads of a fleet database -------------------------------------------------------------
def _text(value: bytes | str) -> str:
    if isinstance(value, bytes):
        return base64.urlsafe_b64encode(value).rstrip(b"=").decode("ascii")
    return value


def head_digest(
    device_key: str, seq: int, chain_hash: bytes | str, signature: bytes | str
) -> bytes:
    """SHA-256 of the head's RFC 8785 canonical JSON, ``{"chain_hash", "device_key", "seq",
    "signature"}``, a value stored as bytes written base64url without padding and one stored as
    text as it is (for such strings and an integer below 2**53, sorted keys, no spaces and
    ``ensure_ascii=False`` are RFC 8785's encoding). The statement's signature binds ``at`` and
    ``kind`` too; the stamp binds the chain position itself, whatever the signature scheme."""
    if not -(2**53) < seq < 2**53:
        raise TimestampError(f"seq {seq} is beyond an exact JSON number")
    statement = {
        "chain_hash": _text(chain_hash),
        "device_key": device_key,
        "seq": seq,
        "signature": _text(signature),
    }
    canonical = json.dumps(statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).digest()


@dataclass(frozen=True, slots=True)
class Stamp:
    """One head stamped: its id, the TSA asked, the time it vouches for."""

    head_id: int
    tsa_url: str
    time: datetime


_HEAD_COLUMNS = ("device_key", "seq", "chain_hash", "signature")
_CREATE = """CREATE TABLE IF NOT EXISTS timestamps (
    head_id INTEGER NOT NULL,  -- chain_heads.rowid
    tsa_url TEXT NOT NULL,
    digest BLOB NOT NULL,
    token BLOB NOT NULL,
    time TEXT NOT NULL,
    PRIMARY KEY (head_id, tsa_url)
)"""
_SIGNED = """SELECT h.rowid, h.device_key, h.seq, h.chain_hash, h.signature,
  (SELECT t.digest FROM timestamps AS t WHERE t.head_id = h.rowid AND t.tsa_url = ?)
FROM chain_heads AS h WHERE h.signature IS NOT NULL ORDER BY h.rowid"""


def _open(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise TimestampError(f"{path}: no such file")
    try:
        con = sqlite3.connect(path.absolute().as_uri() + "?mode=rw", uri=True)
        columns = {row[1] for row in con.execute("SELECT * FROM pragma_table_info('chain_heads')")}
    except sqlite3.DatabaseError as exc:
        raise TimestampError(f"{path}: not a database ({exc})") from None
    if not columns:
        con.close()
        raise TimestampError(f"{path}: no chain_heads table: no signed chain heads to timestamp")
    missing = [c for c in _HEAD_COLUMNS if c not in columns]
    if missing:
        con.close()
        raise TimestampError(f"{path}: chain_heads lacks the columns {', '.join(missing)}")
    return con


def _head(path: Path, row: tuple[object, ...]) -> tuple[int, bytes]:
    """A head row's id and digest; one line naming the head and field when it is malformed."""
    head_id, key, seq, chain, signature = row
    for name, value, kinds in (
        ("id", head_id, (int,)),
        ("device_key", key, (str,)),
        ("seq", seq, (int,)),
        ("chain_hash", chain, (bytes, str)),
        ("signature", signature, (bytes, str)),
    ):
        if not isinstance(value, kinds):
            raise TimestampError(f"{path}: head {head_id}: {name}: {type(value).__name__} stored")
    assert isinstance(head_id, int) and isinstance(key, str) and isinstance(seq, int)
    assert isinstance(chain, bytes | str) and isinstance(signature, bytes | str)
    try:
        return head_id, head_digest(key, seq, chain, signature)
    except TimestampError as exc:
        raise TimestampError(f"{path}: head {head_id}: {exc}") from None


def timestamp_heads(
    db: str | Path,
    url: str,
    roots: Sequence[x509.Certificate],
    *,
    timeout: float = 30.0,
    client: httpx.Client | None = None,
) -> list[Stamp]:
    """Stamp every signed head of the fleet database ``db`` that the TSA at ``url`` has not
    stamped yet; each token verified against ``roots`` before it is stored. Returns the heads
    stamped now, in id order."""
    path = Path(db)
    if not roots:
        raise TimestampError(f"{url}: no root certificate given to verify the TSA's chain")
    con = _open(path)
    http = client if client is not None else httpx.Client()
    stamped: list[Stamp] = []
    try:
        with con:
            con.execute(_CREATE)
        for *row, stamped_digest in con.execute(_SIGNED, (url,)).fetchall():
            head_id, digest = _head(path, tuple(row))
            if stamped_digest == digest:
                continue
            where = f"{path}: head {head_id}"
            nonce = secrets.randbits(64)
            try:
                reply = request(digest, url, timeout=timeout, nonce=nonce, client=http)
            except TimestampError as exc:
                raise TimestampError(f"{where}: {exc}") from None
            at = verify(reply, digest, roots=roots, nonce=nonce, where=f"{where}: {url}")
            with con:
                con.execute(
                    "INSERT OR REPLACE INTO timestamps (head_id, tsa_url, digest, token, time)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (head_id, url, digest, token_of(reply), iso(at)),
                )
            stamped.append(Stamp(head_id, url, at))
    finally:
        if client is None:
            http.close()
        con.close()
    return stamped
