"""The middlebox's own process, run in the ISP namespace: it terminates redirected connections.

Connections that the middlebox REDIRECTs here (see ``EOF_RULES``) get their first bytes read
(the request or the ClientHello) and are then closed cleanly: the client sees a FIN where the
site's answer should be, as with censors that end a connection instead of resetting it.
"""

from __future__ import annotations

import sys
import threading

from tests import servers as S


def main(http_port: int, tls_port: int) -> None:
    S.TCPServer("eof", "0.0.0.0", http_port)
    S.TCPServer("eof", "0.0.0.0", tls_port)
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
