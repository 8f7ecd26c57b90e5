"""Tabs whose backends are not in this build yet: say plainly what is coming."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widget import Widget
from textual.widgets import Markdown

from console.tabs.base import TabContent

COMING: dict[str, tuple[str, str]] = {
    "jobs": (
        "Jobs",
        "Submit `generate_report`, `process_data` and `health` jobs to the **WebSocket job "
        "server** and watch several run at once with progress bars, phase messages and ETAs.",
    ),
    "validation": (
        "Validation",
        "Bounded consumption of a **Kafka topic** with schema inference and rule checks, "
        "a summary of failing rules by severity, samples, and reports (json/md/html).",
    ),
}


class PlaceholderTab(TabContent):
    def __init__(self, key: str) -> None:
        super().__init__(id=f"{key}-tab", classes="placeholder-tab")
        self._title, self._what = COMING[key]

    def help_markdown(self, focused: Widget | None) -> str:
        return f"**{self._title}** is not yet available in this build. Coming: {self._what}"

    def compose(self) -> ComposeResult:
        yield Markdown(
            f"## {self._title} — not yet available\n\n"
            f"Coming here: {self._what}\n\n"
            "Its backend is not part of this build yet, so there is nothing to configure. "
            "Press **1** for Streams or **4** for Disruptions.",
            classes="placeholder-text",
        )
