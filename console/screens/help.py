"""`?`: help for the focused part of the screen, then every key binding of the console."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Markdown, Static


@dataclass(frozen=True)
class KeymapRow:
    scope: str
    key: str
    description: str
    binding_id: str


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,question_mark,f1", "dismiss", "Close", id="help.close", key_display="esc"),
    ]

    def __init__(self, *, title: str, help_markdown: str, keymap: list[KeymapRow]) -> None:
        super().__init__()
        self._title = title
        self._help = help_markdown
        self._keymap = keymap

    def compose(self) -> ComposeResult:
        with Vertical(id="help-dialog") as dialog:
            dialog.border_title = f"Help — {self._title}"
            dialog.border_subtitle = "esc closes"
            yield Markdown(self._help, id="help-text")
            yield Static("Keymap", id="keymap-title")
            table: DataTable[str] = DataTable(id="keymap", cursor_type="row", zebra_stripes=True)
            table.add_columns("where", "key", "does", "binding id")
            table.add_rows((r.scope, r.key, r.description, r.binding_id) for r in self._keymap)
            yield table

    def on_mount(self) -> None:
        self.query_one("#keymap", DataTable).focus()
