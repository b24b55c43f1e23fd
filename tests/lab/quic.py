"""The lab's HTTP/3 part (issue 24): QUIC sites, UDP interference and a censor reading QUIC
Initial packets.

    ip netns exec SERVERS python -m tests.lab.quic serve CONFIG.json
    ip netns exec ISP python -m tests.lab.quic relay LISTEN PORT UPSTREAM BLOCKED-NAME

Every site in :data:`SITES` serves its page over HTTPS (TCP 443, advertising ``Alt-Svc:
h3=":443"``) and HTTP/3 (UDP 443, aioquic: tests/servers/h3.py) on its own address in the
servers namespace. The ISP (:func:`interfere`, scoped to the subscriber's address) drops UDP/443
to ``h3drop``, rejects it for ``h3reject`` (ICMP port unreachable) and DNATs UDP/443 for
``h3sni`` to :func:`relay`, its userspace censor in the ISP namespace, which decrypts each
flow's Initial packets (their keys are public: RFC 9001 5.2) and drops the flows that name
``h3sni.lab`` or ``h3snidrop.lab`` while other names pass; the same censor stands in front of
the test helper's QUIC listener (UDP/443 on its address), so the SNI A/B against the helper
meets it too. ``h3snidrop``'s UDP/443 is also dropped by address: only the A/B against the
helper can tell its name is filtered. :func:`udp_throttled` shapes UDP from ``h3slow`` (tc htb
on the ISP's client-facing link) while its TCP keeps full speed; its object ``/tp``
(:func:`throughput_targets`) is the throughput test's, fetched over TCP and HTTP/3 at once.
``h3ok`` meets nothing. The lab (tests/lab/__init__.py) gives the names to its resolvers and
certificate, binds the addresses, and calls :func:`start` and :func:`interfere`.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.lab import Lab

H3OK, H3DROP, H3REJECT, H3SLOW, H3SNI, H3SNIDROP = (f"10.77.1.{i}" for i in range(140, 146))
SITES = {
    "h3ok": H3OK,
    "h3drop": H3DROP,
    "h3reject": H3REJECT,
    "h3slow": H3SLOW,
    "h3sni": H3SNI,
    "h3snidrop": H3SNIDROP,  # UDP/443 dropped by address, and its name filtered too
}
ADDRS = list(SITES.values())
RELAY_PORT = 4443  # the censor's relay, on the ISP's client-facing address
HELPER_RELAY_PORT = 4444  # the same censor in front of the test helper's QUIC listener
BLOCKED_NAMES = "h3sni.lab,h3snidrop.lab"
SLOW_RATE = "2mbit"
PAGE = (
    b"<!doctype html><html><head><title>Tin Tuc HTTP/3</title></head><body>"
    + b"<p>Reporting over QUIC.</p>" * 100
    + b"</body></html>"
)
# h3slow's page: large enough for HTTP/3's rate to be compared with TCP's (probe.classify.quic)
BIG_PAGE = b"<html><head><title>Big HTTP/3 page</title></head><body>" + b"q" * (256 * 1024)
# h3slow's throughput object (/tp), over TCP and HTTP/3: the same object beside each other
OBJECT = b"o" * (4 * 1024 * 1024)


def rules(subscriber: str, relay_host: str) -> tuple[list[str], list[str]]:
    """(filter FORWARD rules, nat PREROUTING rules) of the ISP's QUIC interference."""
    from tests.lab import HELPER

    filters = [
        f"-s {subscriber} -d {H3DROP} -p udp --dport 443 -j DROP",
        f"-s {subscriber} -d {H3SNIDROP} -p udp --dport 443 -j DROP",
        f"-s {subscriber} -d {H3REJECT} -p udp --dport 443 "
        "-j REJECT --reject-with icmp-port-unreachable",
    ]
    nat = [
        f"-s {subscriber} -d {H3SNI} -p udp --dport 443 "
        f"-j DNAT --to-destination {relay_host}:{RELAY_PORT}",
        f"-s {subscriber} -d {HELPER} -p udp --dport 443 "
        f"-j DNAT --to-destination {relay_host}:{HELPER_RELAY_PORT}",
    ]
    return filters, nat


