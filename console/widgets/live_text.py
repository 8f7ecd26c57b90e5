"""A Static for text that is refreshed on every poll but rarely changes size."""

from __future__ import annotations

from textual.widgets import Static


class LiveText(Static):
    """Skips identical updates and never asks for a layout pass.

    A layout pass re-renders the whole screen (tens of milliseconds with a chart
    on it); at several polls a second that would keep the UI busy for nothing.
    Give these widgets a fixed size in the stylesheet.
    """

    _shown: str | None = None

    def show(self, text: str) -> None:
        if text != self._shown:
            self._shown = text
            self.update(text, layout=False)
