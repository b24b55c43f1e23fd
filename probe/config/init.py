"""``probe init``: the informed-consent text, and a commented settings file made from OPTIONS.

Contract: ``CONSENT`` is what a volunteer reads before the first measurement, one message a
paragraph; :func:`consent` gives it in a language, ``{db}`` and ``{config}`` filled in, wrapped
to a width without breaking a word; one paragraph says what the device key is (made by ``probe
init`` beside the database, ``probe.evidence.keys``). :func:`write_token` keeps a helper's token
in a private file (0600) beside the settings file. :data:`SERVICE_CONFIG` and :data:`SERVICE_DB`
are the files deploy/probe.service uses; :func:`share_with_service` makes the settings file
readable by the service's dynamic user (it holds no secret). ``settings_file(given)`` returns
TOML text with one commented paragraph per setting of :data:`probe.config.options.OPTIONS` (its
help, its environment variable): the settings in ``given`` (name -> value as a flag gives it)
are set, every other one is shown commented out with its default. The file reads back through
:func:`probe.config.settings.resolve`.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

from probe.config.files import private_folder, temp_beside
from probe.config.options import OPTIONS, Option
from probe.config.parse import format_duration, parse_duration
from probe.config.profiles import PROFILE_DEFAULTS
from probe.words import N_, translator

# The consent text, one paragraph a message (wrapped to the terminal at run time); a paragraph
# starting "- " is a list item, wrapped with a hanging indent.
CONSENT = (
    N_("probe measures whether your network blocks or slows some web sites."),
    N_(
        "What it does: on a schedule, it connects to the sites listed in its target file (social "
        "networks, news outlets, human-rights groups) and to a few control sites, as a browser "
        "would, and records step by step what your network does: the DNS answers, whether "
        "connections are reset or time out, whether a page is replaced by a blockpage, and how "
        "fast downloads are."
    ),
    N_("What this means for you:"),
    N_(
        "- This traffic is visible to your internet provider (and to anyone watching your "
        "connection): they can see that this computer contacts these sites, at regular times. "
        "Some of them are political and may be blocked on purpose. In some countries visiting "
        "them, or measuring them, may draw attention. Only go on if you understand and accept "
        "this risk."
    ),
    N_(
        "- It uses data: every round downloads the sites' front pages. Set a daily and monthly "
        "cap (max_bytes_per_day, max_bytes_per_month) if your data is metered; `--profile "
        "mobile` keeps rounds small and the budget tight (25 MB a day)."
    ),
    N_(
        "What is stored, only on this computer ({db}): for each site, the DNS answers, "
        "connection and TLS results, HTTP status, headers and the first part of each page, and "
        "the verdict. Your own public IP address is never stored or exported, in any form; "
        "nothing identifies you beyond your network (ISP) and country. Nothing is sent anywhere "
        "unless you export it yourself."
    ),
    N_(
        "The probe also keeps a key of its own beside the database ({db}.key): it signs what "
        "is stored, so that anyone can later check that nothing was altered. The key is "
        "pseudonymous: in exports it names this probe, never you, your name or your address."
    ),
    N_(
        "How to stop: Ctrl-C, or `systemctl disable --now probe` if you installed the service. "
        "How to delete everything: stop it, then run `probe wipe` (it deletes the database {db}, "
        "with its -wal, -shm and .lock files, and the settings file {config}), and uninstall "
        "probe. Everything the probe writes is readable by your user only."
    ),
)
_BLANK_BEFORE = {1, 2, 5, 7}  # paragraphs that open a section

# The service route (deploy/probe.service): the unit reads this file, and systemd's
# StateDirectory=probe puts the database here (unless the file names another).
SERVICE_CONFIG = Path("/etc/probe/settings.toml")
SERVICE_DB = "/var/lib/probe/probe.db"
TOKEN_NAME = "helper-token"  # beside the settings file; the service's drop-in loads this name


def consent(db: str, config: str | Path, *, lang: str = "en", width: int = 80) -> str:
    """The consent text in ``lang``, wrapped to ``width`` columns: words are never broken (a
    word longer than the width, such as a long path, stands alone on its line)."""
    t = translator(lang).gettext
    width = max(width, 20)
    lines: list[str] = []
    for i, paragraph in enumerate(CONSENT):
        text = t(paragraph).format(db=db, config=config)
        if i in _BLANK_BEFORE:
            lines.append("")
        item = text.startswith("- ")
        lines += textwrap.wrap(
            text,
            width,
            initial_indent="  " if item else "",
            subsequent_indent="    " if item else "",
            break_long_words=False,
            break_on_hyphens=False,
        )
    return "\n".join(lines) + "\n"


def is_service(path: Path) -> bool:
    """Is ``path`` the settings file the systemd unit reads?"""
    return path.expanduser().absolute() == SERVICE_CONFIG.absolute()


def share_with_service(path: Path) -> None:
    """Let the service's dynamic user (DynamicUser=yes) read the settings file it is told to
    use: 0644 and its folder 0755. The file holds no secret: a helper's token has its own
    0600 file, which systemd hands the service as a credential (the helper-token drop-in)."""
    os.chmod(path.parent, 0o755)
    os.chmod(path, 0o644)


def write_token(folder: Path, token: str) -> Path:
    """The helper's token, in a file private to this user (0600, as check_token_file wants)
    beside the settings file; replaced whole, never written through a link."""
    private_folder(folder)
    path = folder / TOKEN_NAME
    fd, tmp = temp_beside(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(token.strip() + "\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _toml(o: Option, value: Any) -> str:
    """A value as TOML text, in the form a person would type (45m, 25M)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(o, v) for v in value) + "]"
    if o.parse is parse_duration:
        return json.dumps(format_duration(float(value)))
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(str(value))  # a TOML basic string is a JSON string


def settings_file(given: dict[str, Any]) -> str:
    lines = [
        "# probe settings (TOML), written by `probe init`.",
        "# Highest first: command-line flags, PROBE_* environment variables, this file, the",
        "# defaults. `probe config` shows every effective value and where it came from.",
        "# A line starting with '#' is a default left alone: remove the '#' to change it.",
    ]
    for name, values in PROFILE_DEFAULTS.items():
        shown = ", ".join(f"{k} {_toml(_by(k), v)}" for k, v in values.items())
        text = f"The {name} profile (profile = {json.dumps(name)}) sets: {shown}."
        lines += [f"# {t}" for t in textwrap.wrap(text, 96)]
    for o in OPTIONS:
        if o.hidden:
            continue
        lines.append("")
        for text in textwrap.wrap(f"{o.help} ({o.env}, {o.flag or 'no flag'})", 96):
            lines.append(f"# {text}")
        if o.name in given:
            raw = given[o.name]
            value = o.flag_value if o.is_flag else o.parse(raw)
            lines.append(f"{o.name} = {_toml(o, value)}")
        elif o.default is None:
            lines.append(f"# {o.name} = {json.dumps(o.metavar or 'VALUE')}")
        else:
            lines.append(f"# {o.name} = {_toml(o, o.default)}")
    return "\n".join(lines) + "\n"


def _by(name: str) -> Option:
    return next(o for o in OPTIONS if o.name == name)
