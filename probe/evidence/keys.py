"""The probe's pseudonymous device key: Ed25519, made once, private to the volunteer's user.

Contract: a device is its key pair and nothing else: no name, address or account is ever tied
to it. A database's key lives beside it, ``probe.db.key`` for ``probe.db`` (:func:`key_path`,
from ``probe.config.files``): the database is the probe's state, so the key follows it into
the systemd service's StateDirectory, and ``probe wipe`` removes it with the database.
:func:`ensure_key` loads the key there, or makes it when there is none (the store does on its
first save, so a probe installed before keys existed gets one too): PKCS#8 PEM, unencrypted,
in a 0600 file in a 0700 folder, never written through a symbolic link and never replaced once
made (two processes making one at once end up with the same key). The public key, raw 32 bytes
in base64url without padding (:attr:`DeviceKey.public`), identifies the device
(``device_key``). :func:`verify` checks a signature against such a public key text and never
raises for a bad signature or key text. A key file that cannot be read or is not an Ed25519
key raises :class:`StoreError` naming it.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from probe.config.files import key_path, open_private, private_folder, refuse_link, temp_beside
from probe.errors import StoreError
from probe.words import N_

__all__ = ["DeviceKey", "b64url", "ensure_key", "from_b64url", "key_path", "load_key", "verify"]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def from_b64url(text: str) -> bytes:
    """Base64url without padding back to bytes; raises ValueError for anything else."""
    if not text or any(c not in _B64URL for c in text):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError(str(exc)) from None


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True, slots=True)
class DeviceKey:
    """A device's private key and its public key text."""

    private: Ed25519PrivateKey
    public: str

    @classmethod
    def of(cls, private: Ed25519PrivateKey) -> DeviceKey:
        raw = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return cls(private, b64url(raw))

    @classmethod
    def generate(cls) -> DeviceKey:
        return cls.of(Ed25519PrivateKey.generate())

    def sign(self, data: bytes) -> str:
        """The Ed25519 signature of ``data``, base64url without padding."""
        return b64url(self.private.sign(data))

    def pem(self) -> bytes:
        return self.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def verify(public: str, data: bytes, signature: str) -> bool:
    """Is ``signature`` (base64url) the signature of ``data`` by the key ``public``?"""
    try:
        key = Ed25519PublicKey.from_public_bytes(from_b64url(public))
        key.verify(from_b64url(signature), data)
    except (ValueError, InvalidSignature):
        return False
    return True


def load_key(path: str | Path) -> DeviceKey:
    """The key in ``path``; :class:`StoreError` naming the file when it cannot be used."""
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if p.is_symlink():
            raise refuse_link(p) from None
        raise StoreError(
            N_("{path}: cannot read the device key ({cause})"), path=p, cause=exc.strerror
        ) from None
    with os.fdopen(fd, "rb") as f:
        data = f.read()
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        private = None
    if not isinstance(private, Ed25519PrivateKey):
        raise StoreError(N_("{path}: not an Ed25519 device key"), path=p)
    return DeviceKey.of(private)


def ensure_key(path: str | Path) -> DeviceKey:
    """The key in ``path``, made first when there is none (see the contract)."""
    p = Path(path)
    if p.exists() or p.is_symlink():
        return load_key(p)
    key = DeviceKey.generate()
    try:
        private_folder(p.parent)
        fd, tmp = temp_beside(p)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(key.pem())
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, p)  # never over a key another process made meanwhile
            except FileExistsError:
                return load_key(p)
        finally:
            tmp.unlink(missing_ok=True)
        os.close(open_private(p, os.O_RDONLY))  # refuses a link, keeps 0600
    except OSError as exc:
        raise StoreError(
            N_("{path}: cannot make the device key ({cause})"), path=p, cause=exc.strerror or exc
        ) from None
    return key
