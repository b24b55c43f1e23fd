"""Terminal output for ``probe run``: a progress bar while it runs, a summary table at the end."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress
from rich.table import Table

from probe import words as verdicts
from probe.words import N_, translator

COLUMNS = (N_("target"), N_("verdict"), N_("step"), N_("failure"), N_("rule"))


class Progress:
    def __init__(self, total: int, *, enabled: bool = True, lang: str = "en") -> None:
        self._enabled = enabled
        self._bar = RichProgress(
            TextColumn("[bold]" + translator(lang).gettext("measuring")),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
            console=Console(stderr=True),
            transient=True,
        )
        self._task = self._bar.add_task("", total=total)

    def __enter__(self) -> Progress:
        if self._enabled:
            self._bar.start()
        return self

    def advance(self, m: Any) -> None:
        self._bar.update(self._task, advance=1, description=m.target)

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._enabled:
            self._bar.stop()


def summary(result: Any, *, lang: str = "en") -> None:
    """The round's kept rows (controls and blocked targets first), then counts for the rest."""
    tr = translator(lang)
    _ = tr.gettext
    network = (
        _("network ok")
        if result.network_ok
        else _("network OFFLINE")
        if result.network_ok is False
        else _("network ?")
    )
    table = Table(title=_("round {id}: {network}").format(id=result.id[:8], network=network))
    for col in COLUMNS:
        table.add_column(_(col), no_wrap=col == "verdict")  # a verdict is read whole
    for m in sorted(result.rows, key=lambda m: (not m.is_control, m.target)):
        v = m.verdict
        name = _("{target} (control)").format(target=m.target) if m.is_control else m.target
        table.add_row(
            name,
            verdicts.of(v, lang=lang),
            v.failing_step or "",
            v.failure or "",
            v.rule_id,
        )
    console = Console()
    console.print(table)
    if result.count > len(result.rows):
        counts = ", ".join(
            f"{n} {verdicts.words(b, a, lang=lang)}" for (b, a), n in result.verdicts.most_common()
        )
        console.print(
            tr.ngettext(
                "{n} measurement in all: {counts}",
                "{n} measurements in all: {counts}",
                result.count,
            ).format(n=result.count, counts=counts)
        )
