"""The one seam where a batch touches the object store: a PUT signed with the volunteer's
write-only credentials, or a POST under a policy the collective pre-signed, optionally through
a proxy (SOCKS5, e.g. Tor).

Contract: :class:`Destination` says where and how (:func:`destination` builds it from the
settings); :meth:`Destination.put` sends one object and returns None when the store
acknowledged it (a 2xx answer), else the failure as a df-007 string (``probe.failures``; an
answer that is not 2xx is ``http_request_failed``): a network failure is a result, never an
exception. Nothing here reads from the bucket: write-only credentials can neither list nor
read, and a content-addressed key makes a second PUT of the same batch the same object, so an
upload never asks whether it was done before. Redirects are not followed, and urllib3's own
retries are off: the outbox retries, on its schedule.

``bucket_url`` is ``http(s)://HOST[:PORT]/BUCKET[/PREFIX]`` (path-style, which every
S3-compatible store serves: AWS S3, MinIO, Garage, SeaweedFS, Ceph). Pre-signed: the collective
signs an S3 POST policy (:func:`presign`, run on its side with its credentials) confining one
device to ``batches/<device_key>/`` for a time and a size range; the probe holds that policy's
form fields in a JSON file (``{"url": ..., "fields": {...}}``) and never a secret that writes
elsewhere. A PUT URL cannot be pre-signed for a key that does not exist yet (a batch's key is
its digest), which is why it is a POST policy.

Proxy: ``socks5h://HOST:PORT`` (the proxy resolves names: with Tor, the ISP sees neither the
bucket's name nor its address), ``socks5://`` (names resolved here), or ``http(s)://`` (a
CONNECT proxy); PySocks carries SOCKS through urllib3's ``SOCKSProxyManager``.

Why the MinIO SDK: it is pure Python itself (about 1 MB) on urllib3, which the probe has anyway;
its C dependencies (pycryptodome, argon2-cffi-bindings) have aarch64 wheels, like all of the
probe's (``scripts/arm64-wheels``; checked with pip download). Installed with its dependencies
it takes 22 MB against boto3's 38 MB, and imports in 0.3 s with 31 MB resident (boto3: 0.7 s and
63 MB; measured on this machine). It signs SigV4 for any S3-compatible store without asking
the bucket's region (a write-only key may not ask), and takes our own urllib3 pool, which is
how SOCKS gets in. boto3/botocore carry every AWS service's model and have no SOCKS proxy;
obstore (Rust) is light (16 MB installed, 0.05 s,
16 MB resident) and has aarch64 and armv7 wheels, but none for armv6 (Pi Zero, Pi 1), and its
proxy option refuses SOCKS (obstore 0.12.1 against our SOCKS5 server: "unsupported scheme
socks5h").
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import urllib3

from probe import failures
from probe.errors import SettingsError
from probe.words import N_

TIMEOUT = 60.0
# Request line, headers (SigV4's among them) and the answer: what a PUT costs beyond its body.
OVERHEAD = 1200


@dataclass(frozen=True, slots=True)
class Bucket:
    """``http(s)://HOST[:PORT]/BUCKET[/PREFIX]`` taken apart."""

    secure: bool
    host: str  # HOST[:PORT]
    bucket: str
    prefix: str  # "" or "some/prefix/"

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self.host}"


_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def parse_bucket_url(text: str) -> Bucket:
    """The parts of a bucket URL; ValueError naming what is wrong."""
    u = urlsplit(text.strip())
    if u.scheme not in ("http", "https") or not u.netloc or u.query or u.fragment:
        raise ValueError(f"{text!r} is not http(s)://HOST[:PORT]/BUCKET[/PREFIX]")
    if "@" in u.netloc:
        raise ValueError("credentials do not belong in the bucket URL")
    parts = [p for p in u.path.split("/") if p]
    if not parts:
        raise ValueError(f"{text!r} names no bucket")
    if not _BUCKET_NAME.fullmatch(parts[0]):
        raise ValueError(f"{parts[0]!r} is not an S3 bucket name (3-63 of a-z 0-9 . -)")
    prefix = "/".join(parts[1:])
    return Bucket(u.scheme == "https", u.netloc, parts[0], prefix + "/" if prefix else "")


def pool(proxy: str | None, *, ca_bundle: str | None = None) -> urllib3.PoolManager:
    """The HTTP connection pool every request goes through: direct, or through ``proxy``."""
    kwargs: dict[str, Any] = {
        "timeout": urllib3.Timeout(connect=30.0, read=TIMEOUT),
        "retries": False,
    }
    if ca_bundle:
        kwargs["ca_certs"] = ca_bundle
    if proxy is None:
        return urllib3.PoolManager(**kwargs)
    scheme = urlsplit(proxy).scheme
    if scheme in ("socks5", "socks5h", "socks4", "socks4a"):
        from urllib3.contrib.socks import SOCKSProxyManager

        return SOCKSProxyManager(proxy, **kwargs)
    return urllib3.ProxyManager(proxy, **kwargs)


