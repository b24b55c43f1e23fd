"""A real RFC 3161 timestamp authority on loopback: ``openssl ts -reply`` behind a small HTTP
server speaking ``application/timestamp-query`` -> ``application/timestamp-reply`` (RFC 3161
section 3.4), with a test PKI made here by ``cryptography``.

:func:`make_pki` writes a root CA, an intermediate CA under it, the TSA's certificate the
intermediate issued (the critical ``timeStamping`` extended key usage RFC 3161 section 2.3
requires), a second certificate from the same intermediate without that usage, and an unrelated
root. :class:`LocalTSA` answers each POST with OpenSSL's own reply (the TSA's certificate and the
intermediate in it, in OpenSSL's order, which is not always DER's), or misbehaves as told by
``mode``:

- ``reply``: OpenSSL's answer; with ``resign_with`` a signer name, OpenSSL's TSTInfo re-signed by
  ``openssl cms`` with that certificate, the intermediate and the root beside it (OpenSSL's
  ``ts`` refuses a signer without the usage, so this is how a token from such a TSA is made;
  re-signed with the real TSA's certificate it verifies too; a verifier that trusted what a
  token carries would be fooled by the root in it);
- ``reject``: OpenSSL's own rejection (its configuration accepts only SHA-512 imprints);
- ``garbage``: 200 with the right content type and bytes that are not DER;
- ``html``: 200 with a captive portal's page;
- ``error``: HTTP 500;
- ``huge``: 200 with a megabyte (a reply is a few kilobytes);
- ``replay``: OpenSSL's answer to the first query, to every later one (a stale or cached reply);
- ``silent``: reads the query and never answers (until closed).

Every ``openssl`` process is waited for; :meth:`LocalTSA.close` wakes a silent handler, stops the
server and joins its threads, so nothing outlives the test.
"""

from __future__ import annotations

import datetime
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

POLICY = "1.3.6.1.4.1.99999.22.1"  # a test policy OID (a private-enterprise arc)
OPENSSL_TIMEOUT = 30.0


@dataclass(frozen=True)
class Pki:
    """The test PKI's files in ``folder`` and its certificates."""

    folder: Path
    root: x509.Certificate  # issued the intermediate
    intermediate: x509.Certificate  # issued the TSA's certificates
    other_root: x509.Certificate  # issued nothing here
    tsa: x509.Certificate  # critical EKU timeStamping
    no_eku: x509.Certificate  # the same root's, without the extended key usage

    def pem(self, name: str) -> Path:
        return self.folder / f"{name}.pem"

    def key(self, name: str) -> Path:
        return self.folder / f"{name}.key"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _builder(
    subject: str, issuer: x509.Name, public: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )


