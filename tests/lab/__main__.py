"""Poke at the lab by hand: ``sudo python -m tests.lab`` builds it and waits for Ctrl-C;
``sudo python -m tests.lab --nat`` builds it behind the home router, with the STUN server.

While it waits, run commands in the client namespace, for example::

    ip netns exec <client> python -m probe run --targets <tmp>/scenarios.yaml ...

Everything (namespaces, processes, rules) is removed on exit.
"""

from __future__ import annotations

import signal
import sys

import yaml

from tests.lab import DOMAIN, LabUnavailable, running_lab
from tests.lab.scenarios import CONTROLS, SCENARIOS


def main(argv: list[str]) -> int:
    nat = argv == ["--nat"]
    if argv and not nat:
        print("usage: python -m tests.lab [--nat]", file=sys.stderr)
        return 2
    try:
        with running_lab(nat=nat) as lab:
            targets = lab.tmp / "scenarios.yaml"
            targets.write_text(
                yaml.safe_dump(
                    {
                        "targets": [{"name": s.name, "url": s.url} for s in SCENARIOS],
                        "controls": [{"name": k, "url": v} for k, v in CONTROLS.items()],
                    },
                    allow_unicode=True,
                ),
                encoding="utf-8",
            )
            router = f"{lab.router} (home router, SNAT to {lab.subscriber}), " if nat else ""
            print(
                f"lab up: namespaces {lab.client} (probe), {router}{lab.isp} (middlebox), "
                f"{lab.servers} (servers); names under .{DOMAIN}"
            )
            print(
                f"try:\n  ip netns exec {lab.client} {sys.executable} -m probe run "
                f"--targets {targets} --db {lab.tmp}/lab.db --resolver {lab.resolver} "
                f"--control-resolver {lab.control_resolver} --ca-bundle {lab.ca_pem}"
            )
            print(f"  ip netns exec {lab.isp} iptables-save")
            if lab.stun:
                print(f"  ip netns exec {lab.client} {sys.executable} -m tests.lab.stun {lab.stun}")
            print("Ctrl-C tears it all down.")
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
    except LabUnavailable as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    sys.exit(main(sys.argv[1:]))
