"""probe.analyst.timestamp against a real local timestamp authority (tests/servers/tsa.py:
``openssl ts -reply`` on loopback, a PKI made by the test): a good token verifies and gives the
TSA's time; a token for another digest or nonce, a tampered token, a wrong root, a TSA
certificate without the timeStamping usage, a rejection, garbage, a captive portal, HTTP 500, a
stale reply, silence and no TSA at all are each refused with one line; signed chain heads of a
fleet database are stamped once each and their tokens stored."""

from __future__ import annotations

import base64
import datetime
import hashlib
import itertools
import json
import random
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from probe.analyst import timestamp as ts
from probe.errors import TimestampError
from tests.servers.tcp import free_port
from tests.servers.tsa import LocalTSA, Pki, local_tsa

DIGEST = hashlib.sha256(b"a signed chain head").digest()
OTHER = hashlib.sha256(b"another chain head").digest()
UTC = datetime.UTC


def _refused(excinfo: pytest.ExceptionInfo[TimestampError], *words: str) -> str:
    line = str(excinfo.value)
    assert "\n" not in line and line.strip() == line, line
    for w in words:
        assert w in line, line
    return line


def _now() -> datetime.datetime:
    return datetime.datetime.now(UTC)


# -- a good token ------------------------------------------------------------------------------
def test_a_good_token_verifies_and_gives_the_tsa_time(tsa: LocalTSA, pki: Pki) -> None:
    before = _now().replace(microsecond=0)
    reply = ts.request(DIGEST, tsa.url, timeout=10)
    after = _now()
    at = ts.verify(reply, DIGEST, roots=[pki.root])
    assert at.tzinfo is not None and at.utcoffset() == datetime.timedelta(0)
    assert before - datetime.timedelta(seconds=1) <= at <= after + datetime.timedelta(seconds=1)
    # the stored form, the bare token, verifies the same
    assert ts.verify(ts.token_of(reply), DIGEST, roots=[pki.root]) == at


