"""Lab scenarios: a name, the URL that meets the interference, and the expected export fields.

The interference itself is standing and host-scoped (``tests.lab.FILTER_RULES``, ``NAT_RULES``,
``LIES``), so one ``probe run`` measures every scenario at once; the scenarios that change the
whole link (link down, congestion) get their own run. Verdicts here rest on local evidence (no
test helper): control resolver over DoH, control-address fetch, control sites.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

D = "lab"


@dataclass(frozen=True)
class Scenario:
    name: str
    url: str
    blocking: Any
    accessible: bool | None
    failing_step: str | None = None
    failure: str | None = None
    what: str = ""
    evidence: str = "local"  # "no control": an HTTP page with nothing to compare it with


SCENARIOS = [
    Scenario(
        "success_http",
        f"http://news.{D}/",
        False,
        True,
        what="no interference",
        evidence="no control",
    ),
    Scenario("success_https", f"https://news.{D}/", False, True, what="no interference"),
    Scenario(
        "dns_nxdomain",
        f"http://dnsnx.{D}/",
        "dns",
        False,
        "dns",
        "dns_nxdomain_error",
        "the ISP resolver says the name does not exist",
    ),
    Scenario(
        "dns_blockpage_address",
        f"http://dnsblockpage.{D}/",
        "dns",
        False,
        what="the ISP resolver answers with the blockpage server's address",
    ),
    Scenario(
        "dns_loopback",
        f"http://dnsloopback.{D}/",
        "dns",
        False,
        "dns",
        "dns_bogon_error",
        "the ISP resolver answers 127.0.0.1",
    ),
    Scenario(
        "tcp_rst_by_address",
        f"http://tcprst.{D}/",
        "tcp_ip",
        False,
        "tcp",
        "connection_refused",
        "the middlebox resets SYNs to the site's address",
    ),
    Scenario(
        "tcp_drop_by_address",
        f"https://tcpdrop.{D}/",
        "tcp_ip",
        False,
        "tcp",
        "generic_timeout_error",
        "the middlebox drops packets to the site's address",
    ),
    Scenario(
        "tls_reset_on_sni",
        f"https://tlsblocked.{D}/",
        "http-failure",
        False,
        "tls",
        "connection_reset",
        "RST when the ClientHello carries the SNI",
    ),
    Scenario(
        "http_reset_on_host",
        f"http://httpblocked.{D}/",
        "http-failure",
        False,
        "http",
        "connection_reset",
        "RST when the request carries the Host",
    ),
    Scenario(
        "host_rule_spares_https",
        f"https://httpblocked.{D}/",
        False,
        True,
        what="the Host match cannot see inside TLS",
    ),
    Scenario(
        "blockpage_injection_consistent_dns",
        f"http://injected.{D}/",
        "http-diff",
        False,
        what="DNAT of port 80 to the blockpage server; DNS is honest",
    ),
    Scenario(
        "dns_lie_to_transparent_proxy_http",
        f"http://proxied.{D}/",
        False,
        True,
        what="DNS points at an ISP proxy that serves the real page",
    ),
    Scenario(
        "dns_lie_to_transparent_proxy_https",
        f"https://proxied.{D}/",
        False,
        True,
        what="the proxy passes TLS through: the real certificate",
    ),
    Scenario(
        "down_for_everyone",
        f"http://down.{D}/",
        False,
        False,
        "dns",
        "dns_nxdomain_error",
        "the name does not exist for the control either",
    ),
    Scenario(
        "redirect_into_reset_host",
        f"http://news.{D}/to-httpblocked",
        "http-failure",
        False,
        "http",
        "connection_reset",
        "a redirect leads to a Host-reset site",
    ),
    Scenario(
        "redirect_into_dropped_address",
        f"http://news.{D}/to-tcpdrop",
        "http-failure",
        False,
        "tcp",
        "generic_timeout_error",
        "a redirect leads to a dropped address",
    ),
    Scenario(
        "http_fin_injection",
        f"http://eofinjected.{D}/",
        "http-failure",
        False,
        "http",
        "eof_error",
        "the middlebox ends the connection (FIN) after the request",
    ),
    Scenario(
        "tls_fin_injection",
        f"https://eofinjected.{D}/",
        "http-failure",
        False,
        "tls",
        "eof_error",
        "the middlebox ends the connection (FIN) after the ClientHello",
    ),
    Scenario(
        "dns_unknown_blockpage",
        f"http://unknownblock.{D}/",
        "dns",
        False,
        what="the ISP resolver answers an unknown blockpage's address (keep-alive server)",
    ),
    Scenario(
        "cdn_ten_addresses",
        f"http://bigcdn.{D}/",
        False,
        True,
        what="ten CDN addresses from the ISP's resolver, the honest answer outside them",
    ),
    Scenario(
        "redirect_to_link_local_literal",
        f"http://news.{D}/to-metadata",
        False,
        True,
        what="a Location naming 169.254.169.254: recorded, never followed",
        evidence="no control",
    ),
    Scenario(
        "idn_host",
        f"http://bücher.{D}/",
        False,
        True,
        what="an internationalised name",
        evidence="no control",
    ),
    Scenario(
        "large_body",
        f"http://news.{D}/large",
        False,
        True,
        what="a 4 MiB body, read up to the cap",
        evidence="no control",
    ),
]
CONTROLS = {"control-site": f"https://control.{D}/"}