def _ca(
    cn: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed root, or (``issuer`` given) an intermediate CA under it."""
    key = ec.generate_private_key(ec.SECP256R1())
    issuer_name, signing_key = (issuer[0].subject, issuer[1]) if issuer else (_name(cn), key)
    cert = (
        _builder(cn, issuer_name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0 if issuer else 1), True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(signing_key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    cn: str, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, *, eku: bool
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    b = (
        _builder(cn, ca.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if eku:
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), True)
    return b.sign(ca_key, hashes.SHA256()), key


def make_pki(folder: Path) -> Pki:
    """A root, an intermediate CA under it, the intermediate's TSA certificate (critical
    timeStamping EKU) and a second certificate without the EKU, and an unrelated root, as PEM
    files in ``folder`` (``chain.pem``: the intermediate and the root; keys unencrypted: a
    test's)."""
    folder.mkdir(parents=True, exist_ok=True)
    root, root_key = _ca("Probe Test Timestamping Root")
    ca, ca_key = _ca("Probe Test TSA Issuing CA", (root, root_key))
    other, _ = _ca("Probe Test Unrelated Root")
    tsa, tsa_key = _leaf("Probe Test TSA", ca, ca_key, eku=True)
    no_eku, no_eku_key = _leaf("Probe Test Signer Without EKU", ca, ca_key, eku=False)
    certs = {"root": root, "intermediate": ca, "other_root": other, "tsa": tsa, "no_eku": no_eku}
    for name, cert in certs.items():
        (folder / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    chain = (folder / "intermediate.pem").read_bytes() + (folder / "root.pem").read_bytes()
    (folder / "chain.pem").write_bytes(chain)
    for name, key in (("tsa", tsa_key), ("no_eku", no_eku_key)):
        (folder / f"{name}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return Pki(folder, root, ca, other, tsa, no_eku)


def _config(pki: Pki, folder: Path, digests: str) -> Path:
    """An ``openssl ts`` configuration: the TSA's certificate and key, the intermediate embedded
    beside the certificate (OpenSSL writes them in that order, not sorted as DER's SET OF is),
    SHA-256 signatures, ESS certificate ids in SHA-256."""
    path = folder / f"tsa-{digests.replace(', ', '-')}.cnf"
    path.write_text(
        "[ tsa ]\n"
        "default_tsa = tsa_config\n"
        "[ tsa_config ]\n"
        f"serial = {folder / 'serial'}\n"
        "crypto_device = builtin\n"
        f"signer_cert = {pki.pem('tsa')}\n"
        f"certs = {pki.pem('intermediate')}\n"
        f"signer_key = {pki.key('tsa')}\n"
        "signer_digest = sha256\n"
        f"default_policy = {POLICY}\n"
        f"digests = {digests}\n"
        "accuracy = secs:1\n"
        "ordering = no\n"
        "tsa_name = yes\n"
        "ess_cert_id_chain = no\n"
        "ess_cert_id_alg = sha256\n"
    )
    return path


def _openssl(*args: str | Path) -> bytes:
    done = subprocess.run(
        ["openssl", *map(str, args)], capture_output=True, timeout=OPENSSL_TIMEOUT, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} {args[1]}: {done.stderr.decode(errors='replace')}")
    return done.stdout


def der(tag: int, content: bytes) -> bytes:
    """One DER element: tag, definite length, content."""
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def granted(token: bytes) -> bytes:
    """A TimeStampResp (status granted) carrying ``token``."""
    return der(0x30, der(0x30, der(0x02, b"\x00")) + token)


@dataclass
class LocalTSA:
    """The TSA on 127.0.0.1; ``url`` is its address. ``mode`` and ``resign_with`` may be changed
    between requests. ``queries`` holds every request body received, ``content_types`` their
    Content-Type headers, ``errors`` what OpenSSL said when it failed."""

    pki: Pki
    mode: str = "reply"
    resign_with: str | None = None  # "tsa" or "no_eku"
    queries: list[bytes] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # OpenSSL's, answered with HTTP 500

    def __post_init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="tsa-")
        self._folder = Path(self._dir.name)
        (self._folder / "serial").write_text("01\n")
        self._configs = {
            "reply": _config(self.pki, self._folder, "sha256, sha384, sha512"),
            "reject": _config(self.pki, self._folder, "sha512"),
        }
        self._lock = threading.Lock()  # one openssl at a time: they share the serial file
        self._closing = threading.Event()
        self._first: bytes | None = None
        self._httpd = _Server(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = False  # server_close joins every handler
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/tsa"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def answer(self, query: bytes) -> tuple[int, str, bytes]:
        """(status, content type, body) for one query, by ``mode``."""
        if self.mode == "garbage":
            return 200, "application/timestamp-reply", b"\x30\x82\x01\x00not a timestamp"
        if self.mode == "html":
            return 200, "text/html", b"<html><body>Please log in to use the Wi-Fi</body></html>"
        if self.mode == "error":
            return 500, "text/plain", b"internal error"
        if self.mode == "huge":
            return 200, "application/timestamp-reply", b"\x30\x84\x00\x10\x00\x00" + bytes(2**20)
        if self.mode == "replay" and self._first is not None:
            return 200, "application/timestamp-reply", self._first
        with self._lock, tempfile.TemporaryDirectory(dir=self._folder) as tmp:
            q, r = Path(tmp) / "query.tsq", Path(tmp) / "reply.tsr"
            q.write_bytes(query)
            config = self._configs["reject" if self.mode == "reject" else "reply"]
            _openssl("ts", "-reply", "-config", config, "-queryfile", q, "-out", r)
            if self.resign_with is None or self.mode == "reject":
                reply = r.read_bytes()
            else:
                reply = self._resign(Path(tmp), r)
            if self._first is None and self.mode != "reject":
                self._first = reply
            return 200, "application/timestamp-reply", reply

    def _resign(self, tmp: Path, reply: Path) -> bytes:
        """OpenSSL's TSTInfo signed again, by ``resign_with``'s certificate (``openssl cms``)."""
        assert self.resign_with is not None
        token, info, signed = tmp / "token.der", tmp / "tstinfo.der", tmp / "signed.der"
        _openssl("ts", "-reply", "-in", reply, "-token_out", "-out", token)
        _openssl("cms", "-verify", "-noverify", "-inform", "DER", "-in", token, "-out", info)
        _openssl(
            "cms", "-sign", "-binary", "-nodetach", "-nosmimecap", "-md", "sha256",
            "-econtent_type", "id-smime-ct-TSTInfo",
            "-signer", self.pki.pem(self.resign_with), "-inkey", self.pki.key(self.resign_with),
            "-certfile", self.pki.pem("chain"), "-outform", "DER", "-in", info, "-out", signed,
        )  # fmt: skip
        return granted(signed.read_bytes())

    def wait_closing(self, seconds: float) -> None:
        self._closing.wait(seconds)

    def close(self) -> None:
        self._closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()  # joins the handler threads
        self._thread.join(10)
        self._dir.cleanup()


class _Server(ThreadingHTTPServer):
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet about a client that went away (one that timed out, as the tests' do)."""
        if not isinstance(sys.exception(), ConnectionError):
            super().handle_error(request, client_address)


def _handler(tsa: LocalTSA) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real TSAs
        timeout = 5  # an idle kept-alive connection ends, so close() can join its thread

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            tsa.queries.append(body)
            tsa.content_types.append(self.headers.get("Content-Type") or "")
            if tsa.mode == "silent":
                tsa.wait_closing(60)
                self.close_connection = True
                return
            if self.headers.get("Content-Type") != "application/timestamp-query":
                status, kind, reply = 415, "text/plain", b"not a timestamp query"
            else:
                try:
                    status, kind, reply = tsa.answer(body)
                except (RuntimeError, subprocess.TimeoutExpired) as exc:  # OpenSSL's own failure
                    tsa.errors.append(str(exc))
                    status, kind, reply = 500, "text/plain", str(exc).encode()
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

    return Handler


@contextmanager
def local_tsa(pki: Pki, **kw: Any) -> Iterator[LocalTSA]:
    """A :class:`LocalTSA` for the ``with`` block, closed after it."""
    tsa = LocalTSA(pki, **kw)
    try:
        yield tsa
    finally:
        tsa.close()
