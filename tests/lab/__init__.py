"""The censorship lab: three network namespaces with real servers and real interference.

    client (the probe) --veth-- isp (middlebox, lying resolver) --veth-- servers (sites, DoH)

``Lab(tmp, nat=True)`` puts a fourth between the first two, the volunteer's home router, which
translates the client's address to a public-looking one (:data:`NAT_PUBLIC`), and adds a STUN
server on the servers' side:

    client (home LAN) --veth-- router (SNAT) --veth-- isp --veth-- servers (+ STUN)

Everything lives in namespaces this module creates; no namespace has a route out of the lab.
:class:`Lab` builds it (as root), applies and removes interference (iptables in the ISP
namespace, tc on its links, the client's link state) and tears everything down: processes,
namespaces, and with them every rule. See ``tests/lab/README.md``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import trustme

from tests.lab import quic as quic_lab
from tests.lab import replica

DOMAIN = "lab"
CLIENT_IP, ISP_CLIENT_SIDE = "10.77.0.2", "10.77.0.1"
ISP_SERVER_SIDE, SERVERS_IP = "10.77.1.1", "10.77.1.2"
NEWS, TLS_PLAIN, TCP_RST, TCP_DROP, INJECTED, CONTROL = (
    "10.77.1.10",
    "10.77.1.11",
    "10.77.1.12",
    "10.77.1.13",
    "10.77.1.14",
    "10.77.1.15",
)
BLOCKPAGE, PROXY, HONEST_DNS, DOH = "10.77.1.20", "10.77.1.60", "10.77.1.53", "10.77.1.54"
THROTTLED, EOF_SITE, TCP_DOWN = "10.77.1.16", "10.77.1.17", "10.77.1.18"
HELPER, HELPER2 = "10.77.1.70", "10.77.1.71"
UNKNOWN_BLOCK, HANG, ECHO = "10.77.1.21", "10.77.1.32", "10.77.1.33"
REPLICA = "10.77.1.120"  # the default targets' front pages, under their real names
# The volunteer's public address when the lab puts a NAT in front of the client (Lab.nat()),
# and the networks the helpers' IP-to-ASN table knows.
PUBLIC_IP = "203.0.113.5"
# The NAT topology (Lab(nat=True)): the probe on a home LAN behind a router that translates
# it to NAT_PUBLIC, a documentation address (ipaddress says it is not global, yet it stands
# for the volunteer's public address here: nothing may treat it as harmless).
HOME_IP, HOME_GW = "192.168.77.2", "192.168.77.1"
NAT_PUBLIC, NAT_ISP_SIDE = "198.51.100.23", "198.51.100.1"
STUN, STUN_PORT = "10.77.1.80", 3478  # coturn, STUN only (UDP), in the servers namespace
MIRROR = "10.77.1.34"  # echoes the address it sees in every form (tests/lab/mirror.py)
ASN_TABLE = (
    "10.77.0.0\t10.77.0.255\t64501\tVN\tLAB-HOME Lab Home Broadband\n"
    "198.51.100.0\t198.51.100.255\t64502\tVN\tLAB-FIBRE Lab Fibre Home\n"
    "203.0.113.0\t203.0.113.255\t64500\tVN\tLAB-MOBILE Lab Mobile Data\n"
)
CDN = [f"10.77.1.{i}" for i in range(100, 110)]  # ten edge addresses serving the news site
SITE_ADDRS = [NEWS, TLS_PLAIN, TCP_RST, TCP_DROP, INJECTED, THROTTLED, EOF_SITE, *CDN]
REPO = Path(__file__).resolve().parent.parent.parent

# The honest zone: what every name really is.
HONEST = {
    "news": NEWS,
    "tlsblocked": NEWS,
    "httpblocked": NEWS,
    "tcprst": TCP_RST,
    "tcpdrop": TCP_DROP,
    "injected": INJECTED,
    "dnsnx": NEWS,
    "dnsblockpage": NEWS,
    "dnsloopback": NEWS,
    "proxied": NEWS,
    "control": CONTROL,
    "xn--bcher-kva": NEWS,
    "ipthrottled": THROTTLED,
    "snithrottled": NEWS,
    "eofinjected": EOF_SITE,
    "tcpdown": TCP_DOWN,
    "unknownblock": NEWS,
    "bigcdn": NEWS,
    "slowcontrol": HANG,
    "echo": ECHO,
    "mirror": MIRROR,
    **quic_lab.SITES,  # the HTTP/3 sites (tests/lab/quic.py)
}
# The ISP resolver's lies ("" means NXDOMAIN).
LIES: dict[str, str | list[str]] = {
    "dnsnx": "",
    "dnsblockpage": BLOCKPAGE,
    "dnsloopback": "127.0.0.1",
    "proxied": PROXY,
    "unknownblock": UNKNOWN_BLOCK,  # a blockpage no fingerprint knows, on a keep-alive server
    "bigcdn": CDN,  # the ISP's resolver sends users to its own CDN's ten edges
    "slowcontrol": NEWS,  # the page loads; the honest address never answers
}
# Interference scoped to traffic from the client (filter FORWARD and nat PREROUTING).
FILTER_RULES = [
    f"-d {TCP_RST} -p tcp -j REJECT --reject-with tcp-reset",
    f"-d {TCP_DROP} -j DROP",
    f"-p tcp --dport 443 -m string --string tlsblocked.{DOMAIN} --algo bm "
    "-j REJECT --reject-with tcp-reset",
    f"-p tcp --dport 80 -m string --string Host:\\ httpblocked.{DOMAIN} --algo bm "
    "-j REJECT --reject-with tcp-reset",
]
NAT_RULES = [
    f"-d {INJECTED} -p tcp --dport 80 -j DNAT --to-destination {BLOCKPAGE}:80",
    f"-d {PROXY} -j DNAT --to-destination {NEWS}",
    # FIN instead of an answer: the middlebox's own process takes these connections.
    f"-d {EOF_SITE} -p tcp --dport 80 -j REDIRECT --to-ports 8080",
    f"-d {EOF_SITE} -p tcp --dport 443 -j REDIRECT --to-ports 8443",
]


def _queue_packets(rate: str) -> int:
    """About three seconds of full-size packets at ``rate`` (e.g. "1mbit", "150kbit"): a
    shaper's queue, deep enough that TCP keeps the slow class busy."""
    units = {"kbit": 1e3, "mbit": 1e6, "gbit": 1e9}
    unit = next(u for u in units if rate.endswith(u))
    bps = float(rate[: -len(unit)]) * units[unit]
    return max(20, int(3 * bps / 12000))


