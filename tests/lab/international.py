"""The international lab (issue 25): a domestic segment, a cache inside the volunteer's network
and an international link with its own capacity and delay, to tell why a site is slow.

    client --c0/i0-- isp (resolver, the on-net cache) --i1/n0-- near (domestic sites)
                      \\--i3/g0-- gw (delay line, international capacity) --g1/f0-- far (origins)

- ``isp``: the volunteer's ISP, AS64500 (the probe's own, ``--asn``). Its dnsmasq answers every
  ``.slow`` name from a hosts file the lab rewrites (SIGHUP: dnsmasq reads it again), as a
  CDN's DNS sends users to its off-net cache or elsewhere. The cache (``CACHE``, in the ISP's
  own 10.88.3.0/24) is served from this namespace. ``i0``, towards the client, is the access
  link: htb, ``ACCESS`` normally.
- ``near``: domestic sites, AS64510 (VN), one hop from the ISP.
- ``gw``: the international gateway. This kernel has no netem, so a userspace delay line
  (:func:`delay_line`, a TUN device: every packet that crosses the gateway is read, held
  ``DELAY_MS`` and written back, routed on by policy: ``iif tun0``) adds the distance, and htb
  on ``g0`` (towards the ISP: the downloads' direction) is the link's capacity, ``INTL``.
- ``far``: the foreign origins: Facebook's (AS64530, US), and two other sites (AS64531, DE).

Namespaces are ``plab<pid>-i<name>``, so :func:`tests.lab.cleanup_stale` removes those of a
lab whose process died. :class:`IntlLab` builds and stops it; :meth:`IntlLab.rounds` runs probe
rounds in the client namespace (one process for many rounds: :func:`_rounds`), each into its
own database; the scenarios are context managers that change one thing and put it back.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tests.lab import REPO, add_namespaces, check_available, cleanup_stale, sh, stop_lab

CLIENT, ISP_C = "10.88.0.2", "10.88.0.1"
ISP_N, NEAR = "10.88.1.1", "10.88.1.2"
ISP_G, GW_I = "10.88.4.1", "10.88.4.2"
GW_F, FAR = "10.88.5.1", "10.88.5.2"
DOMESTIC = {"dom1": "10.88.2.10", "dom2": "10.88.2.11", "ctl": "10.88.2.12"}
CACHE = {"fb": "10.88.3.10"}  # inside the ISP's own network
ORIGINS = {"fb": "10.88.6.10", "wiki": "10.88.7.11", "bbc": "10.88.7.12"}
HELPER = "10.88.7.70"  # a test helper abroad: the control vantage and the SNI A/B's server
ASN_TABLE = (
    "10.88.0.0\t10.88.0.255\t64500\tVN\tLAB-ISP subscribers\n"
    "10.88.2.0\t10.88.2.255\t64510\tVN\tLAB-DOMESTIC hosting\n"
    "10.88.3.0\t10.88.3.255\t64500\tVN\tLAB-ISP caches\n"
    "10.88.6.0\t10.88.6.255\t64530\tUS\tLAB-FACEBOOK\n"
    "10.88.7.0\t10.88.7.255\t64531\tDE\tLAB-ORIGINS\n"
)
PROBE_ASN = "AS64500"
ACCESS, INTL = "40mbit", "12mbit"
DELAY_MS = 20  # each way: some 40 ms more round trip abroad
OBJECT = 256 * 1024
TARGETS = ("dom1", "dom2", "fb", "wiki", "bbc")
ROUND_FLAGS = {
    "throughput_bytes": "256K",
    "throughput_seconds": "2",
    "throughput_trials": "1",
    "timeout": "3",
    "stun_servers": "none",
    "asn": PROBE_ASN,
    "cc": "VN",
}

TUNSETIFF, IFF_TUN, IFF_NO_PI = 0x400454CA, 0x0001, 0x1000


def delay_line(dev: str, ms: float) -> None:
    """Hold every packet of TUN device ``dev`` ``ms`` milliseconds, then hand it back to the
    kernel (which routes it on: ``iif dev``). One delay for all: the order stays."""
    import fcntl
    import struct

    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", dev.encode(), IFF_TUN | IFF_NO_PI))
    print("ready", flush=True)
    held: deque[tuple[float, bytes]] = deque()
    wait = ms / 1000
    while True:
        now = time.monotonic()
        timeout = max(0.0, held[0][0] - now) if held else None
        ready, _, _ = select.select([fd], [], [], timeout)
        if ready:
            with contextlib.suppress(BlockingIOError):
                while True:
                    held.append((time.monotonic() + wait, os.read(fd, 65536)))
        now = time.monotonic()
        while held and held[0][0] <= now:
            with contextlib.suppress(OSError):  # a full device queue drops, as a link would
                os.write(fd, held.popleft()[1])


def serve(addresses: Sequence[str]) -> None:
    """A page and a throughput object (HEAD and Range, as a CDN answers) on each address."""
    from tests import servers as S

    site = S.Site({"/": (200, {"Content-Type": "text/html"}, b"<title>x</title>" + b"y" * 2000)})
    site.routes["/obj"] = S.large(OBJECT)
    servers = [S.WebServer(site, a, 80) for a in addresses]
    print("ready", flush=True)
    try:
        signal.pause()
    finally:
        for s in servers:
            s.close()


def _rounds(config: dict[str, Any]) -> None:
    """In the client namespace: ``rounds`` probe rounds into each database of ``dbs``, one
    after another (one process: the imports once)."""
    import asyncio

    from probe.config.settings import resolve
    from probe.round import prepare, run_once
    from probe.store import Store

    for db in config["dbs"]:
        flags = {**config["flags"], "db": db}
        setup = prepare(resolve(flags, env={}))
        store = Store.open(db)
        try:
            for _ in range(config["rounds"]):
                asyncio.run(run_once(setup, store, kind="run"))
        finally:
            store.close()


class IntlLab:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        tag = f"plab{os.getpid()}-i"
        self.client, self.isp, self.near = f"{tag}c", f"{tag}isp", f"{tag}near"
        self.gw, self.far = f"{tag}gw", f"{tag}far"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.hosts = tmp / "hosts"
        self.targets = tmp / "targets.yaml"
        self.asn_db = tmp / "ip2asn.tsv"
        self.rounds_run = 0

    @property
    def namespaces(self) -> list[str]:
        return [self.client, self.isp, self.near, self.gw, self.far]

    # -- building ------------------------------------------------------------------------
    def start(self) -> IntlLab:
        check_available()
        cleanup_stale()
        self.asn_db.write_text(ASN_TABLE, encoding="utf-8")
        try:
            self._links()
            self._spawn_ready(self.gw, "delay", "tun0", str(DELAY_MS))
            self._files()
            self._spawn_ready(self.isp, "serve", *CACHE.values())
            self._spawn_ready(self.near, "serve", *DOMESTIC.values())
            self._spawn_ready(self.far, "serve", *ORIGINS.values())
            self._helper()
            self._spawn(
                self.isp,
                "dnsmasq",
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-hosts",
                "--no-resolv",
                "--bind-interfaces",
                f"--listen-address={ISP_C}",
                "--pid-file=",
                "--user=root",
                "--cache-size=0",
                f"--addn-hosts={self.hosts}",
            )
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _links(self) -> None:
        add_namespaces(self.namespaces)
        pairs = [
            ("c0", self.client, CLIENT, "i0", self.isp, ISP_C),
            ("i1", self.isp, ISP_N, "n0", self.near, NEAR),
            ("i3", self.isp, ISP_G, "g0", self.gw, GW_I),
            ("g1", self.gw, GW_F, "f0", self.far, FAR),
        ]
        for a, a_ns, a_ip, b, b_ns, b_ip in pairs:
            sh(
                "ip",
                "link",
                "add",
                a,
                "netns",
                a_ns,
                "type",
                "veth",
                "peer",
                "name",
                b,
                "netns",
                b_ns,
            )
            for dev, ns, ip in ((a, a_ns, a_ip), (b, b_ns, b_ip)):
                sh("ip", "addr", "add", f"{ip}/24", "dev", dev, ns=ns)
                sh("ip", "link", "set", dev, "up", ns=ns)
                # Wire-size packets, so that htb shapes what a real link would carry.
                sh("ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off", ns=ns)
        for ip in CACHE.values():
            sh("ip", "addr", "add", f"{ip}/32", "dev", "lo", ns=self.isp)
        for ip in DOMESTIC.values():
            sh("ip", "addr", "add", f"{ip}/32", "dev", "n0", ns=self.near)
        for ip in [*ORIGINS.values(), HELPER]:
            sh("ip", "addr", "add", f"{ip}/32", "dev", "f0", ns=self.far)
        for ns in (self.isp, self.gw):
            sh("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=ns)
        # The lab's networks only: no namespace has a route out of it.
        sh("ip", "route", "add", "10.88.0.0/16", "via", ISP_C, ns=self.client)
        sh("ip", "route", "add", "10.88.2.0/24", "via", NEAR, ns=self.isp)
        for net in ("10.88.5.0/24", "10.88.6.0/24", "10.88.7.0/24"):
            sh("ip", "route", "add", net, "via", GW_I, ns=self.isp)
        sh("ip", "route", "add", "10.88.0.0/16", "via", ISP_N, ns=self.near)
        sh("ip", "route", "add", "10.88.0.0/16", "via", GW_F, ns=self.far)
        # The gateway: everything crossing it goes through the delay line (tun0), then on by
        # the table for packets coming back out of it.
        sh("ip", "tuntap", "add", "dev", "tun0", "mode", "tun", ns=self.gw)
        sh("ip", "link", "set", "tun0", "up", ns=self.gw)
        for key in ("all", "default", "g0", "g1", "tun0"):
            sh("sysctl", "-qw", f"net.ipv4.conf.{key}.rp_filter=0", ns=self.gw)
        home = ("10.88.0.0/24", "10.88.2.0/24", "10.88.3.0/24")  # the subscribers, sites, cache
        for net in (*home, "10.88.6.0/24", "10.88.7.0/24"):
            sh("ip", "route", "add", net, "dev", "tun0", ns=self.gw)
        for net in home:
            sh("ip", "route", "add", net, "via", ISP_G, "table", "100", ns=self.gw)
        for net in ("10.88.6.0/24", "10.88.7.0/24"):
            sh("ip", "route", "add", net, "via", FAR, "table", "100", ns=self.gw)
        sh("ip", "rule", "add", "iif", "tun0", "lookup", "100", ns=self.gw)
        self._htb(self.isp, "i0", ACCESS)
        self._htb(self.gw, "g0", INTL)

    def _htb(self, ns: str, dev: str, rate: str) -> None:
        sh("tc", *f"qdisc add dev {dev} root handle 1: htb default 10".split(), ns=ns)
        self._rate(ns, dev, rate, "add")
        # A short queue, as real links have: a deep one would still be draining one test's
        # data when the next starts.
        sh("tc", *f"qdisc add dev {dev} parent 1:10 handle 10: pfifo limit 60".split(), ns=ns)

    def _helper(self) -> None:
        """``probe helper serve`` abroad, with a lab CA's certificate (trustme)."""
        import trustme

        ca = trustme.CA()
        leaf = ca.issue_cert(HELPER, *(f"{n}.slow" for n in (*TARGETS, "ctl")), "www.example.com")
        self.ca_pem = str(self.tmp / "ca.pem")
        ca.cert_pem.write_to_path(self.ca_pem)
        cert, key = self.tmp / "helper-cert.pem", self.tmp / "helper-key.pem"
        leaf.cert_chain_pems[0].write_to_path(str(cert))
        leaf.private_key_pem.write_to_path(str(key))
        args = (
            f"helper serve --listen {HELPER}:443 --upstream udp://{ISP_C}:53 "
            f"--allow-network 10.88.0.0/16 --tls-cert {cert} --tls-key {key} "
            f"--ca-bundle {self.ca_pem} --asn-db {self.asn_db}"
        )
        self._spawn(self.far, sys.executable, "-m", "probe", *args.split())

    def _rate(self, ns: str, dev: str, rate: str, verb: str = "change") -> None:
        sh(
            "tc",
            *f"class {verb} dev {dev} parent 1: classid 1:10 htb rate {rate} ceil {rate}".split(),
            ns=ns,
        )

    def _files(self) -> None:
        self.set_dns(fb=CACHE["fb"])
        entries = [
            {"name": n, "url": f"http://{n}.slow/", "throughput_url": f"http://{n}.slow/obj"}
            for n in TARGETS
        ]
        control = [
            {"name": "ctl", "url": "http://ctl.slow/", "throughput_url": "http://ctl.slow/obj"}
        ]
        self.targets.write_text(
            json.dumps({"targets": entries, "controls": control}), encoding="utf-8"
        )

    def set_dns(self, **where: str) -> None:
        """The ISP resolver's answers: every name its home, ``where`` overriding (fb: the
        cache or the origin). dnsmasq reads the file again on SIGHUP."""
        homes = {**DOMESTIC, "wiki": ORIGINS["wiki"], "bbc": ORIGINS["bbc"], **where}
        self.hosts.write_text(
            "".join(f"{ip} {n}.slow\n" for n, ip in homes.items()), encoding="utf-8"
        )
        dns = [p for p in self.procs if "dnsmasq" in p.args]
        for p in dns:
            # dnsmasq runs under `ip netns exec` (it execs in place: the pid is dnsmasq's)
            os.kill(p.pid, signal.SIGHUP)
        if dns:
            time.sleep(0.2)

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

    def _spawn_ready(self, ns: str, *args: str) -> None:
        p = self._spawn(ns, sys.executable, "-m", "tests.lab.international", *args)
        assert p.stdout is not None
        if b"ready" not in p.stdout.readline():
            err = p.stderr.read().decode() if p.stderr else ""
            raise RuntimeError(f"lab process {args} did not start: {err[-500:]}")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 10
        probe = (
            "import socket\n"
            f"for a in {[*DOMESTIC.values(), *CACHE.values(), *ORIGINS.values()]!r}"
            f" + {[ISP_C, HELPER]!r}:\n"
            f"    port = {{'{ISP_C}': 53, '{HELPER}': 443}}.get(a, 80)\n"
            "    socket.create_connection((a, port), 2).close()"
        )
        while time.monotonic() < deadline:
            r = sh("python3", "-c", probe, ns=self.client, check=False)
            if r.returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError(
            f"international lab: the client cannot reach the servers ({r.stderr[-300:]})"
        )

    # -- measuring -----------------------------------------------------------------------
    def flags(self) -> dict[str, Any]:
        return {
            **ROUND_FLAGS,
            "targets": str(self.targets),
            "resolver": f"udp://{ISP_C}:53",
            "control_resolver": f"udp://{ISP_C}:53",
            "asn_db": [str(self.asn_db)],
        }

    def rounds(
        self,
        dbs: Sequence[Path],
        n: int,
        *,
        helper: bool = False,
        timeout: float = 900,
        **extra: str,
    ) -> None:
        """``n`` probe rounds into each of ``dbs``, in the client namespace; ``helper``: with
        the test helper (its control view and the SNI A/B test); ``extra``: other settings."""
        cfg = self.tmp / f"rounds-{self.rounds_run}.json"
        self.rounds_run += 1
        flags = self.flags() | extra
        if helper:
            flags |= {"helper": f"https://{HELPER}/", "ca_bundle": self.ca_pem}
        cfg.write_text(
            json.dumps({"dbs": [str(d) for d in dbs], "rounds": n, "flags": flags}),
            encoding="utf-8",
        )
        r = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                self.client,
                sys.executable,
                "-m",
                "tests.lab.international",
                "rounds",
                str(cfg),
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO,
            check=False,
        )
        if r.returncode != 0:
            raise RuntimeError(f"rounds failed ({r.returncode}): {r.stderr.strip()[-2000:]}")

    # -- the causes ----------------------------------------------------------------------
    @contextlib.contextmanager
    def cache_removed(self) -> Iterator[None]:
        """Facebook's DNS stops sending users to the ISP's cache: its origin, abroad."""
        self.set_dns(fb=ORIGINS["fb"])
        try:
            yield
        finally:
            self.set_dns(fb=CACHE["fb"])

    @contextlib.contextmanager
    def international_degraded(self, rate: str = "1500kbit") -> Iterator[None]:
        """The international link's capacity falls (a cut cable, a throttled gateway)."""
        self._rate(self.gw, "g0", rate)
        try:
            yield
        finally:
            self._rate(self.gw, "g0", INTL)

    @contextlib.contextmanager
    def congestion(self, rate: str = "2mbit") -> Iterator[None]:
        """The volunteer's access link is slow: everything, domestic or not."""
        self._rate(self.isp, "i0", rate)
        try:
            yield
        finally:
            self._rate(self.isp, "i0", ACCESS)

    @contextlib.contextmanager
    def cache_throttled(self, rate: str = "2mbit") -> Iterator[None]:
        """The ISP throttles the cache's address, with no helper to show it: no evidence of
        targeting, and the edge did not move."""
        tc = ["tc", "class", "add", "dev", "i0", "parent", "1:", "classid", "1:20", "htb"]
        sh(*tc, "rate", rate, "ceil", rate, ns=self.isp)
        flt = "filter add dev i0 parent 1: protocol ip prio 1 u32 match ip src {}/32 flowid 1:20"
        sh("tc", *flt.format(CACHE["fb"]).split(), ns=self.isp)
        try:
            yield
        finally:
            sh(
                "tc",
                *["filter", "del", "dev", "i0", "parent", "1:", "prio", "1"],
                ns=self.isp,
                check=False,
            )
            sh(
                "tc",
                *["class", "del", "dev", "i0", "parent", "1:", "classid", "1:20"],
                ns=self.isp,
                check=False,
            )

    @contextlib.contextmanager
    def targeted(self, rate: str = "250kbit") -> Iterator[None]:
        """The ISP throttles every connection that names Facebook (its Host header or its TLS
        SNI: string match -> CONNMARK -> CLASSIFY into a slow htb class), wherever it goes:
        the helper's SNI A/B shows it."""
        sh(
            "tc",
            *f"class add dev i0 parent 1: classid 1:20 htb rate {rate} ceil {rate}".split(),
            ns=self.isp,
        )
        mangle = [
            f"PREROUTING -i i0 -s {CLIENT} -p tcp -m multiport --dports 80,443 "
            "-m string --string fb.slow --algo bm -j CONNMARK --set-mark 7",
            "POSTROUTING -o i0 -m connmark --mark 7 -j CLASSIFY --set-class 1:20",
        ]
        for rule in mangle:
            sh("sh", "-c", f"iptables -t mangle -A {rule}", ns=self.isp)
        try:
            yield
        finally:
            for rule in mangle:
                sh("sh", "-c", f"iptables -t mangle -D {rule}", ns=self.isp, check=False)
            sh("tc", "class", "del", "dev", "i0", "classid", "1:20", ns=self.isp, check=False)

    # -- teardown ------------------------------------------------------------------------
    def stop(self) -> None:
        stop_lab(self.procs, self.namespaces)


@contextlib.contextmanager
def running_intl_lab() -> Iterator[IntlLab]:
    with tempfile.TemporaryDirectory(prefix="probe-intl-") as tmp:
        lab = IntlLab(Path(tmp)).start()
        try:
            yield lab
        finally:
            lab.stop()


def main(argv: Sequence[str]) -> None:
    cmd, *args = argv
    if cmd == "delay":
        delay_line(args[0], float(args[1]))
    elif cmd == "serve":
        serve(args)
    elif cmd == "rounds":
        _rounds(json.loads(Path(args[0]).read_text(encoding="utf-8")))
    else:
        raise SystemExit(f"unknown command {cmd!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