def test_the_query_is_for_the_sha256_digest_with_a_nonce_and_asks_for_the_certificate(
    tsa: LocalTSA, tmp_path: Path
) -> None:
    ts.request(DIGEST, tsa.url, timeout=10, nonce=0xC0FFEE1234)
    ts.request(DIGEST, tsa.url, timeout=10)
    ts.request(DIGEST, tsa.url, timeout=10)
    assert tsa.content_types == ["application/timestamp-query"] * 3
    texts = []
    for i, q in enumerate(tsa.queries):
        (tmp_path / f"{i}.tsq").write_bytes(q)
        done = subprocess.run(
            ["openssl", "ts", "-query", "-in", str(tmp_path / f"{i}.tsq"), "-text"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        texts.append(done.stdout)
    hexed = DIGEST.hex()
    for text in texts:
        assert "Hash Algorithm: sha256" in text
        dump = "".join(
            line.split(" - ", 1)[1][:47].replace("-", " ").replace(" ", "")
            for line in text.splitlines()
            if " - " in line
        )
        assert dump == hexed
        assert "Certificate required: yes" in text
        assert "Policy OID: unspecified" in text
    assert "Nonce: 0xC0FFEE1234" in texts[0]
    nonces = [line for t in texts[1:] for line in t.splitlines() if line.startswith("Nonce:")]
    assert len(nonces) == 2 and nonces[0] != nonces[1] and "unspecified" not in nonces[0]


def test_the_token_verifies_with_openssl_too(tsa: LocalTSA, pki: Pki, tmp_path: Path) -> None:
    """The reply is OpenSSL's, for the digest asked: ``openssl ts -verify`` agrees."""
    (tmp_path / "reply.tsr").write_bytes(ts.request(DIGEST, tsa.url, timeout=10))
    reply, root = str(tmp_path / "reply.tsr"), str(pki.pem("root"))
    done = subprocess.run(
        ["openssl", "ts", "-verify", "-digest", DIGEST.hex(), "-in", reply, "-CAfile", root],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0 and "Verification: OK" in done.stdout, done.stderr


def test_the_certificates_verify_in_either_order(tsa: LocalTSA, pki: Pki) -> None:
    """CMS's certificate set is a SET OF, which DER sorts; OpenSSL's ``ts`` (and Microsoft's and
    Bouncy Castle's TSAs) write it in chain order, and rfc3161-client refuses a set out of DER's
    order as malformed. The set is outside the signature, so either order verifies."""
    reply = ts.request(DIGEST, tsa.url, timeout=10)
    leaf, ca = (c.public_bytes(Encoding.DER) for c in (pki.tsa, pki.intermediate))
    assert reply.count(leaf + ca) + reply.count(ca + leaf) == 1  # OpenSSL's chain, adjacent
    orders = {reply.replace(leaf + ca, ca + leaf), reply.replace(ca + leaf, leaf + ca)}
    assert len(orders) == 2
    at = {ts.verify(r, DIGEST, roots=[pki.root]) for r in orders}
    assert len(at) == 1
    for r in orders:
        assert ts.verify(ts.token_of(r), DIGEST, roots=[pki.root]) in at


def test_the_nonce_is_checked_when_given(tsa: LocalTSA, pki: Pki) -> None:
    reply = ts.request(DIGEST, tsa.url, timeout=10, nonce=4242)
    assert ts.verify(reply, DIGEST, roots=[pki.root], nonce=4242)
    with pytest.raises(TimestampError) as e:
        ts.verify(reply, DIGEST, roots=[pki.root], nonce=4243)
    _refused(e, "nonce")


# -- tokens refused ----------------------------------------------------------------------------
def test_a_token_for_another_digest_is_refused(tsa: LocalTSA, pki: Pki) -> None:
    reply = ts.request(DIGEST, tsa.url, timeout=10)
    with pytest.raises(TimestampError) as e:
        ts.verify(reply, OTHER, roots=[pki.root], where="head 7")
    _refused(e, "head 7", "another digest", DIGEST.hex()[:16])


def _tamper_time(reply: bytes) -> bytes:
    """The genTime's seconds changed by one: still well-formed DER, no longer what was signed."""
    year = str(_now().year).encode()
    at = reply.index(b"\x18\x0f" + year) + 2  # GeneralizedTime, 15 bytes: YYYYMMDDhhmmssZ
    assert reply[at + 14 : at + 15] == b"Z"
    tampered = bytearray(reply)
    tampered[at + 13] = ord("0") + (tampered[at + 13] - ord("0") + 1) % 10
    return bytes(tampered)


def test_a_tampered_token_is_refused(tsa: LocalTSA, pki: Pki) -> None:
    reply = ts.request(DIGEST, tsa.url, timeout=10)
    tampered = _tamper_time(reply)
    assert tampered != reply
    with pytest.raises(TimestampError) as e:
        ts.verify(tampered, DIGEST, roots=[pki.root])
    _refused(e, "does not verify", "signature")
    with pytest.raises(TimestampError) as e:
        ts.verify(ts.token_of(tampered), DIGEST, roots=[pki.root])
    _refused(e, "does not verify")


def test_a_token_is_refused_for_any_root_but_the_given_one(tsa: LocalTSA, pki: Pki) -> None:
    """Only the root the analyst gives is trusted: never the system's, never the TSA's own
    certificate, never a root the token carries (the re-signed token embeds it)."""
    reply = ts.request(DIGEST, tsa.url, timeout=10)
    tsa.resign_with = "tsa"
    carrying_its_root = ts.request(DIGEST, tsa.url, timeout=20)
    assert pki.root.public_bytes(Encoding.DER) in carrying_its_root
    for token, roots in itertools.product(
        (reply, carrying_its_root), ([pki.other_root], [pki.tsa], [pki.intermediate])
    ):
        with pytest.raises(TimestampError) as e:
            ts.verify(token, DIGEST, roots=roots)
        _refused(e, "does not verify", "chain")
    with pytest.raises(TimestampError) as e:
        ts.verify(reply, DIGEST, roots=[])
    _refused(e, "no root")
    assert ts.verify(reply, DIGEST, roots=[pki.other_root, pki.root])


def test_a_tsa_certificate_without_the_timestamping_usage_is_refused(pki: Pki) -> None:
    with local_tsa(pki, resign_with="no_eku") as tsa:
        reply = ts.request(DIGEST, tsa.url, timeout=20)
    with pytest.raises(TimestampError) as e:
        ts.verify(reply, DIGEST, roots=[pki.root])
    _refused(e, "Probe Test Signer Without EKU", "timeStamping")
    # the same re-signing by the real TSA's certificate verifies: only the usage is wrong above
    with local_tsa(pki, resign_with="tsa") as tsa:
        reply = ts.request(DIGEST, tsa.url, timeout=20)
    assert ts.verify(reply, DIGEST, roots=[pki.root])


def test_a_mangled_token_is_refused_with_one_line_or_says_what_was_signed(
    tsa: LocalTSA, pki: Pki
) -> None:
    """Hostile bytes (a real reply with 1 to 3 bytes changed, or cut short) never escape as
    another exception, a warning, or a second line; the few that still verify (fields outside
    the signature: CMS and SignerInfo versions, the signature algorithm's OID, the string type
    of a name in the signer's identifier) say the same time."""
    reply = ts.request(DIGEST, tsa.url, timeout=10)
    good = ts.verify(reply, DIGEST, roots=[pki.root])
    rng = random.Random(22)
    refused = 0
    for _ in range(400):
        mangled = bytearray(reply)
        for _ in range(rng.randint(1, 3)):
            mangled[rng.randrange(len(mangled))] = rng.randrange(256)
        if rng.random() < 0.2:
            mangled = mangled[: rng.randrange(len(mangled))]
        try:
            assert ts.verify(bytes(mangled), DIGEST, roots=[pki.root], where="x") == good
        except TimestampError as e:
            line = str(e)
            assert "\n" not in line and line.startswith("x: "), line
            refused += 1
    assert refused > 300


def test_the_verifier_needs_a_token_at_all(pki: Pki) -> None:
    for junk in (b"", b"\x30\x03\x02\x01\x00", b"not DER at all"):
        with pytest.raises(TimestampError) as e:
            ts.verify(junk, DIGEST, roots=[pki.root], where="row 3")
        _refused(e, "row 3", "not a timestamp")


# -- TSAs that misbehave -----------------------------------------------------------------------
def test_a_rejection_is_refused_with_the_tsa_status(tsa: LocalTSA) -> None:
    tsa.mode = "reject"  # OpenSSL configured for SHA-512 imprints only
    with pytest.raises(TimestampError) as e:
        ts.request(DIGEST, tsa.url, timeout=10)
    _refused(e, tsa.url, "rejection")


@pytest.mark.parametrize(
    ("mode", "words"),
    [
        ("garbage", ["not a timestamp response"]),
        ("html", ["text/html"]),
        ("error", ["HTTP 500"]),
        ("huge", ["larger than"]),
    ],
)
def test_a_tsa_that_answers_wrong_is_refused(tsa: LocalTSA, mode: str, words: list[str]) -> None:
    tsa.mode = mode
    with pytest.raises(TimestampError) as e:
        ts.request(DIGEST, tsa.url, timeout=10)
    _refused(e, tsa.url, *words)


def test_a_stale_reply_to_another_query_is_refused(tsa: LocalTSA) -> None:
    tsa.mode = "replay"
    ts.request(OTHER, tsa.url, timeout=10)
    with pytest.raises(TimestampError) as e:
        ts.request(DIGEST, tsa.url, timeout=10)
    _refused(e, tsa.url, "another")
    with pytest.raises(TimestampError) as e:  # the same digest, but the nonce is not ours
        ts.request(OTHER, tsa.url, timeout=10)
    _refused(e, tsa.url, "nonce")


def test_a_silent_tsa_times_out(tsa: LocalTSA) -> None:
    tsa.mode = "silent"
    start = time.monotonic()
    with pytest.raises(TimestampError) as e:
        ts.request(DIGEST, tsa.url, timeout=0.5)
    assert time.monotonic() - start < 5
    _refused(e, tsa.url, "no answer within 0.5 s")


def test_no_tsa_at_all() -> None:
    url = f"http://127.0.0.1:{free_port(['127.0.0.1'])}/tsa"
    with pytest.raises(TimestampError) as e:
        ts.request(DIGEST, url, timeout=2)
    _refused(e, url, "cannot reach")


def test_bad_arguments_are_refused_before_any_query(tsa: LocalTSA) -> None:
    with pytest.raises(TimestampError) as e:
        ts.request(DIGEST[:20], tsa.url, timeout=10)
    _refused(e, "32 bytes", "not 20 bytes")
    with pytest.raises(TimestampError) as e:
        ts.request(DIGEST, tsa.url, timeout=10, nonce=-1)
    _refused(e, "nonce -1")
    with pytest.raises(TimestampError) as e:
        ts.request(DIGEST, "ftp://127.0.0.1/tsa", timeout=10)
    _refused(e, "ftp://127.0.0.1/tsa", "http")
    assert tsa.queries == []


def test_the_local_tsa_leaves_no_thread_behind(pki: Pki) -> None:
    before = set(threading.enumerate())
    with local_tsa(pki, mode="silent") as tsa, pytest.raises(TimestampError):
        ts.request(DIGEST, tsa.url, timeout=0.3)
    deadline = time.monotonic() + 10
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert set(threading.enumerate()) - before == set()


def test_roots_are_read_from_a_pem_file(pki: Pki, tmp_path: Path) -> None:
    assert ts.load_roots(pki.pem("root")) == [pki.root]
    bad = tmp_path / "roots.pem"
    bad.write_text("not a certificate\n")
    for path in (bad, tmp_path / "missing.pem"):
        with pytest.raises(TimestampError) as e:
            ts.load_roots(path)
        _refused(e, str(path))


# -- signed chain heads of a fleet database ----------------------------------------------------
def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


HEADS = [
    # id, device_key, seq, chain_hash, signature (None: not signed)
    (1, _b64(b"k" * 32), 10, bytes(range(32)), b"s" * 64),
    (2, _b64(b"k" * 32), 20, bytes(range(1, 33)), b"t" * 64),
    (3, _b64(b"m" * 32), 5, bytes(range(2, 34)), None),
    (4, _b64(b"m" * 32), 6, bytes(range(3, 35)), b"u" * 64),
]


def _fleet(path: Path) -> Path:
    """A fleet database with the chain_heads columns this module reads (the chain's own table
    has more: ``at``, ``kind``)."""
    con = sqlite3.connect(path)
    con.execute(
        "CREATE TABLE chain_heads (id INTEGER PRIMARY KEY, device_key TEXT NOT NULL,"
        " seq INTEGER NOT NULL, chain_hash BLOB NOT NULL, signature BLOB)"
    )
    con.executemany("INSERT INTO chain_heads VALUES (?, ?, ?, ?, ?)", HEADS)
    con.commit()
    con.close()
    return path


def _stamps(path: Path) -> list[tuple[int, str, bytes, str]]:
    con = sqlite3.connect(path)
    try:
        return list(
            con.execute("SELECT head_id, tsa_url, token, time FROM timestamps ORDER BY head_id")
        )
    finally:
        con.close()


def test_head_digest_is_sha256_of_the_heads_canonical_json() -> None:
    _, key, seq, chain, sig = HEADS[0]
    assert sig is not None
    canonical = json.dumps(
        {"chain_hash": _b64(chain), "device_key": key, "seq": seq, "signature": _b64(sig)},
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    assert ts.head_digest(key, seq, chain, sig) == hashlib.sha256(canonical).digest()
    assert ts.head_digest(key, seq, chain.hex(), sig) != ts.head_digest(key, seq, chain, sig)
    others = {
        ts.head_digest(key, seq + 1, chain, sig),
        ts.head_digest(_b64(b"x" * 32), seq, chain, sig),
        ts.head_digest(key, seq, chain[::-1], sig),
        ts.head_digest(key, seq, chain, sig[:-1] + b"x"),
    }
    assert ts.head_digest(key, seq, chain, sig) not in others and len(others) == 4


def test_signed_heads_are_stamped_once_each_and_their_tokens_verify(
    tsa: LocalTSA, pki: Pki, tmp_path: Path
) -> None:
    db = _fleet(tmp_path / "fleet.db")
    before = _now().replace(microsecond=0)
    stamped = ts.timestamp_heads(db, tsa.url, [pki.root], timeout=10)
    assert [s.head_id for s in stamped] == [1, 2, 4]  # head 3 is not signed
    rows = _stamps(db)
    assert [(r[0], r[1]) for r in rows] == [(1, tsa.url), (2, tsa.url), (4, tsa.url)]
    heads = {h[0]: h for h in HEADS}
    for (head_id, _, token, at), s in zip(rows, stamped, strict=True):
        _, key, seq, chain, sig = heads[head_id]
        assert sig is not None
        when = ts.verify(token, ts.head_digest(key, seq, chain, sig), roots=[pki.root])
        assert datetime.datetime.fromisoformat(at) == when == s.time
        assert before - datetime.timedelta(seconds=1) <= when <= _now()
    assert len(tsa.queries) == 3
    # once each: a second run asks nothing, a new head is stamped alone
    assert ts.timestamp_heads(db, tsa.url, [pki.root], timeout=10) == []
    assert len(tsa.queries) == 3
    con = sqlite3.connect(db)
    con.execute("UPDATE chain_heads SET signature = ? WHERE id = 3", (b"v" * 64,))
    con.commit()
    con.close()
    assert [s.head_id for s in ts.timestamp_heads(db, tsa.url, [pki.root], timeout=10)] == [3]
    assert len(tsa.queries) == 4 and len(_stamps(db)) == 4


def test_a_second_tsa_stamps_every_head_again(pki: Pki, tmp_path: Path) -> None:
    db = _fleet(tmp_path / "fleet.db")
    with local_tsa(pki) as a, local_tsa(pki) as b:
        assert len(ts.timestamp_heads(db, a.url, [pki.root], timeout=10)) == 3
        assert len(ts.timestamp_heads(db, b.url, [pki.root], timeout=10)) == 3
    assert sorted({r[1] for r in _stamps(db)}) == sorted([a.url, b.url])


def test_a_token_that_does_not_verify_is_never_stored(pki: Pki, tmp_path: Path) -> None:
    db = _fleet(tmp_path / "fleet.db")
    with local_tsa(pki, resign_with="no_eku") as tsa, pytest.raises(TimestampError) as e:
        ts.timestamp_heads(db, tsa.url, [pki.root], timeout=20)
    _refused(e, "head 1", "timeStamping")
    assert _stamps(db) == []
    with local_tsa(pki) as tsa, pytest.raises(TimestampError) as e:
        ts.timestamp_heads(db, tsa.url, [pki.other_root], timeout=10)
    _refused(e, "head 1", "chain")
    assert _stamps(db) == []


def test_a_failing_tsa_keeps_the_heads_stamped_before_it(pki: Pki, tmp_path: Path) -> None:
    db = _fleet(tmp_path / "fleet.db")
    with local_tsa(pki) as tsa:
        ts.timestamp_heads(db, tsa.url, [pki.root], timeout=10)
        con = sqlite3.connect(db)
        con.execute("INSERT INTO chain_heads VALUES (5, 'key', 1, x'00', x'01')")
        con.commit()
        con.close()
        tsa.mode = "error"
        with pytest.raises(TimestampError) as e:
            ts.timestamp_heads(db, tsa.url, [pki.root], timeout=10)
        _refused(e, "head 5", tsa.url, "HTTP 500")
    assert [r[0] for r in _stamps(db)] == [1, 2, 4]


def test_a_database_without_chain_heads_is_refused(tsa: LocalTSA, pki: Pki, tmp_path: Path) -> None:
    empty = tmp_path / "old.db"
    sqlite3.connect(empty).close()
    missing = tmp_path / "missing.db"
    for db, words in ((empty, ["chain_heads"]), (missing, ["no such file"])):
        with pytest.raises(TimestampError) as e:
            ts.timestamp_heads(db, tsa.url, [pki.root], timeout=10)
        _refused(e, str(db), *words)
    assert not missing.exists()
    assert tsa.queries == []
