"""The test helper's QUIC listener: the far end of the probe's SNI A/B over QUIC (issue 24).

Contract: :func:`listen` serves QUIC v1 (ALPN ``h3``) on the helper's own address and port,
over UDP beside its HTTPS listener, with the helper's certificate, and completes the handshake
whatever server name the client asks for: it has nothing to serve but the handshake. A probe
handshakes with it twice, unverified, once naming the site and once a neutral name
(:func:`probe.measure.quic.helper_ab`): a censor reading names in Initial packets lets the
neutral one through and drops the other, though the helper's address is nobody's blocklist.
"""

from __future__ import annotations

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import QuicServer, serve
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import QuicEvent


class _HandshakeOnly(QuicConnectionProtocol):
    """A connection that only handshakes: a client's streams are read and dropped (aioquic's
    default would open a reader and writer per stream, for nobody)."""

    def quic_event_received(self, event: QuicEvent) -> None:
        pass


async def listen(host: str, port: int, cert: str, key: str) -> QuicServer:
    """The listener, bound (the caller closes it)."""
    config = QuicConfiguration(is_client=False, alpn_protocols=["h3"])
    config.load_cert_chain(cert, key)
    return await serve(host, port, configuration=config, create_protocol=_HandshakeOnly)
