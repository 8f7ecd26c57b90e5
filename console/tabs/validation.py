"""5 Validation: bounded validation of a stream — source, rules, run with progress, report.

The engine is `backends.validation` (a client library: it reads Kafka, the retail
memory sink over HTTP, Redis or a file; it serves nothing). Choices worth knowing:

- The run happens in a *thread* worker with its own event loop: decoding and the
  polars rule pass are CPU work that would hold the UI loop if they ran on it.
  `on_progress` only stores the latest `Progress`; a 10 Hz timer draws it, so a fast
  source costs at most ten redraws a second. Cancel (`x`, or the Run button while
  running) cancels the run's task on its own loop; the source closes its consumer.
- The engine (polars, aiokafka, ...) is imported off the UI loop: a thread worker
  preloads it when the tab mounts, and this module imports it only inside functions,
  so the console still starts fast.
- Source kinds: `memory` (the embedded retail generator's memory sink, read over the
  retail API — the default, so a fresh console validates something with no Kafka),
  `kafka` (prefilled `kafka://{bootstrap_servers}/{topic}` from the config, and the
  default kind when Kafka is configured), `redis` (prefilled from `redis.url` and
  `redis.retail_stream`), `file` (a JSONL/NDJSON/JSON path). Kafka security settings
  of the config (SSL/SASL) apply to every kafka:// source. Empty *max* = no limit
  (the source still stops at what existed when the run started).
- Durations and rates come from the injected clock, so a `ManualClock` makes the
  finished report (and the snapshot) identical run after run.
- Every finished report is stored in a bounded folder beside the UI state file
  (`console/validation_history.py`); `h` lists them, opens one, compares two.
- Source errors (unreachable broker, missing file, bad rules) are toasts with the
  engine's message, never a traceback. Read-only consoles may validate: it only reads.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Button, DataTable, Input, Label, ProgressBar, Select, Static
from textual.worker import Worker

from backends.common.clock import Clock
from backends.endpoints import Endpoints
from backends.settings import Settings
from console.screens.rules_editor import RulesEditorScreen
from console.screens.validation import (
    ExportScreen,
    HistoryScreen,
    SamplesScreen,
    render_report,
)
from console.state import StateStore
from console.tabs.base import PaletteCommand, TabContent
from console.validation_history import HistoryEntry, ReportHistory, reports_dir
from console.widgets import formatting as fmt
from console.widgets.validation_report import ReportView, RulesTable, compact_rate

if TYPE_CHECKING:
    from backends.validation.report import ValidationReport
    from backends.validation.runner import Progress

KINDS: tuple[str, ...] = ("memory", "kafka", "redis", "file")
PLACEHOLDERS: dict[str, str] = {
    "memory": "memory",
    "kafka": "kafka://localhost:9092/retail-events",
    "redis": "redis://localhost:6379/0?stream=retail-events",
    "file": "events.jsonl",
}
BUILTIN = "builtin"
DEFAULT_MAX = 100_000
REDRAW_SECONDS = 0.1
"""Progress redraws at most ten times a second (DESIGN.md: 10-20)."""


def default_specs(settings: Settings) -> dict[str, str]:
    """What each source kind starts with: the configured Kafka topic and Redis stream."""
    specs = dict.fromkeys(KINDS, "")
    specs["memory"] = "memory"
    if settings.kafka.bootstrap_servers:
        specs["kafka"] = f"kafka://{settings.kafka.bootstrap_servers}/{settings.kafka.topic}"
    if settings.redis.url:
        parts = urlsplit(settings.redis.url)
        query = f"{parts.query}&" if parts.query else ""
        specs["redis"] = urlunsplit(
            (*parts[:3], f"{query}stream={settings.redis.retail_stream}", "")
        )
    return specs


def kafka_options(settings: Settings) -> dict[str, Any]:
    """The config's Kafka security, for sources on a secured cluster (PLAINTEXT adds nothing)."""
    k = settings.kafka
    options: dict[str, Any] = {}
    if k.security_protocol != "PLAINTEXT":
        options["security_protocol"] = k.security_protocol
    for name in ("sasl_mechanism", "sasl_username", "sasl_password"):
        if getattr(k, name) is not None:
            options[name] = getattr(k, name)
    return options