@dataclass(frozen=True)
class Destination:
    """Where batches go, and the one way they are sent."""

    bucket: Bucket
    access_key: str | None = None
    secret_key: str | None = None
    policy: dict[str, Any] | None = None  # {"url", "fields"} of a pre-signed POST policy
    region: str = "us-east-1"
    proxy: str | None = None
    http: urllib3.PoolManager = field(default_factory=lambda: pool(None))

    def full_key(self, key: str) -> str:
        return self.bucket.prefix + key

    def put(self, key: str, data: bytes) -> str | None:
        """Send one object: None once the store acknowledged it, else the failure."""
        try:
            status = self._post(key, data) if self.policy is not None else self._put(key, data)
        except (urllib3.exceptions.HTTPError, OSError) as exc:  # the transport's, and only
            return failures.classify(exc, failures.OP_HTTP).failure
        return None if 200 <= status < 300 else failures.HTTP_REQUEST_FAILED

    def _put(self, key: str, data: bytes) -> int:
        from minio import Minio
        from minio.error import InvalidResponseError, S3Error, ServerError

        client = Minio(
            self.bucket.host,
            access_key=self.access_key,
            secret_key=self.secret_key,
            secure=self.bucket.secure,
            region=self.region,
            http_client=self.http,
        )
        try:
            client.put_object(
                self.bucket.bucket,
                self.full_key(key),
                io.BytesIO(data),
                len(data),
                content_type="application/octet-stream",
            )
        except S3Error as exc:  # the store's own refusal (AccessDenied, NoSuchBucket, ...)
            return int(exc.response.status) if exc.response is not None else 400
        except ServerError as exc:  # a 5xx the store could not explain
            return int(exc.status_code)
        except InvalidResponseError:  # an answer that is not S3's (a captive portal, a proxy)
            return 502
        return 200

    def _post(self, key: str, data: bytes) -> int:
        assert self.policy is not None
        fields: dict[str, Any] = dict(self.policy["fields"])
        fields["key"] = self.full_key(key)
        fields["file"] = ("batch", data, "application/octet-stream")
        r = self.http.request("POST", self.policy["url"], fields=fields, redirect=False)
        return int(r.status)


def destination(
    bucket_url: str,
    *,
    credentials_file: str | None = None,
    presigned_file: str | None = None,
    region: str = "us-east-1",
    proxy: str | None = None,
    ca_bundle: str | None = None,
) -> Destination:
    """A :class:`Destination` from the settings; :class:`SettingsError` naming the setting or
    file at fault."""
    try:
        bucket = parse_bucket_url(bucket_url)
    except ValueError as exc:
        raise SettingsError(N_("upload_url: {problem}"), problem=str(exc)) from None
    access = secret = None
    policy = None
    if presigned_file:
        policy = _read_json(presigned_file)
        if not isinstance(policy.get("url"), str) or not isinstance(policy.get("fields"), dict):
            raise SettingsError(
                N_("{path}: not a pre-signed POST policy (url and fields)"), path=presigned_file
            )
    elif credentials_file:
        doc = _read_json(credentials_file)
        access, secret = doc.get("access_key"), doc.get("secret_key")
        if not isinstance(access, str) or not isinstance(secret, str):
            raise SettingsError(
                N_("{path}: needs access_key and secret_key (text)"), path=credentials_file
            )
    else:
        raise SettingsError(N_("upload_url: needs upload_credentials or upload_presigned"))
    return Destination(
        bucket, access, secret, policy, region, proxy, pool(proxy, ca_bundle=ca_bundle)
    )


def _read_json(path: str) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(
            N_("{path}: cannot read ({cause})"), path=path, cause=exc.strerror
        ) from None
    except ValueError as exc:
        raise SettingsError(N_("{path}: not JSON ({problem})"), path=path, problem=exc) from None
    if not isinstance(doc, dict):
        raise SettingsError(N_("{path}: not a JSON object"), path=path)
    return doc


def presign(
    bucket_url: str,
    device_key: str,
    *,
    access_key: str,
    secret_key: str,
    days: float = 90,
    max_bytes: int = 64 << 20,
    region: str = "us-east-1",
    now: datetime | None = None,
) -> dict[str, Any]:
    """The collective's side: a POST policy letting one device write under
    ``batches/<device_key>/`` for ``days``, objects up to ``max_bytes``; the JSON the probe's
    ``upload_presigned`` file holds."""
    from minio import Minio
    from minio.datatypes import PostPolicy

    bucket = parse_bucket_url(bucket_url)
    expires = (now or datetime.now(UTC)) + timedelta(days=days)
    policy = PostPolicy(bucket.bucket, expires)
    policy.add_starts_with_condition("key", f"{bucket.prefix}batches/{device_key}/")
    policy.add_content_length_range_condition(1, max_bytes)
    client = Minio(
        bucket.host,
        access_key=access_key,
        secret_key=secret_key,
        secure=bucket.secure,
        region=region,
    )
    fields = client.presigned_post_policy(policy)
    return {"url": f"{bucket.endpoint}/{bucket.bucket}", "fields": fields}
