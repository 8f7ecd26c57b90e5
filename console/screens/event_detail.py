"""Enter on a recent event: the whole envelope and payload as pretty JSON."""

from __future__ import annotations

from typing import Any

from rich.json import JSON
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.markup import escape
from textual.screen import ModalScreen
from textual.widgets import Static


class EventDetailScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,enter,q", "dismiss", "Close", id="event-detail.close", key_display="esc"),
    ]

    def __init__(self, event: dict[str, Any]) -> None:
        super().__init__()
        self._event = event

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="event-detail") as scroll:
            kind = self._event.get("event_type", "event")
            scroll.border_title = escape(f"{kind} · {self._event.get('trace_id', '')}")
            scroll.border_subtitle = "esc closes · ↑↓ scroll"
            yield Static(JSON.from_data(self._event, indent=2, sort_keys=False), id="event-json")

    def on_mount(self) -> None:
        self.query_one("#event-detail", VerticalScroll).focus()
