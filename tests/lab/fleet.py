"""The fleet road in the censorship lab (issue 23): the collective's S3 store, reachable from the
probes' namespace through one door and nowhere else.

The store is SeaweedFS as the loopback tests run it (:mod:`tests.servers.s3`: in the root
namespace, bound to 127.0.0.1, stopped and started on the same ports and data). The lab reaches
it through a :class:`Door`: a socket listening at one lab address inside the lab's servers
namespace (made there with ``setns``, then handed back to this process, in the root namespace),
whose connections this process relays to the store's loopback port. No namespace of the lab
gains a route: the probes reach the store's address through the ISP, as they reach the sites,
and nothing else of the root namespace.

    client (daemons) --veth-- isp --veth-- servers: STORE:80 (a door) ~~ root: 127.0.0.1 (weed)
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
from collections.abc import Iterator

from tests.lab import sh
from tests.servers.s3 import TCPServer, pump

STORE, STALL = "10.77.1.90", "10.77.1.91"  # the store's door; a door to a relay that stalls
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextlib.contextmanager
def inside(ns: str) -> Iterator[None]:
    """This thread in network namespace ``ns`` (sockets made meanwhile stay there), then back."""
    here = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        there = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        try:
            _setns(there)
            try:
                yield
            finally:
                _setns(here)
        finally:
            os.close(there)
    finally:
        os.close(here)


class Door(TCPServer):
    """``addr``:``port`` in namespace ``ns`` (the address added to its ``s0`` if missing), each
    connection relayed to 127.0.0.1:``upstream`` here; one refused upstream closes the client's
    connection. :meth:`close` shuts it (the address then refuses connections) and ends every
    thread and socket."""

    def __init__(self, ns: str, addr: str, port: int, upstream: int) -> None:
        if f" {addr}/32 " not in sh("ip", "-o", "addr", "show", "dev", "s0", ns=ns).stdout:
            sh("ip", "addr", "add", f"{addr}/32", "dev", "s0", ns=ns)
        self.upstream = upstream
        with inside(ns):
            sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((addr, port))
        sock.listen(16)
        super().__init__(sock)

    def _serve(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(("127.0.0.1", self.upstream), timeout=5)
        except OSError:
            client.close()
            return
        server.settimeout(None)
        self._socks.append(server)
        self._spawn(pump, server, client)
        pump(client, server)