class LabUnavailable(RuntimeError):
    """The machine cannot host the lab (not root, no namespaces, no dnsmasq)."""


def check_available(*, nat: bool = False) -> None:
    if os.geteuid() != 0:
        raise LabUnavailable("lab: needs root (network namespaces, iptables, tc)")
    for tool in ("ip", "iptables", "tc", "dnsmasq", "ethtool", *(["turnserver"] if nat else [])):
        if shutil.which(tool) is None:
            raise LabUnavailable(f"lab: {tool} not found (scripts/check installs it)")
    name = f"plabcheck{os.getpid()}"
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise LabUnavailable(f"lab: network namespaces unavailable ({r.stderr.strip()})")
    subprocess.run(["ip", "netns", "del", name], check=False)


def _veth(a: str, a_ns: str, b: str, b_ns: str) -> None:
    """A veth pair, ``a`` in namespace ``a_ns`` and its peer ``b`` in ``b_ns``."""
    sh("ip", "link", "add", a, "netns", a_ns, "type", "veth", "peer", "name", b, "netns", b_ns)


def add_namespaces(names: Sequence[str]) -> None:
    """Each a new namespace with its loopback up and IPv6 off (nothing of the lab has it)."""
    for ns in names:
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "set", "lo", "up", ns=ns)
        sh("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", ns=ns)


