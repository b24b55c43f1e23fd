"""Signed chain heads: a device's statement of where its chain stood, signed with its key.

Contract: a head's statement is the canonical encoding (RFC 8785, ``probe.evidence.canonical``)
of exactly ``{"device_key", "seq", "chain_hash", "at", "kind"}``: the device's public key, the
sequence number and chain hash of the last measurement it covers, when it was signed (the
stored UTC form) and ``kind`` (:data:`ROUND`: at the end of a round; :data:`DAY`: the last state
of a UTC day, re-signed at each round's end during that day). :func:`sign` gives the statement
bytes and their Ed25519 signature (base64url); :func:`check` says whether stored statement
bytes are a well-formed head signed by the key it names, and gives the head back. Anyone with
the public key can check a head; nobody without the private key can make one.
"""

from __future__ import annotations

from dataclasses import dataclass

from probe.evidence import canonical, keys

ROUND = "round"
DAY = "day"
KINDS = (ROUND, DAY)
_FIELDS = frozenset({"device_key", "seq", "chain_hash", "at", "kind"})


@dataclass(frozen=True, slots=True)
class Head:
    device_key: str
    seq: int
    chain_hash: str
    at: str
    kind: str

    def statement(self) -> bytes:
        return canonical.encode(
            {
                "device_key": self.device_key,
                "seq": self.seq,
                "chain_hash": self.chain_hash,
                "at": self.at,
                "kind": self.kind,
            }
        )


def sign(key: keys.DeviceKey, seq: int, chain_hash: str, at: str, kind: str) -> tuple[bytes, str]:
    """(statement, signature) of the head ``seq``/``chain_hash`` of ``key``'s chain."""
    if kind not in KINDS:
        raise ValueError(f"kind: {kind!r} is not one of {', '.join(KINDS)}")
    head = Head(key.public, seq, chain_hash, at, kind)
    statement = head.statement()
    return statement, key.sign(statement)


def parse(statement: bytes) -> Head | None:
    """The head a statement states, or None when it is not a canonical head statement."""
    data = canonical.decode_object(statement, _FIELDS)
    if data is None:
        return None
    seq = data["seq"]
    if not canonical.is_int(seq) or data["kind"] not in KINDS:
        return None
    if not all(isinstance(data[k], str) for k in ("device_key", "chain_hash", "at")):
        return None
    head = Head(data["device_key"], seq, data["chain_hash"], data["at"], data["kind"])
    return head if head.statement() == statement else None


def check(statement: bytes, signature: str) -> Head | None:
    """The head, when ``statement`` is a canonical head signed by the key it names; else
    None."""
    head = parse(statement)
    if head is None or not keys.verify(head.device_key, statement, signature):
        return None
    return head
