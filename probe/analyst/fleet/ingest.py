"""``probe fleet ingest``: new batches from a bucket or a folder, checked, into the dataset.

Contract: :func:`ingest` reads every batch object (``*.pbatch``) of ``source`` not read
before (the dataset's manifest names each object read, so a second run reads only new ones,
and a run cut short goes on where it stopped), opens it with the collective's private key
(:func:`probe.fleet.batch.open_batch`: the seal, the signature, the size), and adds its records
to the dataset (:meth:`probe.analyst.fleet.dataset.Dataset.add`: each validated as ``probe
merge`` validates, its record hash and chain link checked, de-duplicated). A batch refused is
listed in the manifest's ``rejected`` with its reason: one of ``open_batch``'s (bad signature,
wrong key, truncated, oversized, damaged, not a batch), or ``replayed`` (its content, under
another object name, was ingested before), and nothing else of the run is lost; a truncated
one is read again by the next run (a file still being copied into a folder), any other
refusal is final. A source is a
folder (read recursively) or ``s3://BUCKET[/PREFIX]`` on an S3-compatible store (``endpoint``,
and the keys from ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``; read with the MinIO SDK,
the client the probes upload with). The chains are reported per device: gaps (seq numbers, and
batches named as ``prev`` but never seen), forks (a seq or a ``prev`` claimed twice) and links
that do not hold. :func:`keygen` writes the collective's X25519 key pair; :func:`publish`
mirrors the dataset's files to a bucket, where ClickHouse's ``s3()`` or Spark read them.
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from probe.analyst.fleet.dataset import Dataset, FleetError
from probe.fleet import batch
from probe.words import N_

MAX_BATCH = 64 * 1024 * 1024  # a batch object larger than this is refused unread
REPLAYED = "replayed"


class Source(Protocol):
    """Where batch objects are: their names and sizes, and their bytes."""

    where: str

    def objects(self) -> Iterator[tuple[str, int]]: ...

    def read(self, name: str, max_bytes: int) -> bytes: ...


@dataclass
class FolderSource:
    root: Path
    where: str = ""

    def objects(self) -> Iterator[tuple[str, int]]:
        found = []
        for path in self.root.rglob(f"*{batch.SUFFIX}"):
            st = path.lstat()
            if stat.S_ISREG(st.st_mode):
                found.append((st.st_mtime_ns, path.relative_to(self.root).as_posix(), st.st_size))
        for _, name, size in sorted(found):  # as they arrived: a device's chain in its order
            yield name, size

    def read(self, name: str, max_bytes: int) -> bytes:
        with open(self.root / name, "rb") as f:
            return f.read(max_bytes + 1)


@dataclass
class S3Source:
    client: Any
    bucket: str
    prefix: str
    where: str = ""

    def objects(self) -> Iterator[tuple[str, int]]:
        try:
            found = self.client.list_objects(
                self.bucket, prefix=self.prefix or None, recursive=True
            )
            names = sorted((o.last_modified, o.object_name, int(o.size or 0)) for o in found)
        except Exception as exc:  # the SDK's and urllib3's, all said the same way
            raise self._failed(exc) from None
        for _, name, size in names:  # as they arrived: a device's chain in its order
            if name.endswith(batch.SUFFIX):
                yield name, size

    def read(self, name: str, max_bytes: int) -> bytes:
        try:
            response = self.client.get_object(self.bucket, name, length=max_bytes + 1)
            try:
                return bytes(response.read())
            finally:
                response.close()
                response.release_conn()
        except Exception as exc:  # the SDK's and urllib3's, all said the same way
            raise self._failed(exc) from None

    def _failed(self, exc: Exception) -> FleetError:
        """A store that does not answer or refuses: one line; what was ingested stays, the
        next run goes on from there."""
        problem = getattr(exc, "code", None) or type(exc).__name__
        return FleetError(
            N_("{source}: the store did not give the batches ({problem})"),
            source=self.where,
            problem=problem,
        )


def open_source(source: str, *, endpoint: str | None = None) -> Source:
    """A folder, or ``s3://BUCKET/PREFIX`` at ``endpoint``; one line naming it when unusable."""
    if source.startswith("s3://"):
        bucket, _, prefix = source[5:].partition("/")
        if not bucket:
            raise FleetError(N_("{source}: no bucket named"), source=source)
        if not endpoint:
            raise FleetError(N_("{source}: an S3 source needs --endpoint URL"), source=source)
        from urllib.parse import urlsplit

        from minio import Minio

        url = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        if not url.netloc:
            raise FleetError(N_("--endpoint: {value} is not a URL"), value=endpoint)
        client = Minio(
            url.netloc,
            access_key=os.environ.get("AWS_ACCESS_KEY_ID"),
            secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
            secure=url.scheme == "https",
            # Named, so that the SDK never asks the bucket's location (a narrow key may not).
            region=os.environ.get("AWS_REGION") or "us-east-1",
        )
        return S3Source(client, bucket, prefix, where=source)
    root = Path(source)
    if not root.is_dir():
        raise FleetError(N_("{source}: no such folder (or s3://BUCKET/PREFIX)"), source=source)
    return FolderSource(root, where=source)