def stop_lab(procs: Sequence[subprocess.Popen[bytes]], namespaces: Sequence[str]) -> None:
    """Kill a lab's processes (each its own process group), then its namespaces, with any
    process still inside one (a probe run cut short)."""
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
    for p in procs:
        with contextlib.suppress(Exception):
            p.wait(5)
            for stream in (p.stdout, p.stderr):
                if stream:
                    stream.close()
    for ns in namespaces:
        for pid in sh("ip", "netns", "pids", ns, check=False).stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        sh("ip", "netns", "del", ns, check=False)


def sh(*args: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [*(["ip", "netns", "exec", ns] if ns else []), *args]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip() or r.stdout.strip()}")
    return r


def cleanup_stale() -> None:
    """Remove namespaces left by a lab whose process died (SIGKILL, power loss)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    for line in out.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if not name.startswith("plab") or name.startswith("plabcheck"):
            continue
        pid = name[4:].split("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            for p in subprocess.run(
                ["ip", "netns", "pids", name], capture_output=True, text=True, check=False
            ).stdout.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(p), signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", name], check=False)


class Lab:
    def __init__(self, tmp: Path, *, nat: bool = False) -> None:
        self.tmp = tmp
        # A NAT lab's namespaces have names of their own, so it can stand beside a plain one
        # (a test comparing the two).
        tag = f"plab{os.getpid()}-{'n' if nat else ''}"
        self.client, self.isp, self.servers = f"{tag}c", f"{tag}isp", f"{tag}srv"
        # The home router (nat=True): the client's own address is then HOME_IP, and the ISP,
        # the servers, the helpers and the STUN server see NAT_PUBLIC instead.
        self.router = f"{tag}rt" if nat else None
        self.client_ip = HOME_IP if nat else CLIENT_IP
        self.subscriber = NAT_PUBLIC if nat else CLIENT_IP  # what the ISP's rules match
        self.stun = f"{STUN}:{STUN_PORT}" if nat else None
        self.procs: list[subprocess.Popen[bytes]] = []
        self.ca_pem = str(tmp / "lab-ca.pem")
        self.resolver = f"{ISP_CLIENT_SIDE}:53"
        self.control_resolver = f"https://{DOH}/dns-query"

    # -- building ------------------------------------------------------------------------
    @property
    def namespaces(self) -> list[str]:
        return [self.client, *([self.router] if self.router else []), self.isp, self.servers]

    def start(self) -> Lab:
        check_available(nat=self.router is not None)
        cleanup_stale()
        try:
            self._namespaces()
            self._certificates()
            self._servers()
            self._resolvers()
            self.interfere()
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _namespaces(self) -> None:
        add_namespaces(self.namespaces)
        links = [(self.isp, "i0"), (self.isp, "i1"), (self.servers, "s0")]
        if self.router:  # client c0 -- r0 router r1 -- i0 isp
            _veth("c0", self.client, "r0", self.router)
            _veth("r1", self.router, "i0", self.isp)
            links += [(self.client, "c0"), (self.router, "r0"), (self.router, "r1")]
        else:
            _veth("c0", self.client, "i0", self.isp)
            links.append((self.client, "c0"))
        _veth("i1", self.isp, "s0", self.servers)
        sh("ip", "addr", "add", f"{self.client_ip}/24", "dev", "c0", ns=self.client)
        sh("ip", "addr", "add", f"{ISP_CLIENT_SIDE}/24", "dev", "i0", ns=self.isp)
        sh("ip", "addr", "add", f"{ISP_SERVER_SIDE}/24", "dev", "i1", ns=self.isp)
        sh("ip", "addr", "add", f"{SERVERS_IP}/24", "dev", "s0", ns=self.servers)
        servers = [*SITE_ADDRS, CONTROL, BLOCKPAGE, HONEST_DNS, DOH, TCP_DOWN, HELPER, HELPER2]
        stun = [STUN] if self.stun else []
        for ip in [*servers, UNKNOWN_BLOCK, HANG, ECHO, MIRROR, REPLICA, *stun, *quic_lab.ADDRS]:
            sh("ip", "addr", "add", f"{ip}/32", "dev", "s0", ns=self.servers)
        for ns, dev in links:
            sh("ip", "link", "set", dev, "up", ns=ns)
        for ns, dev in links:
            # Wire-size packets, as on a real access link: with segmentation offload a veth
            # passes 64 KB super-packets, which makes shaping queues and byte counts coarse.
            sh("ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off", ns=ns)
        sh("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=self.isp)
        self._client_routes()
        sh("ip", "route", "add", "10.77.0.0/24", "via", ISP_SERVER_SIDE, ns=self.servers)
        if self.router:
            self._home_router(self.router)

    def _home_router(self, ns: str) -> None:
        """LAN r0, WAN r1 on the ISP's subscriber network, and a NAT that rewrites every
        connection from the LAN to the WAN address (SNAT, as MASQUERADE would)."""
        sh("ip", "addr", "add", f"{HOME_GW}/24", "dev", "r0", ns=ns)
        sh("ip", "addr", "add", f"{NAT_PUBLIC}/24", "dev", "r1", ns=ns)
        sh("ip", "addr", "add", f"{NAT_ISP_SIDE}/24", "dev", "i0", ns=self.isp)
        sh("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=ns)
        # The lab's networks only (the ISP resolver's and the servers'): no default route.
        sh("ip", "route", "add", "10.77.0.0/16", "via", NAT_ISP_SIDE, ns=ns)
        sh("ip", "route", "add", "198.51.100.0/24", "via", ISP_SERVER_SIDE, ns=self.servers)
        snat = f"-t nat -A POSTROUTING -o r1 -s {HOME_IP} -j SNAT --to-source {NAT_PUBLIC}"
        sh("iptables", *snat.split(), ns=ns)

    def _client_routes(self) -> None:
        # Only the lab's networks: nothing in the client has a route out of the lab.
        if self.router:  # behind the home router: the ISP resolver's network too
            sh("ip", "route", "replace", "10.77.0.0/16", "via", HOME_GW, ns=self.client)
            return
        sh("ip", "route", "replace", "10.77.1.0/24", "via", ISP_CLIENT_SIDE, ns=self.client)

    def _certificates(self) -> None:
        ca = trustme.CA()
        names = [f"{n}.{DOMAIN}" for n in HONEST] + [DOH, HELPER, HELPER2, *replica.all_hosts()]
        leaf = ca.issue_cert(*names)
        ca.cert_pem.write_to_path(self.ca_pem)
        leaf.cert_chain_pems[0].write_to_path(str(self.tmp / "lab-cert.pem"))
        leaf.private_key_pem.write_to_path(str(self.tmp / "lab-key.pem"))

    def _spawn(self, ns: str, *args: str) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(
            ["ip", "netns", "exec", ns, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            cwd=REPO,
        )
        self.procs.append(p)
        return p

    def _servers(self) -> None:
        cfg = {
            "cert": str(self.tmp / "lab-cert.pem"),
            "key": str(self.tmp / "lab-key.pem"),
            "site_addrs": SITE_ADDRS,
            "control_addr": CONTROL,
            "blockpage_addr": BLOCKPAGE,
            "unknown_block_addr": UNKNOWN_BLOCK,
            "hang_addr": HANG,
            "echo_addr": ECHO,
            "mirror_addr": MIRROR,
            "replica_addr": REPLICA,
            "media_state": str(self.tmp / "media"),
            "doh_addr": DOH,
            "honest_dns": HONEST_DNS,
            "lab_http": DOMAIN,
        }
        path = self.tmp / "serve.json"
        path.write_text(json.dumps(cfg), encoding="utf-8")
        self.web = self._spawn(self.servers, sys.executable, "-m", "tests.lab.serve", str(path))
        # The test helper, on the uncensored side (OONI's protocol; lab addresses allowed).
        self.helper = f"https://{HELPER}/"
        asn_db = self.tmp / "ip2asn.tsv"
        asn_db.write_text(ASN_TABLE, encoding="utf-8")
        for addr in (HELPER, HELPER2):  # two addresses, for the SNI A/B test's third leg
            args = (
                f"helper serve --listen {addr}:443 --upstream {HONEST_DNS} "
                f"--allow-network 10.77.0.0/16 --tls-cert {cfg['cert']} "
                f"--tls-key {cfg['key']} --ca-bundle {self.ca_pem} --asn-db {asn_db}"
            )
            self._spawn(self.servers, sys.executable, "-m", "probe", *args.split())
        self.middlebox = self._spawn(
            self.isp, sys.executable, "-m", "tests.lab.middlebox", "8080", "8443"
        )
        quic_lab.start(self)
        if self.stun:
            # coturn as a plain STUN server (no TURN, no TLS, not the system's user
            # database), logging to the lab's temporary directory.
            turn = (
                f"exec turnserver --stun-only --listening-ip {STUN} --listening-port "
                f"{STUN_PORT} --no-tls --no-dtls --no-cli --log-file stdout --simple-log "
                f"--pidfile {self.tmp}/turnserver.pid --userdb {self.tmp}/turndb "
                f">{self.tmp}/turnserver.log 2>&1"
            )
            self._spawn(self.servers, "sh", "-c", turn)

    def _dnsmasq(self, ns: str, listen: str, extra: Sequence[str]) -> None:
        self._spawn(
            ns,
            "dnsmasq",
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-hosts",
            "--no-resolv",
            "--bind-interfaces",
            f"--listen-address={listen}",
            "--pid-file=",
            "--user=root",
            "--cache-size=0",
            *extra,
        )

    def _resolvers(self) -> None:
        honest = [f"--address=/{n}.{DOMAIN}/{ip}" for n, ip in HONEST.items()]
        honest += [f"--address=/{h}/{REPLICA}" for h in replica.all_hosts()]
        self._dnsmasq(self.servers, HONEST_DNS, [f"--local=/{DOMAIN}/", *honest])
        lies = [
            f"--address=/{n}.{DOMAIN}/{ip}"
            for n, answer in LIES.items()
            for ip in (answer if isinstance(answer, list) else [answer])
        ]
        self._dnsmasq(self.isp, ISP_CLIENT_SIDE, [f"--server={HONEST_DNS}", *lies])

    def _wait_ready(self) -> None:
        for proc in (self.web, self.middlebox):
            assert proc.stdout is not None
            if b"ready" not in proc.stdout.readline():
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"lab process {proc.args} did not start: {err[-500:]}")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # both resolvers answer through the middlebox
            r = sh(
                "python3",
                "-c",
                "import socket\n"
                f"for a, p in (('{NEWS}', 80), ('{HELPER}', 443)):\n"
                "    socket.create_connection((a, p), 2).close()",
                ns=self.client,
                check=False,
            )
            dead = [p for p in self.procs if p.poll() is not None]
            if dead:
                err = dead[0].stderr.read().decode() if dead[0].stderr else ""
                raise RuntimeError(f"lab process {dead[0].args} died: {err.strip()[-500:]}")
            if r.returncode == 0 and (not self.stun or self.stun_binding() is not None):
                return
            time.sleep(0.1)
        raise RuntimeError("lab: the client cannot reach the servers")

    # -- interference --------------------------------------------------------------------
    def interfere(self) -> None:
        """The standing censorship: every host-scoped rule at once (each scenario its host),
        scoped to the address the ISP sees (behind the home router, the translated one)."""
        src = self.subscriber
        for rule in FILTER_RULES:
            sh("sh", "-c", f"iptables -A FORWARD -s {src} {rule}", ns=self.isp)
        for rule in NAT_RULES:
            sh("sh", "-c", f"iptables -t nat -A PREROUTING -s {src} {rule}", ns=self.isp)
        quic_lab.interfere(self)

    def rules(self) -> str:
        return sh("iptables-save", ns=self.isp).stdout

    @contextlib.contextmanager
    def helper_blocked(self) -> Iterator[None]:
        """The censor resets connections to the test helper."""
        src = self.subscriber
        rule = f"FORWARD -s {src} -d {HELPER} -p tcp -j REJECT --reject-with tcp-reset"
        sh("sh", "-c", f"iptables -I {rule}", ns=self.isp)
        try:
            yield
        finally:
            sh("sh", "-c", f"iptables -D {rule}", ns=self.isp, check=False)

    @contextlib.contextmanager
    def helper_and_stun_blocked(self) -> Iterator[None]:
        """The home router (nat=True) lets neither the test helpers (TCP reset) nor the STUN
        server (UDP dropped: a client waits for its timeout) through."""
        assert self.router, "helper_and_stun_blocked needs Lab(nat=True)"
        rules = [
            f"FORWARD -d {h} -p tcp -j REJECT --reject-with tcp-reset" for h in (HELPER, HELPER2)
        ] + [f"FORWARD -d {STUN} -p udp --dport {STUN_PORT} -j DROP"]
        for rule in rules:
            sh("sh", "-c", f"iptables -I {rule}", ns=self.router)
        try:
            yield
        finally:
            for rule in rules:
                sh("sh", "-c", f"iptables -D {rule}", ns=self.router, check=False)

    def stun_binding(self) -> str | None:
        """The address the lab's STUN server says the client came from (one binding request
        from the client namespace, tests/lab/stun.py); None when it did not answer."""
        assert self.stun, "the STUN server runs in Lab(nat=True) only"
        r = sh(sys.executable, "-m", "tests.lab.stun", self.stun, ns=self.client, check=False)
        return r.stdout.strip().rpartition(":")[0] if r.returncode == 0 else None

    def seen_by_servers(self) -> str:
        """The client's address as the lab's web servers see it (the mirror's X-Client-IP)."""
        code = (
            "import http.client\n"
            f"c = http.client.HTTPConnection('{MIRROR}', 80, timeout=5)\n"
            "c.request('HEAD', '/')\n"
            "print(c.getresponse().getheader('X-Client-IP'))"
        )
        return sh("python3", "-c", code, ns=self.client).stdout.strip()

    @contextlib.contextmanager
    def nat(self, public: str = PUBLIC_IP) -> Iterator[None]:
        """A NAT in front of the client, as at home or on mobile data: servers (the helper
        too) see ``public``, an address the probe's own sockets never show it."""
        rule = f"POSTROUTING -o i1 -s {self.subscriber} -j SNAT --to-source {public}"
        sh("ip", "route", "add", f"{public}/32", "via", ISP_SERVER_SIDE, ns=self.servers)
        sh("sh", "-c", f"iptables -t nat -A {rule}", ns=self.isp)
        try:
            yield
        finally:
            sh("sh", "-c", f"iptables -t nat -D {rule}", ns=self.isp, check=False)
            sh("ip", "route", "del", f"{public}/32", ns=self.servers, check=False)

    def set_media(self, name: str) -> None:
        """The news site's editors replace its front picture (tests/lab/serve.py)."""
        (self.tmp / "media").write_text(name, encoding="utf-8")

    @contextlib.contextmanager
    def link_down(self) -> Iterator[None]:
        """The volunteer's own access link fails."""
        sh("ip", "link", "set", "c0", "down", ns=self.client)
        try:
            yield
        finally:
            sh("ip", "link", "set", "c0", "up", ns=self.client)
            self._client_routes()

    @contextlib.contextmanager
    def congestion(self, rate: str = "2mbit") -> Iterator[None]:
        """The whole access link is slow (tbf on the ISP's client-facing port, both ways)."""
        for ns, dev in ((self.isp, "i0"), (self.client, "c0")):
            sh(
                "tc",
                "qdisc",
                "add",
                "dev",
                dev,
                "root",
                "tbf",
                "rate",
                rate,
                "burst",
                "32kbit",
                "latency",
                "400ms",
                ns=ns,
            )
        try:
            yield
        finally:
            for ns, dev in ((self.isp, "i0"), (self.client, "c0")):
                sh("tc", "qdisc", "del", "dev", dev, "root", ns=ns, check=False)

    @contextlib.contextmanager
    def throttle(
        self,
        rate: str,
        *,
        address: str | None = None,
        sni: str | None = None,
        after_bytes: int | None = None,
    ) -> Iterator[None]:
        """Slow downloads to the client: by server address (htb + u32), by the SNI a
        ClientHello carries (string match -> CONNMARK -> CLASSIFY into the slow htb class), or
        by address only after ``after_bytes`` of a connection (connbytes -> CLASSIFY)."""

        def tc(cmd: str) -> None:
            sh("tc", *cmd.split(), ns=self.isp)

        tc("qdisc add dev i0 root handle 1: htb default 10")
        tc("class add dev i0 parent 1: classid 1:10 htb rate 10gbit")
        tc(
            f"class add dev i0 parent 1: classid 1:20 htb rate {rate} ceil {rate} "
            "burst 4k cburst 4k"
        )
        # A short queue, as real shapers have: a deep one would still be draining one
        # connection's data when the next trial starts.
        tc(f"qdisc add dev i0 parent 1:20 handle 20: pfifo limit {_queue_packets(rate)}")
        mangle: list[str] = []
        if address and after_bytes is None:
            tc(
                f"filter add dev i0 parent 1: protocol ip prio 1 u32 match ip src {address}/32 "
                "flowid 1:20"
            )
        elif address:
            sh("sysctl", "-qw", "net.netfilter.nf_conntrack_acct=1", ns=self.isp)
            mangle = [
                f"POSTROUTING -o i0 -s {address} -m connbytes --connbytes {after_bytes}: "
                "--connbytes-dir reply --connbytes-mode bytes -j CLASSIFY "
                "--set-class 1:20"
            ]
        if sni:
            # The ClientHello marks its connection; every later packet of that connection
            # towards the client goes to the slow class (this kernel has no fw classifier).
            mangle = [
                f"FORWARD -s {self.subscriber} -p tcp --dport 443 -m string --string {sni} "
                "--algo bm -j CONNMARK --set-mark 7",
                "POSTROUTING -o i0 -m connmark --mark 7 -j CLASSIFY --set-class 1:20",
            ]
        for rule in mangle:
            sh("sh", "-c", f"iptables -t mangle -A {rule}", ns=self.isp)
        try:
            yield
        finally:
            sh("tc", "qdisc", "del", "dev", "i0", "root", ns=self.isp, check=False)
            for rule in mangle:
                sh("sh", "-c", f"iptables -t mangle -D {rule}", ns=self.isp, check=False)

    @contextlib.contextmanager
    def capacity_flapping(
        self, high: str = "20mbit", low: str = "3mbit", period: float = 0.7
    ) -> Iterator[None]:
        """The whole access link's capacity drops and recovers, again and again (tbf)."""
        sh(
            "tc",
            *f"qdisc add dev i0 root tbf rate {high} burst 32kbit latency 200ms".split(),
            ns=self.isp,
        )
        stop = threading.Event()

        def flap() -> None:
            rates = itertools.cycle([low, high])
            while not stop.wait(period):
                sh(
                    "tc",
                    *f"qdisc change dev i0 root tbf rate {next(rates)} burst 32kbit "
                    "latency 200ms".split(),
                    ns=self.isp,
                    check=False,
                )

        t = threading.Thread(target=flap, daemon=True)
        t.start()
        try:
            yield
        finally:
            stop.set()
            t.join(5)
            sh("tc", "qdisc", "del", "dev", "i0", "root", ns=self.isp, check=False)

    # -- running the probe ---------------------------------------------------------------
    def resolvers(self) -> list[str]:
        """The flags that point the probe at the lab: its resolver under test, the control
        resolver and the lab's CA."""
        return [
            "--resolver",
            self.resolver,
            "--control-resolver",
            self.control_resolver,
            "--ca-bundle",
            self.ca_pem,
        ]

    def probe(
        self, *args: str, timeout: float = 300, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``python -m probe ARGS`` inside the client namespace (``env``: settings as
        PROBE_* variables, added to this process's environment)."""
        return subprocess.run(
            ["ip", "netns", "exec", self.client, sys.executable, "-m", "probe", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO,
            check=False,
            env={**os.environ, **(env or {})},
        )

    def run_targets(
        self,
        targets: dict[str, Any],
        controls: dict[str, Any],
        name: str,
        *extra: str,
        env: Mapping[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Measure ``targets`` (name -> URL, or name -> entry) through the lab; the records.
        Throughput tests run only when ``extra`` asks for them (a ``--throughput-*`` flag):
        blocking scenarios need none, and every target would otherwise get one."""
        import yaml

        def entries(d: dict[str, Any]) -> list[dict[str, Any]]:
            return [{"name": k, **(v if isinstance(v, dict) else {"url": v})} for k, v in d.items()]

        tfile = self.tmp / f"{name}.yaml"
        tfile.write_text(
            yaml.safe_dump(
                {"targets": entries(targets), "controls": entries(controls)}, allow_unicode=True
            ),
            encoding="utf-8",
        )
        db = self.tmp / f"{name}.db"
        r = self.probe(
            "run",
            "--targets",
            str(tfile),
            "--db",
            str(db),
            *self.resolvers(),
            "--timeout",
            "3",
            "--quiet",
            *([] if any(a.startswith("--throughput-") for a in extra) else ["--no-throughput"]),
            *extra,
            env=env,
        )
        if r.returncode != 0:
            raise RuntimeError(f"probe run failed ({r.returncode}): {r.stderr.strip()}")
        r = self.probe("export", "--db", str(db), "--format", "jsonl")
        if r.returncode != 0:
            raise RuntimeError(f"probe export failed: {r.stderr.strip()}")
        return [json.loads(line) for line in r.stdout.splitlines()]

    # -- teardown ------------------------------------------------------------------------
    def stop(self) -> None:
        stop_lab(self.procs, self.namespaces)


@contextlib.contextmanager
def running_lab(*, nat: bool = False) -> Iterator[Lab]:
    with tempfile.TemporaryDirectory(prefix="probe-lab-") as tmp:
        lab = Lab(Path(tmp), nat=nat).start()
        try:
            yield lab
        finally:
            lab.stop()


def lab_for_tests(*, nat: bool = False) -> Iterator[Lab]:
    """A test module's lab fixture (``nat``: behind the home router, see :class:`Lab`):
    skipped where the lab cannot run, a failure under CI."""
    try:
        check_available(nat=nat)
    except LabUnavailable as exc:
        import pytest

        ci = os.environ.get("CI", "")
        if ci.strip().lower() in ("1", "yes", "true", "on"):
            pytest.fail(f"{exc} (CI={ci}: the lab must run)")
        pytest.skip(str(exc))
    with running_lab(nat=nat) as lab:
        yield lab