@dataclass(frozen=True)
class RunRequest:
    source: str
    options: dict[str, Any]
    rules: Path | None
    """None = the built-in retail rule set."""
    max_messages: int | None


def _preload_engine() -> None:
    import backends.validation.runner  # noqa: F401  (polars, aiokafka: seconds, off the loop)


class ValidationTab(TabContent):
    HELP = """\
### 5 Validation

Reads a **bounded** slice of a stream, infers its schema and checks it against
a rule set, then shows the report.

- **Source**: `memory` (the embedded generator's memory sink — start a stream
  in *1 Streams* first), `kafka://host:9092/topic`, `redis://host:6379/0?stream=KEY`,
  or a `.jsonl` file. **max** bounds the messages (empty = all that exist now).
- **Rules**: the built-in retail set, or a TOML file. **E** opens the rules
  editor (ctrl+s checks and saves; start from the built-in set to write your own).
- **r** runs, **x** cancels. The bar shows messages consumed / target and the rate.
- The report: summary (per-partition counts and offsets, skipped messages),
  rules (failing first, by severity; **enter** opens a rule's failing samples
  with partition, offset and the value as JSON) and the inferred schema.
- **e** exports the report as json, md or html; **h** lists past reports —
  **enter** opens one, **space** marks two and **c** compares them.
- Works in read-only mode: validation only reads.
"""
    WIDGET_HELP: ClassVar[dict[str, str]] = {
        "src-kind": "**source kind**: memory (embedded retail sink), kafka, redis or file; "
        "picking one fills the address with its configured default.",
        "src": "**source**: `kafka://b1:9092,b2:9092/topic`, `memory`, "
        "`redis://host:6379/0?stream=KEY`, or a path to a `.jsonl` file.",
        "max": "**max**: the most messages to read (empty = everything present when the run "
        "starts).",
        "rules-kind": "**rules**: the built-in retail envelope rules, or a TOML rule file.",
        "rules-file": "**rule file**: path of a TOML rule set. **E** opens it in the editor.",
        "rules": "**Rules**: failing first, by severity. **enter** opens the samples.",
    }
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("r", "run", "Run", id="validation.run", tooltip="Validate the source"),
        Binding("x", "cancel_run", "Cancel", id="validation.cancel", tooltip="Cancel the run"),
        Binding("e", "export", "Export", id="validation.export", tooltip="json / md / html"),
        Binding("h", "history", "History", id="validation.history", tooltip="Past reports"),
        Binding("E", "edit_rules", "Rules", id="validation.edit_rules", tooltip="Rules editor"),
        Binding(
            "n", "focus_source", "Source", id="validation.source", show=False, tooltip="Source"
        ),
        Binding(
            "escape",
            "focus_primary",
            "Leave field",
            id="validation.leave_field",
            key_display="esc",
        ),
    ]

    class Finished(Message, bubble=False):
        def __init__(
            self, report: ValidationReport, entry: HistoryEntry | None, store_error: str | None
        ) -> None:
            super().__init__()
            self.report = report
            self.entry = entry
            self.store_error = store_error

    class Failed(Message, bubble=False):
        def __init__(self, title: str, message: str) -> None:
            super().__init__()
            self.title = title
            self.message = message

    class Cancelled(Message, bubble=False):
        pass

    class Exported(Message, bubble=False):
        def __init__(self, path: Path, error: str | None) -> None:
            super().__init__()
            self.path = path
            self.error = error

    def __init__(
        self, *, settings: Settings, endpoints: Endpoints, store: StateStore, clock: Clock
    ) -> None:
        super().__init__(id="validation-tab")
        self.settings = settings
        self.endpoints = endpoints
        self.clock = clock
        self.history = ReportHistory(reports_dir(store.path))
        self.specs = default_specs(settings)
        self.kind = "kafka" if settings.kafka.bootstrap_servers else "memory"
        self.running = False
        self.report: ValidationReport | None = None
        self._latest: Progress | None = None
        self._drawn: Progress | None = None
        self._ticker: Timer | None = None
        self._task: tuple[asyncio.AbstractEventLoop, asyncio.Task[Any]] | None = None
        self._cancel_requested = False

    def compose(self) -> ComposeResult:
        with Vertical(id="source-panel") as panel:
            panel.border_title = "Source"
            with Horizontal(classes="field", id="source-row"):
                yield Label("source", classes="field-label")
                yield Select(
                    [(k, k) for k in KINDS],
                    value=self.kind,
                    allow_blank=False,
                    compact=True,
                    id="src-kind",
                )
                yield Input(
                    self.specs[self.kind],
                    placeholder=PLACEHOLDERS[self.kind],
                    compact=True,
                    id="src",
                    disabled=self.kind == "memory",
                )
                yield Label("max", id="max-label")
                yield Input(
                    str(DEFAULT_MAX),
                    placeholder="all",
                    type="integer",
                    compact=True,
                    id="max",
                )
            with Horizontal(classes="field", id="rules-row"):
                yield Label("rules", classes="field-label")
                yield Select(
                    [("retail (built-in)", BUILTIN), ("TOML file", "file")],
                    value=BUILTIN,
                    allow_blank=False,
                    compact=True,
                    id="rules-kind",
                )
                yield Input(placeholder="rules.toml", compact=True, id="rules-file", disabled=True)
                yield Button("Edit", id="edit-rules", compact=True)
                yield Button("Run", id="run", variant="success", compact=True)
            with Horizontal(id="progress-row"):
                yield ProgressBar(total=100, show_eta=False, id="run-bar")
                yield Static(
                    "ready — r validates the source with the rule set",
                    id="run-status",
                    markup=False,
                )
        yield ReportView(id="report")

    def on_mount(self) -> None:
        self._preload()

    @work(thread=True, group="validation-preload", exit_on_error=False)
    def _preload(self) -> None:
        _preload_engine()

    def focus_primary(self) -> None:
        self.query_one(RulesTable).focus()

    def action_focus_source(self) -> None:
        target = "#src-kind" if self.kind == "memory" else "#src"
        self.query_one(target).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Cancel only while running, export only with a report (dimmed otherwise)."""
        if action == "cancel_run":
            return True if self.running else None
        if action == "export":
            return True if self.report is not None else None
        return super().check_action(action, parameters)

    def commands(self) -> list[PaletteCommand]:
        return [
            PaletteCommand("Validate topic…", "Pick a source and validate it", self._validate_cmd),
            PaletteCommand("Run validation", "Validate the source in the form", self.action_run),
            PaletteCommand(
                "Cancel validation", "Stop the running validation", self.action_cancel_run
            ),
            PaletteCommand(
                "Export validation report…", "Save as json / md / html", self.action_export
            ),
            PaletteCommand("Validation history", "Past reports; compare two", self.action_history),
            PaletteCommand(
                "Edit validation rules…", "The TOML rules editor", self.action_edit_rules
            ),
        ]

    def _validate_cmd(self) -> None:
        app = self.app
        if hasattr(app, "action_show_tab"):
            app.action_show_tab("validation")
        self.call_after_refresh(self.action_focus_source)

    # -- the form ----------------------------------------------------------------

    @on(Select.Changed, "#src-kind")
    def _kind_changed(self, event: Select.Changed) -> None:
        source = self.query_one("#src", Input)
        if self.kind != "memory":
            self.specs[self.kind] = source.value
        self.kind = str(event.value)
        source.value = self.specs[self.kind]
        source.placeholder = PLACEHOLDERS[self.kind]
        source.disabled = self.kind == "memory"

    @on(Select.Changed, "#rules-kind")
    def _rules_kind_changed(self, event: Select.Changed) -> None:
        field = self.query_one("#rules-file", Input)
        field.disabled = event.value == BUILTIN
        if not field.disabled and not field.value:
            field.focus()

    @on(Input.Submitted, "#src, #max, #rules-file")
    def _submitted(self) -> None:
        self.action_run()

    def _request(self) -> RunRequest | None:
        """The form as a run, or None after a toast saying what to fix."""
        spec = "memory" if self.kind == "memory" else self.query_one("#src", Input).value.strip()
        options: dict[str, Any] = {}
        if self.kind == "memory":
            if not self.endpoints.retail:
                return self._invalid("memory needs the retail backend (retail.url)")
            options["retail_url"] = self.endpoints.retail
        elif not spec:
            hint = {
                "kafka": "set kafka.bootstrap_servers in the config to prefill it",
                "redis": "set redis.url in the config to prefill it",
                "file": "a JSON-lines file, one message per line",
            }[self.kind]
            return self._invalid(
                f"enter a {self.kind} source, e.g. {PLACEHOLDERS[self.kind]} ({hint})"
            )
        elif self.kind == "kafka":
            if not spec.startswith("kafka://"):
                return self._invalid(f"a Kafka source is kafka://host:port/topic, not {spec!r}")
            options.update(kafka_options(self.settings))
        elif self.kind == "redis" and not spec.startswith(("redis://", "rediss://", "unix://")):
            return self._invalid(f"a Redis source is redis://host:port/db?stream=KEY, not {spec!r}")
        elif self.kind == "file" and not spec.startswith("file:"):
            spec = f"file:{Path(spec).expanduser()}"
        raw_max = self.query_one("#max", Input).value.strip().replace(",", "").replace("_", "")
        if raw_max and (not raw_max.isdigit() or int(raw_max) < 1):
            return self._invalid(
                f"max must be a whole number ≥ 1 (or empty for all), not {raw_max}"
            )
        rules: Path | None = None
        if self.query_one("#rules-kind", Select).value != BUILTIN:
            raw_rules = self.query_one("#rules-file", Input).value.strip()
            if not raw_rules:
                return self._invalid("pick a TOML rule file, or the built-in retail rules")
            rules = Path(raw_rules).expanduser()
        return RunRequest(spec, options, rules, int(raw_max) if raw_max else None)

    def _invalid(self, message: str) -> None:
        self.toast(message, title="Cannot validate", severity="error")
        return None

    # -- running -----------------------------------------------------------------

    def action_run(self) -> None:
        if self.running:
            self.toast("A validation is running — x cancels it", severity="warning")
            return
        request = self._request()
        if request is None:
            return
        self.running = True
        self._cancel_requested = False
        self._latest = self._drawn = None
        self.query_one("#run-bar", ProgressBar).update(total=request.max_messages, progress=0)
        self._status(f"connecting to {request.source}…")
        run = self.query_one("#run", Button)
        run.label, run.variant = "Cancel", "error"
        self._ticker = self.set_interval(REDRAW_SECONDS, self._draw_progress)
        self.refresh_bindings()
        self._run(request)

    @work(thread=True, exclusive=True, group="validation", exit_on_error=False)
    def _run(self, request: RunRequest) -> None:
        from backends.validation.rules import RuleError
        from backends.validation.runner import run_validation

        async def main() -> ValidationReport:
            task = asyncio.current_task()
            assert task is not None
            self._task = (asyncio.get_running_loop(), task)
            if self._cancel_requested:
                raise asyncio.CancelledError
            return await run_validation(
                request.source,
                rules=request.rules,
                max_messages=request.max_messages,
                on_progress=self._progress,
                clock=self.clock,
                **request.options,
            )

        try:
            report = asyncio.run(main())
        except asyncio.CancelledError:
            self.post_message(self.Cancelled())
            return
        except RuleError as exc:
            self.post_message(self.Failed("Invalid rules", str(exc)))
            return
        except Exception as exc:  # the engine's errors carry their own clear message
            self.post_message(self.Failed("Validation failed", str(exc) or type(exc).__name__))
            return
        finally:
            self._task = None
        try:
            entry, error = self.history.add(report), None
        except OSError as exc:
            entry, error = None, f"not kept in history: {exc.strerror or exc}"
        self.post_message(self.Finished(report, entry, error))

    def _progress(self, progress: Progress) -> None:
        """Called on the run's thread: only remember it; the UI timer draws it."""
        self._latest = progress

    def _draw_progress(self) -> None:
        progress = self._latest
        if progress is None or progress is self._drawn:
            return
        self._drawn = progress
        bar = self.query_one("#run-bar", ProgressBar)
        target = progress.target
        if target is not None and bar.total != target:
            bar.update(total=target)
        bar.update(progress=progress.consumed)
        of = f" / {fmt.count(target)}" if target is not None else ""
        self._status(
            f"consuming {fmt.count(progress.consumed)}{of} · {compact_rate(progress.rate)}"
        )

    def action_cancel_run(self) -> None:
        if not self.running:
            self.toast("No validation is running", severity="warning")
            return
        self._cancel_requested = True
        self._status("cancelling…")
        task = self._task
        if task is not None:
            loop, running = task
            loop.call_soon_threadsafe(running.cancel)

    @property
    def last_progress(self) -> Progress | None:
        """The progress the bar shows (the source's last report once a run has ended)."""
        return self._drawn

    def _stopped(self) -> None:
        self._draw_progress()  # the source's final count, even if it came after the last tick
        self.running = False
        if self._ticker is not None:
            self._ticker.stop()
            self._ticker = None
        run = self.query_one("#run", Button)
        run.label, run.variant = "Run", "success"
        self.refresh_bindings()

    def _status(self, text: str) -> None:
        self.query_one("#run-status", Static).update(text)

    @on(Finished)
    def _finished(self, event: Finished) -> None:
        self._stopped()
        report = event.report
        s = report.summary
        bar = self.query_one("#run-bar", ProgressBar)
        bar.update(total=max(s.messages, 1), progress=s.messages)
        verdict = (
            "all rules passed"
            if s.rules_failed == 0
            else f"{s.rules_failed}/{s.rules_total} rules failed"
        )
        self._status(
            f"done · {fmt.count(s.messages)} messages · {s.duration_seconds:.2f} s · "
            f"{compact_rate(s.messages_per_second)} · {verdict}"
        )
        self._show(report, event.entry)
        self.toast(
            f"{fmt.count(s.messages)} messages from {s.source}: {verdict}",
            title="Validation finished",
            severity="warning" if s.rules_failed else "information",
        )
        if event.store_error:
            self.toast(event.store_error, title="History", severity="warning")

    def _show(self, report: ValidationReport, entry: HistoryEntry | None) -> None:
        self.report = report
        self.query_one(ReportView).show(report, title=f"#{entry.seq}" if entry else "")
        self.refresh_bindings()

    @on(Failed)
    def _failed(self, event: Failed) -> None:
        self._stopped()
        self._status(f"failed — {event.message}")
        self.toast(event.message, title=event.title, severity="error")

    @on(Cancelled)
    def _cancelled(self) -> None:
        self._stopped()
        consumed = self._latest.consumed if self._latest else 0
        self._status(f"cancelled after {fmt.count(consumed)} messages")
        self.toast(f"Stopped after {fmt.count(consumed)} messages", title="Validation cancelled")

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        """A bug in a worker: a toast, and the tab ready to run again — never a traceback."""
        if event.worker.group == "validation-preload":
            return  # the run imports the engine again and reports the same error as a toast
        if self.toast_worker_error(event) is not None and event.worker.group == "validation":
            self._stopped()
            self._status("failed")

    def on_unmount(self) -> None:
        """Leaving (quit, terminal gone): stop the run's loop so the thread ends too."""
        if self.running:
            self.action_cancel_run()

    @on(Button.Pressed, "#edit-rules")
    def _edit_pressed(self) -> None:
        self.action_edit_rules()

    @on(Button.Pressed, "#run")
    def _run_pressed(self) -> None:
        if self.running:
            self.action_cancel_run()
        else:
            self.action_run()

    # -- the report ----------------------------------------------------------------

    @on(DataTable.RowSelected, "#rules")
    def _rule_selected(self) -> None:
        rule = self.query_one(ReportView).selected_rule()
        if rule is not None:
            self.app.push_screen(SamplesScreen(rule))

    def action_export(self) -> None:
        report = self.report
        if report is None:
            self.toast("No report to export yet — press r to run a validation", severity="warning")
            return

        def chosen(choice: tuple[str, Path] | None) -> None:
            if choice is not None:
                self._export(report, *choice)

        self.app.push_screen(ExportScreen(report), chosen)

    @work(thread=True, group="validation-export", exit_on_error=False)
    def _export(self, report: ValidationReport, fmt_name: str, path: Path) -> None:
        try:
            text = render_report(report, fmt_name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            self.post_message(self.Exported(path, f"cannot write {path}: {exc.strerror or exc}"))
        else:
            self.post_message(self.Exported(path.resolve(), None))

    @on(Exported)
    def _exported(self, event: Exported) -> None:
        if event.error:
            self.toast(event.error, title="Export failed", severity="error")
        else:
            self.toast(str(event.path), title="Report exported")

    def action_history(self) -> None:
        def chosen(entry: HistoryEntry | None) -> None:
            if entry is not None:
                self._show(entry.report, entry)
                s = entry.report.summary
                self._status(f"report #{entry.seq} from history · {s.source} · {s.started_at}")

        self.app.push_screen(HistoryScreen(self.history), chosen)

    # -- the rules editor ----------------------------------------------------------

    def action_edit_rules(self) -> None:
        path = ""
        if self.query_one("#rules-kind", Select).value != BUILTIN:
            path = self.query_one("#rules-file", Input).value.strip()
        self._open_editor(path)

    @work(thread=True, exclusive=True, group="validation-editor", exit_on_error=False)
    def _open_editor(self, path: str) -> None:
        """Reading the file and rendering the built-in set import the engine: off the loop."""
        from backends.validation.runner import resolve_rules
        from console.screens.rules_editor import ruleset_to_toml

        text, origin = "", "built-in retail rules — save as a file to use your edits"
        if path:
            file = Path(path).expanduser()
            try:
                text, origin = file.read_text(encoding="utf-8"), "file"
            except FileNotFoundError:
                origin = f"new file {file} (starting from the built-in rules)"
            except OSError as exc:
                message = f"cannot read {file}: {exc.strerror or exc}"
                self.app.call_from_thread(
                    self.toast, message, title="Rules editor", severity="error"
                )
                return
        if not text:
            text = ruleset_to_toml(resolve_rules(None))
        editor = RulesEditorScreen(path=path or "rules.toml", text=text, origin=origin)
        self.app.call_from_thread(self.app.push_screen, editor, self._editor_closed)

    def _editor_closed(self, saved: Path | None) -> None:
        if saved is None:
            return
        self.query_one("#rules-kind", Select).value = "file"
        field = self.query_one("#rules-file", Input)
        field.disabled = False
        field.value = str(saved)
        self.toast(f"Runs now use {saved}", title="Rules saved")
