"""A five-step bar (▁▂▃▅▇) that makes a 0-1 severity readable at a glance."""

from __future__ import annotations

from textual.widgets import Static

BARS = "▁▂▃▅▇"


def severity_markup(value: float | None) -> str:
    """Lit steps coloured by band; an unparsable value shows all steps dim rather than failing."""
    if value is None or not 0.0 <= value <= 1.0:
        return f"[$text-muted]{BARS}[/]"
    lit = round(value * len(BARS))
    colour = "$success" if value < 0.4 else "$warning" if value < 0.7 else "$error"
    return f"[{colour}]{BARS[:lit]}[/][$text-muted]{BARS[lit:]}[/]"


class SeverityMeter(Static):
    def show(self, value: float | None) -> None:
        self.update(severity_markup(value))
