"""The one base class for bad input: a file, setting, flag or database the probe cannot use.

Contract: an :class:`InputError`'s message is one line naming the file, line, field, flag or
variable at fault; the CLI prints it as ``probe: error: ...`` and exits with status 2, and the
daemon logs it and keeps what it had. Every module's own input error subclasses it.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input; the message is one line and names what is wrong and where."""