@dataclass
class Report:
    """What one run did, and what the dataset's chains look like after it."""

    batches: int = 0
    skipped: int = 0  # read by an earlier run
    added: int = 0
    seen: int = 0
    quarantined: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    compacted: int = 0
    devices: dict[str, list[str]] = field(default_factory=dict)  # device -> its chain's problems

    def lines(self, source: str, dataset: str, totals: dict[str, int]) -> list[str]:
        rejected = sum(self.rejected.values())
        why = ", ".join(f"{n} {r}" for r, n in sorted(self.rejected.items()))
        out = [
            f"{source}: {self.batches} batches ingested ({self.skipped} read before), "
            f"{self.added} measurements added, {self.seen} already there, "
            f"{self.quarantined} quarantined, {rejected} batches rejected"
            + (f" ({why})" if why else "")
        ]
        for device, problems in sorted(self.devices.items()):
            out.extend(f"device {device}: {p}" for p in problems)
        out.append(
            f"{dataset}: {totals['measurements']} measurements from {totals['devices']} devices, "
            f"{totals['batches']} batches"
        )
        return out


def ingest(
    source: Source,
    dataset: Dataset,
    *,
    collective_private_key: str,
    max_bytes: int = MAX_BATCH,
    compact: bool = True,
) -> Report:
    """Every new batch of ``source`` into ``dataset`` (see the contract)."""
    report = Report()
    done = {str(n) for (n,) in dataset.con.execute("SELECT name FROM batches")}
    # A truncated object is read again next time: a folder's file may have been half-copied
    # (a bucket's objects appear whole); any other refusal is final for that object.
    done |= {
        str(n)
        for (n,) in dataset.con.execute(
            "SELECT name FROM rejected WHERE reason != ?", [batch.TRUNCATED]
        )
    }
    for name, size in source.objects():
        if name in done:
            report.skipped += 1
            continue
        if size > max_bytes:
            _reject(dataset, report, name, None, batch.OVERSIZED)
            continue
        opened = batch.open_batch(
            source.read(name, max_bytes), collective_private_key=collective_private_key,
            max_bytes=max_bytes,
        )  # fmt: skip
        if isinstance(opened, batch.Rejected):
            _reject(dataset, report, name, None, opened.reason)
            continue
        if dataset.has_batch(opened.digest):
            _reject(dataset, report, name, opened.digest, REPLAYED)
            continue
        added = dataset.add(
            opened.digest,
            opened.records,
            device_key=opened.device_key,
            prev=opened.prev,
            name=name,
            bodies=opened.bodies,
            heads=opened.heads,
        )
        report.batches += 1
        report.added += added.added
        report.seen += added.seen
        report.quarantined += added.quarantined
    if compact:
        report.compacted = dataset.compact()
    report.devices = chain_problems(dataset)
    return report


