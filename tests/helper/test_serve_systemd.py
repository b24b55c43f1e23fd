"""``probe helper serve`` as systemd runs it (issue 20, item 5): its port passed by socket
activation (no capability to bind 443), its TLS key, certificate and token read from
``$CREDENTIALS_DIRECTORY`` (``LoadCredential=``: nothing world-readable for a DynamicUser)."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import trustme

from tests.servers.helper import ask
from tests.world import World


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(
    argv: list[str], env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    p = subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    try:
        yield p
    finally:
        p.terminate()
        _, err = p.communicate(timeout=10)
        assert b"Traceback" not in err, err.decode()


def wait_healthy(url: str, verify: ssl.SSLContext | bool = True) -> None:
    for _ in range(100):
        try:
            if httpx.get(url + "/health", timeout=1, verify=verify).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url}/health never answered")


def serve_argv(world: World, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "probe",
        "helper",
        "serve",
        "--upstream",
        world.control_dns.address,
        "--allow-network",
        "127.0.0.0/8",
        *extra,
    ]


def test_secrets_come_from_the_credentials_directory(world: World, tmp_path: Path) -> None:
    """As systemd's LoadCredential= leaves them: files named tls-cert, tls-key and token,
    readable by the service alone; no flag names them."""
    creds = tmp_path / "credentials"
    creds.mkdir(mode=0o700)
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    leaf.cert_chain_pems[0].write_to_path(str(creds / "tls-cert"))
    leaf.private_key_pem.write_to_path(str(creds / "tls-key"))
    (creds / "token").write_text("t0k3n\n")
    for f in creds.iterdir():
        f.chmod(0o400)
    trust = ssl.create_default_context()
    ca.configure_trust(trust)
    port = free_port()
    argv = serve_argv(world, "--listen", f"127.0.0.1:{port}")
    with serving(argv, {"CREDENTIALS_DIRECTORY": str(creds)}):
        base = f"https://127.0.0.1:{port}"
        wait_healthy(base, verify=trust)
        refused = ask(base, world.http("news.test"), verify=trust)
        ok = ask(
            base,
            world.http("news.test"),
            headers={"authorization": "Bearer t0k3n"},
            verify=trust,
        )
    assert refused.status_code == 401
    assert ok.status_code == 200 and ok.json()["http_request"]["status_code"] == 200


def test_a_flag_wins_over_the_credentials_directory(world: World, tmp_path: Path) -> None:
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "token").write_text("from-systemd\n")
    flag = tmp_path / "token"
    flag.write_text("from-the-flag\n")
    for f in (creds / "token", flag):
        f.chmod(0o600)  # a token others may read may be refused
    port = free_port()
    argv = serve_argv(world, "--listen", f"127.0.0.1:{port}", "--token-file", str(flag))
    with serving(argv, {"CREDENTIALS_DIRECTORY": str(creds)}):
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base)
        r = httpx.get(base + "/bulk?bytes=1", headers={"authorization": "Bearer from-the-flag"})
    assert r.status_code == 200


@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None, reason="no systemd here")
def test_the_port_comes_from_socket_activation(world: World) -> None:
    """systemd-socket-activate listens, as probe-helper.socket does, and starts the helper on
    the first connection with the socket as fd 3: the helper binds nothing itself."""
    port = free_port()
    argv = ["systemd-socket-activate", "-l", f"127.0.0.1:{port}", *serve_argv(world)]
    with serving(argv):
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base)
        r = ask(base, world.http("news.test"))
    assert r.status_code == 200 and r.json()["http_request"]["status_code"] == 200
