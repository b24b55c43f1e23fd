"""Batches: sealed, signed, opened; and every hostile or broken one refused with its reason."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.evidence import canonical
from probe.evidence.keys import DeviceKey
from probe.fleet import batch

DEVICE = DeviceKey.generate()
PRIVATE, PUBLIC = batch.collective_keypair()
RECORDS = [
    {
        "id": f"m{i}",
        "device_key": DEVICE.public,
        "seq": i,
        "observations": '{"dns": [{"answers": ["192.0.2.1"]}]}',
        "runtime": 0.25 * i,
        "blocking": None,
    }
    for i in range(1, 4)
]
BODIES = [{"sha256": "ab" * 32, "length": 5, "stored": 1, "text": "hello"}]
HEADS = [{"device_key": DEVICE.public, "kind": "round", "label": "r1", "seq": 3}]
SEALED = batch.seal(
    RECORDS,
    signing_key=DEVICE,
    collective_public_key=PUBLIC,
    prev=None,
    bodies=BODIES,
    heads=HEADS,
    made_at="2026-12-08T00:00:00Z",
)
MAX = 1 << 20


def opened(data: bytes, private: str = PRIVATE) -> batch.Batch | batch.Rejected:
    return batch.open_batch(data, collective_private_key=private, max_bytes=MAX)


def test_a_sealed_batch_opens_to_what_was_sealed() -> None:
    b = opened(SEALED.data)
    assert isinstance(b, batch.Batch)
    assert (b.device_key, b.prev, b.digest) == (DEVICE.public, None, SEALED.digest)
    assert b.records == RECORDS and b.bodies == BODIES and b.heads == HEADS
    assert b.made_at == "2026-12-08T00:00:00Z"
    assert SEALED.count == 3
    assert SEALED.key == f"batches/{DEVICE.public}/{SEALED.digest}.pbatch"
    assert batch.parse_object_key(SEALED.key) == (DEVICE.public, SEALED.digest)


def test_the_digest_names_the_content_not_the_sealing() -> None:
    again = batch.seal(
        RECORDS,
        signing_key=DEVICE,
        collective_public_key=PUBLIC,
        prev=None,
        bodies=BODIES,
        heads=HEADS,
        made_at="2026-12-08T00:00:00Z",
    )
    assert again.data != SEALED.data  # a new ephemeral key each time
    assert (again.key, again.digest) == (SEALED.key, SEALED.digest)
    other = batch.seal(
        RECORDS, signing_key=DEVICE, collective_public_key=PUBLIC, prev=SEALED.digest
    )
    assert other.digest != SEALED.digest
    b = opened(other.data)
    assert isinstance(b, batch.Batch) and b.prev == SEALED.digest


def test_the_records_keep_their_record_hash() -> None:
    b = opened(SEALED.data)
    assert isinstance(b, batch.Batch)
    assert [canonical.record_hash(r) for r in b.records] == [
        canonical.record_hash(r) for r in RECORDS
    ]


def test_the_bucket_and_the_path_read_nothing() -> None:
    assert b"192.0.2.1" not in SEALED.data and b"observations" not in SEALED.data


def test_another_collectives_batch_is_the_wrong_key() -> None:
    other_private, _ = batch.collective_keypair()
    assert opened(SEALED.data, other_private) == batch.Rejected(batch.WRONG_KEY)


def test_a_box_that_does_not_open_is_damaged() -> None:
    data = bytearray(SEALED.data)
    data[batch.HEADER + 40] ^= 1
    assert opened(bytes(data)) == batch.Rejected(batch.DAMAGED)


def _resealed(inner: bytes) -> bytes:
    from nacl.public import PublicKey, SealedBox

    box = SealedBox(PublicKey(batch.keys.from_b64url(PUBLIC))).encrypt(inner)
    return batch.MAGIC + batch.key_id(PUBLIC) + struct.pack(">Q", len(box)) + box


def _inner(sealed: batch.Sealed) -> bytes:
    from nacl.public import PrivateKey, SealedBox

    box = SealedBox(PrivateKey(batch.keys.from_b64url(PRIVATE)))
    return box.decrypt(sealed.data[batch.HEADER :])


def test_a_batch_changed_under_the_seal_has_a_bad_signature() -> None:
    inner = bytearray(_inner(SEALED))
    inner[-1] ^= 1
    assert opened(_resealed(bytes(inner))) == batch.Rejected(batch.BAD_SIGNATURE)
    # Another device's key put in front of the signature: the signature no longer matches.
    inner = bytearray(_inner(SEALED))
    inner[8:40] = batch.keys.from_b64url(DeviceKey.generate().public)
    assert opened(_resealed(bytes(inner))) == batch.Rejected(batch.BAD_SIGNATURE)


def test_a_signed_payload_that_is_no_batch_is_not_a_batch() -> None:
    import zstandard

    for text in (b"[]", b'{"v": 1}', b"not json", canonical.encode({"v": 2})):
        payload = zstandard.ZstdCompressor().compress(text)
        raw = batch.keys.from_b64url(DEVICE.public)
        signature = DEVICE.private.sign(batch.INNER_MAGIC + raw + payload)
        inner = batch.INNER_MAGIC + raw + signature + payload
        assert opened(_resealed(inner)) == batch.Rejected(batch.NOT_A_BATCH)
    raw = batch.keys.from_b64url(DEVICE.public)
    payload = b"not zstd"
    inner = batch.INNER_MAGIC + raw + DEVICE.private.sign(batch.INNER_MAGIC + raw + payload)
    assert opened(_resealed(inner + payload)) == batch.Rejected(batch.NOT_A_BATCH)


def test_oversized_objects_and_bombs_are_refused_before_they_cost() -> None:
    assert batch.open_batch(
        SEALED.data, collective_private_key=PRIVATE, max_bytes=len(SEALED.data) - 1
    ) == batch.Rejected(batch.OVERSIZED)
    bomb = batch.seal(
        [{"id": "x", "observations": "a" * 1_000_000}],
        signing_key=DEVICE,
        collective_public_key=PUBLIC,
        prev=None,
    )
    assert len(bomb.data) < 10_000
    assert batch.open_batch(
        bomb.data, collective_private_key=PRIVATE, max_bytes=MAX, max_inflated=500_000
    ) == batch.Rejected(batch.OVERSIZED)
    assert isinstance(opened(bomb.data), batch.Batch)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", batch.TRUNCATED),
        (b"PBATCH", batch.TRUNCATED),
        (b"PK\x03\x04" + b"\0" * 40, batch.NOT_A_BATCH),
        (SEALED.data + b"\0", batch.NOT_A_BATCH),
        (SEALED.data[:-1], batch.TRUNCATED),
        (SEALED.data[: batch.HEADER], batch.TRUNCATED),
    ],
    # Named, not shown: a sealed batch differs at every start (parallel workers must collect
    # the same test names).
    ids=["empty", "magic-only", "a-zip", "trailing-byte", "last-byte-cut", "header-only"],
)
def test_broken_objects_say_why(data: bytes, reason: str) -> None:
    assert opened(data) == batch.Rejected(reason)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_byte_flipped_is_refused_never_a_crash(data: st.DataObject) -> None:
    at = data.draw(st.integers(0, len(SEALED.data) - 1))
    bit = data.draw(st.integers(0, 7))
    flipped = bytearray(SEALED.data)
    flipped[at] ^= 1 << bit
    result = opened(bytes(flipped))
    assert isinstance(result, batch.Rejected) and result.reason in batch.REASONS


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(SEALED.data) - 1))
def test_any_truncation_is_refused_as_truncated(length: int) -> None:
    assert opened(SEALED.data[:length]) == batch.Rejected(batch.TRUNCATED)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_are_refused_never_a_crash(data: bytes) -> None:
    result = opened(data)
    assert isinstance(result, batch.Rejected) and result.reason in batch.REASONS
    result = opened(batch.MAGIC + batch.key_id(PUBLIC) + data)
    assert isinstance(result, batch.Rejected) and result.reason in batch.REASONS


def test_object_keys_are_parsed_strictly() -> None:
    assert batch.parse_object_key("prefix/" + SEALED.key) == (DEVICE.public, SEALED.digest)
    for key in ("batches/x/y.pbatch", f"batches/{DEVICE.public}/{SEALED.digest}.zip", "a"):
        assert batch.parse_object_key(key) is None
    assert batch.public_of(PRIVATE) == PUBLIC
