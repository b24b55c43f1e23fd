"""The mirror (mirror.lab): a lab site that echoes the client's address, as the site sees it,
in every form and every place servers have been seen to put it (issue 20).

Contract: :func:`forms` renders an IPv4 address in each encoding, name -> text; :func:`site`
is the mirror's routes, which put the address the server sees (behind the lab's NAT, the
translated one) in

- the response headers ``X-Client-IP``, ``X-Real-IP`` and ``X-Forwarded-For``;
- three cookies: plain (``ip-1-2-3-4``), base64 and base64 of a JSON object;
- the title, and the body, once per form (``/``, and ``/utf16``: the same page in UTF-16);
- a redirect's Location (``/go``: ``/?ip=...``, then the page).

The tests search everything the probe keeps for these same texts (``tests/e2e/test_lab_nat.py``),
so the server and the search cannot drift apart.
"""

from __future__ import annotations

import base64
import ipaddress
import json
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler

from tests import servers as S


def forms(address: str) -> dict[str, str]:
    """``address`` (dotted IPv4) in every encoding the mirror echoes, as the search looks for
    it: a form a server prefixes (``ip-``, ``0x``, ``.in-addr.arpa``) is given bare, so the
    search finds it with or without the prefix."""
    octets = [int(o) for o in address.split(".")]
    number = int(ipaddress.IPv4Address(address))

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    return {
        "dotted": address,
        "dashed": "-".join(map(str, octets)),  # ip-198-51-100-23
        "reversed": ".".join(map(str, reversed(octets))),  # 23.100.51.198.in-addr.arpa
        "url_encoded": "%2E".join(map(str, octets)),
        "double_url_encoded": "%252E".join(map(str, octets)),
        "zero_padded": ".".join(f"{o:03d}" for o in octets),
        "zero_padded_partial": ".".join(f"{o:03d}" for o in octets[:3]) + f".{octets[3]}",
        "octal_dotted": ".".join(f"0{o:o}" for o in octets),
        "hex_dotted": ".".join(f"0x{o:02x}" for o in octets),
        "decimal": str(number),
        "hex": f"{number:08x}",  # echoed as 0x...
        "html_entities": "".join(f"&#{ord(c)};" for c in address),
        "html_hex_entities": "".join(f"&#x{ord(c):x};" for c in address),
        "base64": b64(address),
        "base64_json": b64(json.dumps({"ip": address})),
    }


def page(address: str) -> str:
    f = forms(address)
    shown = {
        **f,
        "dashed": "ip-" + f["dashed"],
        "reversed": f["reversed"] + ".in-addr.arpa",
        "hex": "0x" + f["hex"].upper(),
    }
    return (
        f"<!doctype html><html><head><title>Your address is {address}</title></head><body>"
        + "".join(f"<p>{name}: {text}</p>" for name, text in shown.items())
        + "</body></html>"
    )


def route() -> Callable[[BaseHTTPRequestHandler], None]:
    """One route for every path: the address is the peer the server sees."""

    def serve(h: BaseHTTPRequestHandler) -> None:
        ip = h.client_address[0]
        f = forms(ip)
        path = h.path.split("?")[0]
        if path == "/go":
            h.send_response(302)
            h.send_header(
                "Location",
                f"/?ip={ip}&from=ip-{f['dashed']}&e={f['url_encoded']}&e2={f['double_url_encoded']}",
            )
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        utf16 = path == "/utf16"
        body = page(ip).encode("utf-16" if utf16 else "utf-8")  # utf-16: with a BOM
        h.send_response(200)
        h.send_header("Content-Type", f"text/html; charset={'utf-16' if utf16 else 'utf-8'}")
        h.send_header("X-Client-IP", ip)
        h.send_header("X-Real-IP", ip)
        h.send_header("X-Forwarded-For", f"{ip}, 10.77.1.1")
        h.send_header("Set-Cookie", f"visitor=ip-{f['dashed']}; Path=/")
        h.send_header("Set-Cookie", f"v64={f['base64']}; Path=/")
        h.send_header("Set-Cookie", f"vjson={f['base64_json']}; Path=/")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    return serve


def site() -> S.Site:
    serve = route()
    return S.Site({p: serve for p in ("/", "/go", "/utf16")})
