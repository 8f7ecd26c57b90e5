"""Modals of the Validation tab: a rule's samples, export, past reports and their comparison.

- Samples: one row per failing sample (partition, offset, value); only the selected
  sample's value is rendered as pretty JSON.
- Export: format (json / md / html) and a path; the tab writes the file in a worker.
- History: the stored reports, newest first, loaded in a thread worker. `enter` opens
  one in the tab, `space` marks up to two, `c` compares the two marked (or the one
  marked with the highlighted row).
- Compare: rule by rule, A (the older) against B — failures, their change, and whether
  a rule started or stopped failing, changes first.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.json import JSON
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Label, Select, Static

from console.validation_history import HistoryEntry, ReportHistory, compare_reports
from console.widgets import formatting as fmt
from console.widgets.validation_report import SEVERITY_STYLE, percent_text, short_value, where

if TYPE_CHECKING:  # the engine imports polars: the console loads it off the UI loop
    from backends.validation.report import RuleResult, ValidationReport

FORMATS: dict[str, str] = {"json": "json", "md": "md", "html": "html"}


def render_report(report: ValidationReport, fmt_name: str) -> str:
    if fmt_name == "json":
        return report.to_json()
    if fmt_name == "md":
        return report.to_markdown()
    if fmt_name == "html":
        return report.to_html()
    raise ValueError(f"unknown format {fmt_name!r}; one of json, md, html")


def default_export_name(report: ValidationReport, fmt_name: str) -> str:
    """`validation-memory-20240115T103000.md`: the source and start time, filesystem-safe."""
    source = "".join(c if c.isalnum() else "-" for c in report.summary.source.split("/")[-1])
    stamp = "".join(c for c in report.summary.started_at if c.isdigit() or c == "T")[:15]
    return f"validation-{source.strip('-') or 'report'}-{stamp}.{fmt_name}"


class SamplesScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("escape,q", "dismiss", "Close", id="samples.close", key_display="esc"),
    ]

    def __init__(self, rule: RuleResult) -> None:
        super().__init__()
        self.rule = rule

    def compose(self) -> ComposeResult:
        rule = self.rule
        with Vertical(id="samples-dialog") as dialog:
            dialog.border_title = f"{rule.severity} · {rule.name}"
            dialog.border_subtitle = "↑↓ pick a sample · esc closes"
            facts = Text()
            verdict = "passed" if rule.passed else "FAILED"
            facts.append(
                f"{verdict}: {fmt.count(rule.failed)} of {fmt.count(rule.checked)} checked "
                f"({percent_text(rule.percent)}), tolerance mostly={rule.mostly:g}\n",
                style="bold red" if not rule.passed else "green",
            )
            facts.append(f"rule      {rule.rule}" + (f" on {rule.column}" if rule.column else ""))
            if rule.params:
                facts.append(f"\nparams    {short_value(rule.params, 200)}")
            if rule.observed:
                facts.append(f"\nobserved  {rule.observed}")
            if rule.description:
                facts.append(f"\n{rule.description}", style="dim")
            yield Static(facts, id="samples-facts")
            table: DataTable[Text] = DataTable(id="samples", cursor_type="row")
            table.add_column("partition", key="partition", width=9)
            table.add_column("offset", key="offset", width=10)
            table.add_column("value", key="value")
            yield table
            yield Static(
                "No samples: this rule judges the whole batch (see observed above)"
                if not rule.samples
                else "",
                id="samples-empty",
                markup=False,
            )
            with VerticalScroll(id="sample-value") as value:
                value.border_title = "value"
                yield Static("", id="sample-json")

    def on_mount(self) -> None:
        table = self.query_one("#samples", DataTable)
        for sample in self.rule.samples:
            table.add_row(
                Text("-" if sample.partition is None else str(sample.partition)),
                Text("-" if sample.offset is None else str(sample.offset)),
                Text(short_value(sample.value, 200)),
            )
        self.query_one("#samples-empty").display = not self.rule.samples
        self.query_one("#sample-value").display = bool(self.rule.samples)
        table.focus()
        self._show(0)

    def _show(self, index: int) -> None:
        if not 0 <= index < len(self.rule.samples):
            return
        sample = self.rule.samples[index]
        self.query_one("#sample-value").border_title = f"value at {where(sample)}"
        self.query_one("#sample-json", Static).update(
            JSON.from_data(sample.value, indent=2, sort_keys=False, default=str)
        )

    @on(DataTable.RowHighlighted, "#samples")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show(event.cursor_row)


class ExportScreen(ModalScreen[tuple[str, Path] | None]):
    """Asks for a format and a path; returns (format, path) for the tab to write."""

    BINDINGS: ClassVar[list[Binding]] = [
        Binding("escape", "dismiss", "Cancel", id="export.cancel", key_display="esc"),
    ]

    def __init__(self, report: ValidationReport) -> None:
        super().__init__()
        self.report = report

    def compose(self) -> ComposeResult:
        with Vertical(id="export-dialog") as dialog:
            dialog.border_title = "Export report"
            dialog.border_subtitle = "enter saves · esc cancels"
            with Horizontal(classes="field"):
                yield Label("format", classes="field-label")
                yield Select(
                    [("json", "json"), ("markdown", "md"), ("html", "html")],
                    value="json",
                    allow_blank=False,
                    compact=True,
                    id="export-format",
                )
            with Horizontal(classes="field"):
                yield Label("file", classes="field-label")
                yield Input(
                    default_export_name(self.report, "json"), id="export-path", compact=True
                )
            with Horizontal(id="export-buttons"):
                yield Button("Save", id="export-save", variant="primary", compact=True)
                yield Button("Cancel", id="export-cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#export-path", Input).focus()

    @on(Select.Changed, "#export-format")
    def _format_changed(self, event: Select.Changed) -> None:
        """Keep the extension in step with the format unless the user chose another name."""
        path = self.query_one("#export-path", Input)
        current = Path(path.value)
        if current.suffix.lstrip(".") in FORMATS:
            path.value = str(current.with_suffix(f".{event.value}"))

    def _submit(self) -> None:
        raw = self.query_one("#export-path", Input).value.strip()
        if not raw:
            self.notify("Give the report a file name", title="Export", severity="error")
            return
        self.dismiss((str(self.query_one("#export-format", Select).value), Path(raw).expanduser()))

    @on(Input.Submitted, "#export-path")
    def _path_submitted(self) -> None:
        self._submit()

    @on(Button.Pressed, "#export-save")
    def _save_pressed(self) -> None:
        self._submit()

    @on(Button.Pressed, "#export-cancel")
    def _cancel_pressed(self) -> None:
        self.dismiss(None)


class HistoryScreen(ModalScreen[HistoryEntry | None]):
    """Past reports; dismisses with the one to open, or None."""

    BINDINGS: ClassVar[list[Binding]] = [
        Binding("enter", "open", "Open", id="history.open", tooltip="Show it in the tab"),
        Binding("space", "mark", "Mark", id="history.mark", tooltip="Mark for compare (two)"),
        Binding("c", "compare", "Compare", id="history.compare", tooltip="Diff the two marked"),
        Binding("escape,q", "dismiss", "Close", id="history.close", key_display="esc"),
    ]

    class Loaded(Message):
        def __init__(self, entries: list[HistoryEntry], error: str | None) -> None:
            super().__init__()
            self.entries = entries
            self.error = error

    def __init__(self, history: ReportHistory) -> None:
        super().__init__()
        self.history = history
        self.entries: list[HistoryEntry] = []
        self.marked: list[str] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="history-dialog") as dialog:
            dialog.border_title = "Past reports"
            dialog.border_subtitle = "enter open · space mark · c compare two · esc close"
            table: DataTable[Text] = DataTable(id="history", cursor_type="row")
            table.add_column("", key="mark", width=1)
            table.add_column("#", key="seq", width=4)
            table.add_column("started", key="started", width=19)
            table.add_column("source", key="source")
            table.add_column("messages", key="messages", width=9)
            table.add_column("failed", key="failed", width=7)
            yield table
            yield Static("Loading…", id="history-empty", markup=False)

    def on_mount(self) -> None:
        self.query_one("#history", DataTable).focus()
        self._load()

    @work(thread=True, exclusive=True, group="history-load", exit_on_error=False)
    def _load(self) -> None:
        try:
            entries, error = self.history.entries(), None
        except OSError as exc:
            entries, error = [], f"cannot read {self.history.directory}: {exc.strerror or exc}"
        self.post_message(self.Loaded(entries, error))

    @on(Loaded)
    def _loaded(self, event: Loaded) -> None:
        self.entries = event.entries
        table = self.query_one("#history", DataTable)
        for entry in event.entries:
            s = entry.report.summary
            failed = Text(
                f"{s.rules_failed}/{s.rules_total}", style="red" if s.rules_failed else "green"
            )
            table.add_row(
                Text(""),
                Text(str(entry.seq)),
                Text(s.started_at.replace("T", " ")[:19]),
                Text(s.source),
                Text(fmt.count(s.messages)),
                failed,
                key=entry.id,
            )
        empty = self.query_one("#history-empty", Static)
        empty.update(event.error or "No reports yet — run a validation (r) first")
        empty.display = not event.entries

    def _current(self) -> HistoryEntry | None:
        table = self.query_one("#history", DataTable)
        if not self.entries or not 0 <= table.cursor_row < len(self.entries):
            return None
        return self.entries[table.cursor_row]

    def action_open(self) -> None:
        entry = self._current()
        if entry is not None:
            self.dismiss(entry)

    def action_mark(self) -> None:
        entry = self._current()
        if entry is None:
            return
        table = self.query_one("#history", DataTable)
        if entry.id in self.marked:
            self.marked.remove(entry.id)
        else:
            self.marked.append(entry.id)
            if len(self.marked) > 2:  # keep the two most recently marked
                dropped = self.marked.pop(0)
                table.update_cell(dropped, "mark", Text(""))
        table.update_cell(entry.id, "mark", Text("●" if entry.id in self.marked else ""))

    def action_compare(self) -> None:
        picked = list(self.marked)
        current = self._current()
        if len(picked) == 1 and current is not None and current.id not in picked:
            picked.append(current.id)
        if len(picked) != 2:
            self.notify(
                "Mark two reports with space (or one, then highlight the other)",
                title="Compare",
                severity="warning",
            )
            return
        by_id = {e.id: e for e in self.entries}
        a, b = sorted((by_id[i] for i in picked), key=lambda e: e.seq)
        self.app.push_screen(CompareScreen(a, b))

    @on(DataTable.RowSelected, "#history")
    def _selected(self) -> None:
        self.action_open()


class CompareScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("escape,q", "dismiss", "Close", id="compare.close", key_display="esc"),
    ]

    def __init__(self, a: HistoryEntry, b: HistoryEntry) -> None:
        super().__init__()
        self.a = a
        self.b = b
        self.diffs = compare_reports(a.report, b.report)

    def compose(self) -> ComposeResult:
        with Vertical(id="compare-dialog") as dialog:
            dialog.border_title = f"Compare #{self.a.seq} (A) → #{self.b.seq} (B)"
            dialog.border_subtitle = "esc closes"
            head = Text()
            for tag, entry in (("A", self.a), ("B", self.b)):
                s = entry.report.summary
                head.append(f"{tag}  ", style="bold")
                head.append(
                    f"#{entry.seq} {s.started_at.replace('T', ' ')[:19]}  {s.source}  "
                    f"{fmt.count(s.messages)} messages · {s.rules_failed}/{s.rules_total} "
                    f"failed · {fmt.count(s.skipped_count)} skipped\n"
                )
            head.rstrip()
            yield Static(head, id="compare-head")
            table: DataTable[Text] = DataTable(id="compare", cursor_type="row")
            table.add_column("change", key="change", width=11)
            table.add_column("severity", key="severity", width=8)
            table.add_column("rule", key="rule")
            table.add_column("A", key="a", width=9)
            table.add_column("B", key="b", width=9)
            table.add_column("Δ", key="delta", width=9)
            yield table

    def on_mount(self) -> None:
        table = self.query_one("#compare", DataTable)
        styles = {"now failing": "bold red", "worse": "red", "fixed": "green", "better": "green"}
        for d in self.diffs:
            delta = d.delta
            table.add_row(
                Text(d.change, style=styles.get(d.change, "dim")),
                Text(d.severity, style=SEVERITY_STYLE.get(d.severity, "")),
                Text(d.name),
                Text("—" if d.failed_a is None else fmt.count(d.failed_a)),
                Text("—" if d.failed_b is None else fmt.count(d.failed_b)),
                Text("" if not delta else f"{delta:+,}"),
            )
        table.focus()
