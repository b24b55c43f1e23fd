"""Signed prune records: a device's statement that it deleted a range of its own chain.

Contract: ``probe prune`` deletes old measurements; their places in the chain stay empty. So that
``probe verify`` can tell a prune from a removal, the store records each range of one device's
chain that a prune deleted, in the prune's own transaction, with a statement signed by the key
of the database that pruned (:func:`sign`): the canonical encoding (RFC 8785,
``probe.evidence.canonical``) of exactly ``{"kind": "prune", "device_key", "first", "last",
"last_chain_hash", "at", "by"}``: the chain's device key, the first and last seq deleted, the
chain hash of the last one (so the link of the measurement after the range still proves it
follows it), when, and the public key that signed (``by``). :func:`check` gives the record back
when the statement is canonical and signed by ``by``; only a record with ``by`` equal to
``device_key`` (the volunteer's own probe pruned its own chain) makes a range *pruned* for
``probe verify``: anyone can sign with a key of their own.
"""

from __future__ import annotations

from dataclasses import dataclass

from probe.evidence import canonical, keys

KIND = "prune"
_FIELDS = frozenset({"kind", "device_key", "first", "last", "last_chain_hash", "at", "by"})


@dataclass(frozen=True, slots=True)
class Pruned:
    device_key: str
    first: int
    last: int
    last_chain_hash: str
    at: str
    by: str

    def statement(self) -> bytes:
        return canonical.encode(
            {
                "kind": KIND,
                "device_key": self.device_key,
                "first": self.first,
                "last": self.last,
                "last_chain_hash": self.last_chain_hash,
                "at": self.at,
                "by": self.by,
            }
        )

    @property
    def own(self) -> bool:
        """Signed by the device whose chain it prunes."""
        return self.by == self.device_key


def sign(
    key: keys.DeviceKey, device_key: str, first: int, last: int, last_chain_hash: str, at: str
) -> tuple[bytes, str]:
    """(statement, signature) of the prune of ``device_key``'s seq ``first..last``, by
    ``key``."""
    if not 1 <= first <= last:
        raise ValueError(f"seq {first}..{last} is no range of a chain")
    record = Pruned(device_key, first, last, last_chain_hash, at, key.public)
    statement = record.statement()
    return statement, key.sign(statement)


def parse(statement: bytes) -> Pruned | None:
    """The record a statement states, or None when it is not a canonical prune statement."""
    data = canonical.decode_object(statement, _FIELDS)
    if data is None or data["kind"] != KIND:
        return None
    first, last = data["first"], data["last"]
    if not (canonical.is_int(first) and canonical.is_int(last)):
        return None
    if not 1 <= first <= last < 2**53:
        return None
    if not all(isinstance(data[k], str) for k in ("device_key", "last_chain_hash", "at", "by")):
        return None
    record = Pruned(
        data["device_key"], first, last, data["last_chain_hash"], data["at"], data["by"]
    )
    return record if record.statement() == statement else None


def check(statement: bytes, signature: str) -> Pruned | None:
    """The record, when ``statement`` is a canonical prune statement signed by the key it
    names as ``by``; else None."""
    record = parse(statement)
    if record is None or not keys.verify(record.by, statement, signature):
        return None
    return record
