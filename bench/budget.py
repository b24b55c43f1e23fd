"""The data budget of the default targets, per profile, measured on a loopback replica.

    sudo python bench/budget.py [--rounds 3] [--profiles default,mobile]

No real site is contacted. As root the script first moves itself into a new network namespace
whose only interface is loopback (``unshare --net``), so nothing it does can leave the machine.
It then serves a replica of the default ``targets.yaml``: every target and control under its
real host name, on its own loopback addresses (one to four, as CDNs answer), HTTPS on port 443
with an RSA certificate chain of real size (leaf and intermediate), HTML pages of the sizes the
real front pages have (gzip-compressed when asked, as the real ones are), the redirects some of
them make, a UDP resolver for the system side and a DoH resolver for the control side. Then it
runs page rounds of each profile through the real code (``probe.round.prepare`` and
``run_once``, the daemon's own calls, reading the real targets.yaml) and prints the bytes per
round (as the probe counts them: TCP payload in both directions, from the kernel's TCP_INFO)
and per day at the profile's interval, against the profile's daily cap; and the bytes each
stored measurement takes in SQLite, with and without response bodies, and the growth per month
that follows. Throughput tests (every target has one) are measured in the censorship lab by
``bench/budget_throughput.py``, which also adds up a day of both.

Page sizes are of late 2025 (HTML document only, uncompressed; the probe fetches no
sub-resources). A loopback link delivers everything a server sends before the probe closes the
connection, so the bytes here are an upper bound of what a slow link would carry.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# name -> (uncompressed HTML bytes, addresses, redirect path or None); None size: not HTML.
PAGES: dict[str, tuple[int, int, str | None]] = {
    "facebook": (380_000, 1, None),
    "facebook-static-cdn": (1_150, 1, None),  # favicon.ico, not compressed
    "facebook-web": (17_000, 1, None),  # robots.txt
    "youtube": (820_000, 4, None),
    "rfa-vietnamese": (160_000, 2, None),
    "bbc-vietnamese": (420_000, 4, "/vietnamese"),
    "voa-tiengviet": (260_000, 2, None),
    "rfi-vietnamese": (210_000, 2, None),
    "nguoi-viet": (230_000, 2, None),
    "thoibao": (130_000, 2, None),
    "luatkhoa": (150_000, 2, None),
    "thevietnamese": (120_000, 2, None),
    "baotiengdan": (160_000, 2, None),
    "danlambao": (520_000, 4, None),
    "vietnamthoibao": (110_000, 2, None),
    "viettan": (150_000, 2, None),
    "the88project": (100_000, 2, None),
    "hrw-vietnam": (150_000, 2, "/asia/vietnam"),
    "vietnamvoice": (100_000, 2, None),
    "bpsos": (100_000, 2, None),
    "rsf-vietnam": (160_000, 2, "/en/country/vietnam/"),
    "control-vnexpress": (350_000, 2, None),
    "control-wikipedia": (90_000, 1, None),
    "control-example": (1_256, 4, None),
    "control-tuoitre": (300_000, 2, None),
}
WORDS = [
    "tin",
    "tuc",
    "viet",
    "nam",
    "nguoi",
    "dan",
    "quyen",
    "tu",
    "do",
    "bao",
    "chi",
    "chinh",
    "phu",
    "ha",
    "noi",
    "sai",
    "gon",
    "kinh",
    "te",
    "xa",
    "hoi",
    "the",
    "gioi",
    "video",
    "anh",
    "binh",
    "luan",
    "doc",
    "nhieu",
    "moi",
    "nhat",
    "lien",
    "he",
    "gioi",
    "thieu",
    "dieu",
    "khoan",
]


def html(size: int, rng: random.Random) -> bytes:
    """An HTML page of ``size`` bytes that compresses about 4 to 1 (real pages: 4 to 6, so the
    bytes here err high): markup and words, with a share of inline script data (random, as
    minified JS and JSON are)."""
    parts: list[str] = ["<!doctype html><html><head><title>Trang chu</title></head><body>"]
    n = len(parts[0])
    while n < size:
        if rng.random() < 0.01:
            chunk = "<script>" + rng.randbytes(600).hex() + "</script>"
        else:
            words = " ".join(rng.choice(WORDS) for _ in range(30))
            link = f'<a href="/a/{rng.randrange(10**6)}">{words}</a>'
            chunk = f'<div class="item-{rng.randrange(40)}">{link}</div>\n'
        parts.append(chunk)
        n += len(chunk)
    return "".join(parts).encode()[:size]


def page_route(body: bytes, content_type: str) -> Callable[[BaseHTTPRequestHandler], None]:
    packed = gzip.compress(body, 6)

    def route(h: BaseHTTPRequestHandler) -> None:
        gz = "gzip" in (h.headers.get("Accept-Encoding") or "") and content_type.startswith("text")
        data = packed if gz else body
        h.send_response(200)
        h.send_header("Content-Type", content_type)
        if gz:
            h.send_header("Content-Encoding", "gzip")
        h.send_header("Content-Length", str(len(data)))
        h.send_header("Cache-Control", "private, max-age=0")
        h.end_headers()
        h.wfile.write(data)

    return route


def isolate() -> None:
    """Re-run this script in a network namespace with loopback only (as root)."""
    if os.environ.get("PROBE_BENCH_ISOLATED") or os.geteuid() != 0 or not shutil.which("unshare"):
        return
    env = {**os.environ, "PROBE_BENCH_ISOLATED": "1"}
    cmd = ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$0" "$@"']
    sys.exit(subprocess.run([*cmd, sys.executable, *sys.argv], env=env, check=False).returncode)


def serve(tmp: Path) -> dict[str, Any]:
    """Start the replica; returns what the probe needs to measure it."""
    import ssl
    from urllib.parse import urlsplit

    import trustme

    from probe.config.targets import load_targets
    from tests import servers as S

    tl = load_targets(ROOT / "targets.yaml")
    entries = [*tl.targets, *tl.controls]
    rng = random.Random(2025)
    root = trustme.CA(key_type=trustme.KeyType.RSA)
    inter = root.create_child_ca(key_type=trustme.KeyType.RSA)
    hosts = sorted({urlsplit(t.url).hostname or "" for t in entries})
    doh_ip = "127.77.255.1"
    leaf = inter.issue_cert(*hosts, doh_ip, key_type=trustme.KeyType.RSA)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(ctx)  # sends the leaf and the intermediate, as real servers do
    ctx.set_alpn_protocols(["http/1.1"])
    ca = tmp / "ca.pem"
    root.cert_pem.write_to_path(str(ca))
    zone: dict[str, Any] = {}
    servers: list[Any] = []
    for i, t in enumerate(entries):
        size, n_addr, redirect = PAGES[t.name]
        parts = urlsplit(t.url)
        addrs = [f"127.77.{i}.{k + 1}" for k in range(n_addr)]
        zone[parts.hostname or ""] = addrs
        ctype = "image/x-icon" if t.url.endswith(".ico") else "text/html; charset=utf-8"
        if t.url.endswith(".txt"):
            ctype = "text/plain"
        body = html(size, rng) if ctype.startswith("text") else rng.randbytes(size)
        route = page_route(body, ctype)
        routes: dict[str, Any] = {}
        if redirect:
            routes[parts.path] = S.redirect(f"https://{parts.hostname}{redirect}", 301)
            routes[redirect] = route
        else:
            routes[parts.path or "/"] = route
        for a in addrs:
            servers.append(S.WebServer(S.Site(routes), a, 443, ctx))
    system = S.DNSServer(zone, host="127.77.255.2")
    doh = S.WebServer(S.Site({"/dns-query": S.doh_route(zone)}), doh_ip, 443, ctx)
    return {
        "servers": [*servers, system, doh],
        "resolver": system.address,
        "control_resolver": f"https://{doh_ip}/dns-query",
        "ca": str(ca),
    }


async def rounds(profile: str, n: int, world: dict[str, Any], db: Path) -> dict[str, Any]:
    from probe.config.settings import resolve
    from probe.round import prepare, run_once
    from probe.store import Store

    settings = resolve(
        {
            "profile": profile,
            "targets": str(ROOT / "targets.yaml"),
            "db": str(db),
            "resolver": world["resolver"],
            "control_resolver": world["control_resolver"],
            "ca_bundle": world["ca"],
            "allow_loopback": True,
            "stun_servers": "none",  # benchmarks reach loopback only
        },
        env={},
    )
    setup = prepare(settings)
    store = Store.open(settings.db)
    used = []
    for _ in range(n):
        r = await run_once(setup, store, throughput=False, kind="pages")
        bad = [m.target for m in r.rows if m.verdict.accessible is not True]
        assert not bad, f"replica not accessible: {bad}"
        used.append(r.bytes_used)
    return {"settings": settings, "setup": setup, "store": store, "bytes": used}


def storage(store: Any) -> dict[str, float]:
    """Bytes per stored measurement, from SQLite's own page accounting (dbstat)."""
    db = store.db
    n = db.table("measurements").count
    rows = {
        r["name"]: r["size"]
        for r in db.query("SELECT name, sum(pgsize) AS size FROM dbstat GROUP BY name")
    }
    bodies = sum(v for k, v in rows.items() if "bodies" in k)
    total = sum(rows.values())
    return {"n": n, "per": (total - bodies) / n, "per_with_bodies": total / n}


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--profiles", default="default,mobile")
    args = ap.parse_args()
    isolate()
    if not os.environ.get("PROBE_BENCH_ISOLATED"):
        print("note: not root: no private network namespace; the replica is on loopback only")
    with tempfile.TemporaryDirectory() as tmp:
        world = serve(Path(tmp))
        try:
            print(
                f"{'profile':8} {'interval':>8} {'round':>10} {'rounds/day':>10} "
                f"{'pages/day':>11} {'cap/day':>9}"
            )
            last = None
            for profile in args.profiles.split(","):
                out = asyncio.run(rounds(profile, args.rounds, world, Path(tmp) / f"{profile}.db"))
                s = out["settings"]
                per_round = sum(out["bytes"]) / len(out["bytes"])
                per_day = 86400 / s.interval
                cap = s.max_bytes_per_day
                print(
                    f"{profile:8} {s.interval / 3600:7.2g}h {per_round / 1e6:8.2f}MB "
                    f"{per_day:10.1f} {per_round * per_day / 1e6:9.1f}MB "
                    f"{f'{cap / 1e6:.0f}MB' if cap else 'none':>9}"
                )
                print(
                    f"         rounds: {', '.join(f'{b / 1e6:.2f} MB' for b in out['bytes'])}; "
                    f"body cap {s.max_body or 512 * 1024} B"
                )
                last = out
            assert last is not None
            st = storage(last["store"])
            per_day_m = 25 * 86400 / 2700  # default profile: 25 measurements every 45 min
            print(
                f"storage: {st['n']} measurements; {st['per'] / 1e3:.1f} KB each without "
                f"bodies, {st['per_with_bodies'] / 1e3:.1f} KB with; the default profile "
                f"(25 measurements every 45 min): {st['per'] * per_day_m * 30 / 1e6:.0f} MB a "
                f"month without bodies, {st['per_with_bodies'] * per_day_m * 30 / 1e6:.0f} MB with"
            )
        finally:
            for o in world["servers"]:
                o.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
