"""The seam (probe.measure.net): the certificate summary a TLS handshake keeps, against a real TLS
server on loopback whose certificate the test makes (one with a subjectAltName, one without: a
legacy certificate that names its host only in the common name, which OpenSSL still accepts).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from probe.measure import net
from probe.model import Certificate
from tests import servers as S

HOST = "127.0.0.15"
NOT_BEFORE = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
NOT_AFTER = dt.datetime(2036, 6, 7, 8, 9, 10, tzinfo=dt.UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_files(tmp: Path, san: bool) -> tuple[str, str, str, bytes]:
    """A CA, and a leaf for ``site.test`` signed by it (with or without a subjectAltName): the
    CA's PEM path, the leaf's cert and key paths, and the leaf's DER."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("Test Root"))
        .issuer_name(_name("Test Root"))
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name("site.test"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
    )
    if san:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("site.test"), x509.DNSName("www.site.test")]),
            critical=False,
        )
    leaf = builder.sign(ca_key, hashes.SHA256())
    paths = [tmp / "ca.pem", tmp / "leaf.pem", tmp / "leaf.key"]
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return (
        str(paths[0]),
        str(paths[1]),
        str(paths[2]),
        leaf.public_bytes(serialization.Encoding.DER),
    )


@contextlib.contextmanager
def tls_server(cert: str, key: str) -> Iterator[int]:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    listener = socket.socket()
    listener.bind((HOST, 0))
    listener.listen(4)

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with (
                contextlib.suppress(OSError, ssl.SSLError),
                ctx.wrap_socket(conn, server_side=True) as s,
            ):
                s.recv(1)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        t.join(5)


def handshake(ca: str | None, port: int) -> tuple[Certificate, ...]:
    """The certificates a handshake keeps: verified against ``ca``, or (None) not verified, as
    when the probe looks again at who answered a failed verification."""

    async def go() -> tuple[Certificate, ...]:
        sock = await net.tcp_connect(HOST, port, 5)
        try:
            ctx = (
                ssl.create_default_context(cafile=ca) if ca else net.make_ssl_context(verify=False)
            )
            return (await net.tls_handshake(sock, ctx, "site.test", 5)).certificates
        finally:
            sock.close()

    return asyncio.run(go())


@pytest.mark.parametrize("san", [True, False], ids=["with-san", "cn-only"])
def test_a_verified_certificate_is_summarised_whole(tmp_path: Path, san: bool) -> None:
    ca, cert, key, der = _pem_files(tmp_path, san)
    with tls_server(cert, key) as port:
        leaf = handshake(ca, port)[0]
    # ssl's own names ("commonName=..."; the DER path, for unverified chains, writes RFC 4514's
    # "CN=..."): the value is what matters here.
    assert leaf.subject.endswith("=site.test") and leaf.issuer.endswith("=Test Root")
    assert leaf.san == (("site.test", "www.site.test") if san else ())
    assert leaf.sha256 == hashlib.sha256(der).hexdigest()
    # The validity as OpenSSL prints it, to the second.
    assert leaf.not_before is not None and leaf.not_after is not None
    assert ssl.cert_time_to_seconds(leaf.not_before) == int(NOT_BEFORE.timestamp())
    assert ssl.cert_time_to_seconds(leaf.not_after) == int(NOT_AFTER.timestamp())


def _when(text: str | None) -> dt.datetime | None:
    """A summary's time as a datetime: ISO 8601 (from the DER) or OpenSSL's text (from ssl's
    decoded form; Python 3.13's chain API summarises that way, see probe.measure.net)."""
    if text is None:
        return None
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return dt.datetime.fromtimestamp(ssl.cert_time_to_seconds(text), dt.UTC)


def test_an_unverified_certificate_is_summarised_whole(tmp_path: Path) -> None:
    """Not verified (ssl's getpeercert then decodes nothing): the summary still names who
    answered, for when, and for which names."""
    _, cert, key, der = _pem_files(tmp_path, san=True)
    with tls_server(cert, key) as port:
        (leaf,) = handshake(None, port)
    assert leaf.subject.endswith("=site.test") and leaf.issuer.endswith("=Test Root")
    assert (_when(leaf.not_before), _when(leaf.not_after)) == (NOT_BEFORE, NOT_AFTER)
    assert (leaf.san, leaf.sha256) == (
        ("site.test", "www.site.test"),
        hashlib.sha256(der).hexdigest(),
    )


@contextlib.contextmanager
def counting_tls_server(
    cert: str, key: str, version: ssl.TLSVersion
) -> Iterator[tuple[int, list[tuple[int, str]]]]:
    """A TLS server of one version, sending no session tickets (so nothing follows its
    handshake unasked), that records the bytes it received and sent during the handshake and
    the cipher agreed."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ctx.maximum_version = version
    ctx.num_tickets = 0
    ctx.load_cert_chain(cert, key)
    listener = socket.socket()
    listener.bind((HOST, 0))
    listener.listen(4)
    moved: list[tuple[int, str]] = []

    def serve() -> None:
        with contextlib.suppress(OSError, ssl.SSLError):
            conn, _ = listener.accept()
            conn.settimeout(5)
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            obj = ctx.wrap_bio(incoming, outgoing, server_side=True)
            total = 0
            with conn:
                while True:
                    try:
                        obj.do_handshake()
                        break
                    except ssl.SSLWantReadError:
                        out = outgoing.read()
                        total += len(out)
                        conn.sendall(out)
                        data = conn.recv(65536)
                        if not data:
                            return
                        total += len(data)
                        incoming.write(data)
                out = outgoing.read()
                total += len(out)
                conn.sendall(out)
                moved.append((total, (obj.cipher() or ("",))[0]))
                conn.recv(1)  # until the client closes

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield listener.getsockname()[1], moved
    finally:
        listener.close()
        t.join(5)


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_the_handshake_counts_every_byte_it_moved(tmp_path: Path, version: ssl.TLSVersion) -> None:
    """Both flights each way, the client's last one (TLS 1.3's Finished, sent after its
    handshake is done) included; and the cipher by its name."""
    ca, cert, key, _ = _pem_files(tmp_path, san=True)

    async def go(port: int) -> net.TLSResult:
        sock = await net.tcp_connect(HOST, port, 5)
        try:
            return await net.tls_handshake(
                sock, ssl.create_default_context(cafile=ca), "site.test", 5
            )
        finally:
            sock.close()

    with counting_tls_server(cert, key, version) as (port, moved):
        res = asyncio.run(go(port))
    assert res.version == version.name.replace("v1_", "v1.") and res.alpn is None
    assert [(res.bytes, res.cipher)] == moved  # what the server sent and received, exactly


def test_a_server_that_never_answers_the_hello_is_a_timeout() -> None:
    async def go(port: int) -> None:
        sock = await net.tcp_connect(HOST, port, 5)
        try:
            await asyncio.wait_for(
                net.tls_handshake(sock, net.make_ssl_context(verify=False), "site.test", 1), 10
            )
        finally:
            sock.close()

    with S.closing_all(silent := S.TCPServer("hang", HOST)):
        t0 = dt.datetime.now(dt.UTC)
        with pytest.raises(TimeoutError):
            asyncio.run(go(silent.port))
        took = (dt.datetime.now(dt.UTC) - t0).total_seconds()
    assert took < 3  # its own timeout (1 s)