def start(lab: Lab) -> None:
    """The QUIC sites (servers namespace) and the censor's relay (ISP namespace), spawned as
    lab processes (killed with the lab); returns once both say ``ready``."""
    from tests.lab import HELPER, ISP_CLIENT_SIDE

    cfg = {"cert": str(lab.tmp / "lab-cert.pem"), "key": str(lab.tmp / "lab-key.pem")}
    path = lab.tmp / "quic.json"
    path.write_text(json.dumps(cfg), encoding="utf-8")
    procs = [
        lab._spawn(lab.servers, sys.executable, "-m", "tests.lab.quic", "serve", str(path)),
        *(
            lab._spawn(
                lab.isp,
                sys.executable,
                "-m",
                "tests.lab.quic",
                "relay",
                ISP_CLIENT_SIDE,
                str(port),
                upstream,
                BLOCKED_NAMES,
            )
            for port, upstream in ((RELAY_PORT, H3SNI), (HELPER_RELAY_PORT, HELPER))
        ),
    ]
    for proc in procs:
        assert proc.stdout is not None
        if b"ready" not in proc.stdout.readline():
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"lab process {proc.args} did not start: {err[-500:]}")


def interfere(lab: Lab) -> None:
    from tests.lab import ISP_CLIENT_SIDE, sh

    filters, nat = rules(lab.subscriber, ISP_CLIENT_SIDE)
    for rule in filters:
        sh("sh", "-c", f"iptables -A FORWARD {rule}", ns=lab.isp)
    for rule in nat:
        sh("sh", "-c", f"iptables -t nat -A PREROUTING {rule}", ns=lab.isp)


@contextlib.contextmanager
def udp_throttled(lab: Lab, rate: str = SLOW_RATE, address: str = H3SLOW) -> Iterator[None]:
    """UDP from ``address`` to the client shaped to ``rate`` (htb on the ISP's client-facing
    link, a u32 filter on the source address and protocol 17); its TCP untouched."""
    from tests.lab import _queue_packets, sh

    def tc(cmd: str) -> None:
        sh("tc", *cmd.split(), ns=lab.isp)

    tc("qdisc add dev i0 root handle 1: htb default 10")
    tc("class add dev i0 parent 1: classid 1:10 htb rate 10gbit")
    tc(f"class add dev i0 parent 1: classid 1:30 htb rate {rate} ceil {rate} burst 4k cburst 4k")
    tc(f"qdisc add dev i0 parent 1:30 handle 30: pfifo limit {_queue_packets(rate)}")
    tc(
        f"filter add dev i0 parent 1: protocol ip prio 1 u32 match ip src {address}/32 "
        "match ip protocol 17 0xff flowid 1:30"
    )
    try:
        yield
    finally:
        sh("tc", "qdisc", "del", "dev", "i0", "root", ns=lab.isp, check=False)


def targets(domain: str = "lab") -> dict[str, str]:
    return {name: f"https://{name}.{domain}/" for name in SITES}


def throughput_targets(domain: str = "lab") -> dict[str, Any]:
    """:func:`targets`, with h3slow's object pinned for a throughput test (the others offer
    none: their tests are skipped for that, at no cost)."""
    out: dict[str, Any] = dict(targets(domain))
    out["h3slow"] = {"url": out["h3slow"], "throughput_url": f"https://h3slow.{domain}/tp"}
    return out


# The throughput test's plan in the lab: three trials of four seconds give HTTP/3's shaped
# flows enough 1-second rates for a significant difference after the round's correction.
THROUGHPUT_ARGS = (
    "--throughput-seconds", "4", "--throughput-trials", "3", "--throughput-bytes", "4MiB",
)  # fmt: skip


# -- the processes -----------------------------------------------------------------------------
def serve(config: Path) -> None:
    from tests import servers as S
    from tests.servers.h3 import H3Server, with_alt_svc

    cfg: dict[str, Any] = json.loads(config.read_text(encoding="utf-8"))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cfg["cert"], cfg["key"])
    keep: list[Any] = []
    for name, ip in SITES.items():
        body = BIG_PAGE if ip == H3SLOW else PAGE
        routes: dict[str, Any] = {"/": (200, {"Content-Type": "text/html", "X-Site": name}, body)}
        if ip == H3SLOW:
            routes["/tp"] = (200, {"Content-Type": "application/octet-stream"}, OBJECT)
        site = S.Site(routes)
        keep.append(S.WebServer(with_alt_svc(site, 443), ip, 443, ctx))
        keep.append(H3Server(site, ip, (cfg["cert"], cfg["key"]), 443))
    print("ready", flush=True)
    threading.Event().wait()


def relay(listen: str, port: int, upstream: str, blocked: str) -> None:
    from tests.servers.h3 import SNIFilter

    SNIFilter(listen, (upstream, 443), set(blocked.split(",")), port)
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(Path(sys.argv[2]))
    elif sys.argv[1] == "relay":
        relay(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