def _reject(dataset: Dataset, report: Report, name: str, digest: str | None, reason: str) -> None:
    dataset.reject(name, digest, reason)
    report.rejected[reason] += 1


def chain_problems(dataset: Dataset) -> dict[str, list[str]]:
    """Per device, the problems of its chain as the dataset holds it."""
    out: dict[str, list[str]] = {}
    for key, first, last in dataset.gaps():
        span = f"seq {first}" if first == last else f"seq {first} to {last}"
        out.setdefault(key, []).append(f"gap: {span} missing")
    for key, prev in dataset.batch_gaps():
        out.setdefault(key, []).append(f"gap: batch {prev} named as previous, never seen")
    for key, prev, n in dataset.batch_forks():
        out.setdefault(key, []).append(f"fork: {n} batches follow batch {prev}")
    for key, rid, why in dataset.forks():
        out.setdefault(key, []).append(f"{why} (measurement {rid} refused)")
    for key, rid, why in dataset.broken_links():
        out.setdefault(key, []).append(f"{why} (measurement {rid} refused)")
    return out


def keygen(private_path: str | Path) -> str:
    """Write a new collective key pair: the private key to ``private_path`` (mode 0600,
    never over an existing file) and the public one beside it (``.pub``); returns the public
    key text."""
    path = Path(private_path)
    private, public = batch.collective_keypair()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise FleetError(
            N_("{path}: already exists (a key is never overwritten)"), path=path
        ) from None
    except OSError as exc:
        raise FleetError(N_("{path}: cannot write ({problem})"), path=path, problem=exc) from None
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(private + "\n")
    Path(f"{path}.pub").write_text(public + "\n", encoding="ascii")
    return public


def load_private_key(path: str | Path) -> str:
    """The collective's private key text from its file; one line naming it when unusable."""
    try:
        text = Path(path).read_text(encoding="ascii").strip()
        batch.public_of(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise FleetError(N_("{path}: not a collective private key ({problem})"), path=path,
                         problem=exc) from None  # fmt: skip
    return text


def publish(dataset: Dataset, target: str, *, endpoint: str | None) -> tuple[int, int]:
    """Mirror the dataset's Parquet files to ``s3://BUCKET/PREFIX`` (the same layout, so
    ClickHouse's ``s3()``, Spark's ``s3a://`` and DuckDB's httpfs read it there): files the
    bucket lacks (or holds at another size) are put, then objects the dataset no longer has
    (joined by a compaction) are removed. Returns (put, removed). The manifest stays with the
    collective. A reader listing the bucket between the two steps may see a compaction's input
    files beside its output: run queries on the mirror after the run."""
    source = open_source(target, endpoint=endpoint)
    if not isinstance(source, S3Source):
        raise FleetError(N_("--publish: {target} is not s3://BUCKET/PREFIX"), target=target)
    client, bucket = source.client, source.bucket
    prefix = source.prefix.strip("/")
    local = {
        p.relative_to(dataset.root).as_posix(): p
        for table in ("measurements", "bodies", "heads")
        for p in (dataset.root / table).rglob("*.parquet")
    }
    base = f"{prefix}/" if prefix else ""
    try:
        held = {
            o.object_name[len(base) :]: int(o.size or 0)
            for table in ("measurements", "bodies", "heads")
            for o in client.list_objects(bucket, prefix=f"{base}{table}/", recursive=True)
            if o.object_name.endswith(".parquet")
        }
        put = 0
        for rel, path in sorted(local.items()):
            if held.get(rel) != path.stat().st_size:
                client.fput_object(bucket, f"{base}{rel}", str(path))
                put += 1
        gone = sorted(set(held) - set(local))
        for rel in gone:
            client.remove_object(bucket, f"{base}{rel}")
    except Exception as exc:  # the SDK's and urllib3's, all said the same way
        problem = getattr(exc, "code", None) or type(exc).__name__
        raise FleetError(
            N_("{target}: the dataset could not be published ({problem})"),
            target=target,
            problem=problem,
        ) from None
    return put, len(gone)
