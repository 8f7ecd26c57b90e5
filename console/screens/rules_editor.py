"""The rule-file editor: view, edit and save a TOML rule set, checked before it is written.

A TOML `TextArea` with the rule file (or the built-in retail set rendered as TOML, as
a starting point). `ctrl+s` checks the text exactly as a run would load it (TOML
syntax, then every rule through `parse_ruleset`) and writes only a valid file: an
invalid one stays unsaved with the reason below the editor and the cursor on the
offending line when TOML names it. Saving over an existing file other than the one
opened asks first. The screen stays open after a save; closing returns the path
last saved (so the tab can select it), and closing with unsaved edits asks first.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static, TextArea

from console.screens.confirm import ConfirmScreen

if TYPE_CHECKING:  # the engine imports polars: the tab loads it before opening the editor
    from backends.validation.rules import Rule, RuleSet

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_TOML_AT = re.compile(r"\(at line (\d+), column (\d+)\)")
_FIELD_ORDER = ("name", "type", "column", "columns", "severity", "mostly", "when", "description")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _toml_value(value: Any) -> str:
    """A TOML literal; JSON's string escapes are all valid in TOML basic strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        # TOML has no null: a None among allowed values cannot be written and is left out.
        return "[" + ", ".join(_toml_value(v) for v in value if v is not None) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    raise ValueError(f"cannot write {type(value).__name__} in TOML")


def _rule_table(rule: Rule) -> list[str]:
    fields = rule.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True)
    fields["type"] = rule.kind
    ordered = [k for k in _FIELD_ORDER if k in fields] + sorted(
        k for k in fields if k not in _FIELD_ORDER
    )
    return ["[[rules]]", *(f"{_toml_key(k)} = {_toml_value(fields[k])}" for k in ordered)]


def ruleset_to_toml(rules: RuleSet) -> str:
    """The rule-file form of a rule set (what `load_rules` reads back to an equal set)."""
    lines = [f"name = {_toml_value(rules.name)}"]
    if rules.description:
        lines.append(f"description = {_toml_value(rules.description)}")
    for rule in rules.rules:
        lines += ["", *_rule_table(rule)]
    return "\n".join(lines) + "\n"


def check_rules_text(text: str, source: str) -> RuleSet:
    """The rule set the text defines, or a `RuleError` saying where and why it is invalid."""
    from backends.validation.rules import RuleError, parse_ruleset

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RuleError(f"{source}: invalid TOML: {exc}") from None
    data.setdefault("name", Path(source).stem or "rules")
    return parse_ruleset(data, source=source)


def error_line(message: str) -> int | None:
    """The 1-based line a TOML syntax error names, if it names one."""
    match = _TOML_AT.search(message)
    return int(match.group(1)) if match else None


class RulesEditorScreen(ModalScreen[Path | None]):
    BINDINGS: ClassVar[list[Binding]] = [
        Binding(
            "ctrl+s",
            "save",
            "Save",
            id="rules-editor.save",
            key_display="^s",
            priority=True,
            tooltip="Check the rules and write the file",
        ),
        Binding(
            "escape",
            "close",
            "Close",
            id="rules-editor.close",
            key_display="esc",
            tooltip="Close (asks when there are unsaved edits)",
        ),
    ]

    def __init__(self, *, path: str, text: str, origin: str) -> None:
        super().__init__()
        self._opened = path
        self._origin = origin
        self._text = text
        self._saved_text = text
        self._saved_path: Path | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="rules-editor") as dialog:
            dialog.border_title = f"Rules editor — {self._origin}"
            dialog.border_subtitle = "^s check & save · esc leaves the text, esc again closes"
            with Horizontal(classes="field"):
                yield Label("file", classes="field-label")
                yield Input(self._opened, placeholder="rules.toml", id="editor-path", compact=True)
                yield Button("Save", id="editor-save", variant="primary", compact=True)
                yield Button("Close", id="editor-close", compact=True)
            yield TextArea.code_editor(self._text, language="toml", id="editor-text")
            yield Static("", id="editor-status", markup=False)

    def on_mount(self) -> None:
        self.query_one("#editor-text", TextArea).focus()

    @property
    def text(self) -> str:
        return self.query_one("#editor-text", TextArea).text

    @property
    def modified(self) -> bool:
        return self.text != self._saved_text

    def _status(self, message: str, *, error: bool) -> None:
        status = self.query_one("#editor-status", Static)
        status.update(message)
        status.set_class(error, "-error")
        status.set_class(not error, "-ok")

    def action_save(self) -> None:
        raw = self.query_one("#editor-path", Input).value.strip()
        if not raw:
            self._status("Not saved: give the file a name (e.g. rules.toml)", error=True)
            self.query_one("#editor-path", Input).focus()
            return
        path = Path(raw).expanduser()
        text = self.text
        from backends.validation.rules import RuleError

        try:
            rules = check_rules_text(text, str(path))
        except RuleError as exc:
            self._status(f"Not saved — {exc}", error=True)
            self.notify(str(exc), title="Invalid rules", severity="error", markup=False)
            line = error_line(str(exc))
            if line is not None:
                area = self.query_one("#editor-text", TextArea)
                area.move_cursor((max(line - 1, 0), 0))
                area.focus()
            return
        if path.exists() and str(path) != str(Path(self._opened).expanduser()):
            question = f"{path} exists. Replace it with these {len(rules)} rules?"

            def answered(confirmed: bool | None) -> None:
                if confirmed:
                    self._write(path, text, rules)

            self.app.push_screen(ConfirmScreen(question, confirm_label="Replace"), answered)
            return
        self._write(path, text, rules)

    def _write(self, path: Path, text: str, rules: RuleSet) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            message = f"cannot write {path}: {exc.strerror or exc}"
            self._status(f"Not saved — {message}", error=True)
            self.notify(message, title="Save failed", severity="error", markup=False)
            return
        self._opened = str(path)
        self._saved_text = text
        self._saved_path = path
        self._status(f"Saved {path}: {len(rules)} rules ({rules.name})", error=False)

    def action_close(self) -> None:
        if not self.modified:
            self.dismiss(self._saved_path)
            return

        def answered(confirmed: bool | None) -> None:
            if confirmed:
                self.dismiss(self._saved_path)

        self.app.push_screen(
            ConfirmScreen("Discard the unsaved edits?", confirm_label="Discard"), answered
        )

    @on(Button.Pressed, "#editor-save")
    def _save_pressed(self) -> None:
        self.action_save()

    @on(Button.Pressed, "#editor-close")
    def _close_pressed(self) -> None:
        self.action_close()

    @on(Input.Submitted, "#editor-path")
    def _path_submitted(self) -> None:
        self.action_save()
