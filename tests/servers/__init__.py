"""Real loopback servers for the measuring code: DNS, DoH, DoT, HTTP(S), RST, EOF, blackhole.

Every server binds to an address in 127.0.0.0/8 (Linux answers for the whole range on ``lo``),
so a "site" and a "blockpage" can share a port number on different addresses, as they would on
the internet. Nothing here sends a packet anywhere but loopback.

One module per kind (``dns``, ``http``, ``tcp``; ``edge`` for the edges the loopback world of
``tests/world.py`` does not reach); this package offers the first three's names, so a test writes
``from tests import servers as S`` and ``S.WebServer``.
"""

from __future__ import annotations

from tests.servers.dns import DNSServer, DoTServer, Zone, answer, doh_route, recv_exactly
from tests.servers.http import (
    BLOCKPAGE,
    IFRAME_BLOCKPAGE,
    OTHER_PAGE,
    PAGE,
    SITE_HEADERS,
    UNKNOWN_BLOCKPAGE,
    Site,
    WebServer,
    echo,
    echo_forms,
    gzip_bomb,
    large,
    object_head,
    redirect,
)
from tests.servers.tcp import Blackhole, TCPServer, closing_all, free_port

__all__ = [
    "BLOCKPAGE",
    "IFRAME_BLOCKPAGE",
    "OTHER_PAGE",
    "PAGE",
    "SITE_HEADERS",
    "UNKNOWN_BLOCKPAGE",
    "Blackhole",
    "DNSServer",
    "DoTServer",
    "Site",
    "TCPServer",
    "WebServer",
    "Zone",
    "answer",
    "closing_all",
    "doh_route",
    "echo",
    "echo_forms",
    "free_port",
    "gzip_bomb",
    "large",
    "object_head",
    "recv_exactly",
    "redirect",
]
