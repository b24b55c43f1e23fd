"""``python -m probe`` on a real pseudo-terminal, for the questions a volunteer is asked
(``probe init``, ``probe wipe``, ``probe prune``): each prompt is answered once it is on the
screen, and the exit status and the whole screen come back."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

from tests.paths import REPO


def in_a_terminal(
    args: list[str], script: list[tuple[bytes, bytes]], env: dict[str, str] | None = None
) -> tuple[int, str]:
    """Run probe with ``args`` on a pseudo-terminal; type each answer of ``script`` (the text
    that shows the prompt, the answer) in turn, once its text appears after the last one."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "probe", *args],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        cwd=REPO,
        env=env,
        close_fds=True,
    )
    os.close(follower)
    seen, step, mark, deadline = b"", 0, 0, time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:  # the terminal closed: the process is done
                    break
                if not chunk:
                    break
                seen += chunk
            if step < len(script) and script[step][0] in seen[mark:]:
                mark = seen.index(script[step][0], mark) + len(script[step][0])
                os.write(leader, script[step][1])
                step += 1
            if proc.poll() is not None and not ready:
                break
        return proc.wait(timeout=30), seen.decode("utf-8", "replace")
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(leader)
