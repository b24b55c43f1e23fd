"""One STUN binding request (RFC 8489), standard library only: how the lab checks that its STUN
server answers and which address it saw. Not the probe's STUN client (``probe.measure``).

    ip netns exec NS python -m tests.lab.stun HOST:PORT   # prints the mapped address, or
                                                          # "no answer" and exits 1
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
import sys

MAGIC = 0x2112A442
BINDING_REQUEST, BINDING_SUCCESS = 0x0001, 0x0101
XOR_MAPPED_ADDRESS = 0x0020


def binding(host: str, port: int, timeout: float = 2.0) -> tuple[str, int] | None:
    """The (address, port) the server saw us come from; None when it did not answer."""
    tid = os.urandom(12)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(struct.pack("!HHI", BINDING_REQUEST, 0, MAGIC) + tid, (host, port))
        try:
            data, _ = s.recvfrom(2048)
        except OSError:  # a timeout, or ICMP port unreachable
            return None
    kind, length, magic = struct.unpack("!HHI", data[:8])
    if kind != BINDING_SUCCESS or magic != MAGIC or data[8:20] != tid:
        return None
    at = 20
    while at + 4 <= 20 + length:
        attr, size = struct.unpack("!HH", data[at : at + 4])
        value = data[at + 4 : at + 4 + size]
        if attr == XOR_MAPPED_ADDRESS and value[1] == 0x01:  # IPv4
            xport = struct.unpack("!H", value[2:4])[0] ^ (MAGIC >> 16)
            xaddr = struct.unpack("!I", value[4:8])[0] ^ MAGIC
            return str(ipaddress.IPv4Address(xaddr)), xport
        at += 4 + size + (-size % 4)
    return None


def main(server: str) -> int:
    host, _, port = server.rpartition(":")
    mapped = binding(host, int(port))
    print(f"{mapped[0]}:{mapped[1]}" if mapped else "no answer")
    return 0 if mapped else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
