"""5 Validation: pilot flows and snapshots against the real embedded backend and engine.

The memory source reads the embedded generator's memory sink over the retail API,
so the flows start a stream with the `RetailClient` first. The snapshots validate
a JSONL file made of the sink's events plus a few broken lines (a relative path in
a temporary working directory, so the report names the same source every time);
with the shared `ManualClock`, the seeded generator and fixed sizes, the finished
report is the same on every run.
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import httpx
import orjson
import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Markdown, ProgressBar, Select, Static, TextArea

from backends.common.clock import ManualClock
from backends.endpoints import Endpoints
from backends.retail.client import RetailClient
from backends.retail.models import StartRequest
from backends.settings import Settings, UISettings
from backends.validation.retail_rules import retail_rules
from console.app import StreamopsApp
from console.screens.help import HelpScreen
from console.screens.rules_editor import RulesEditorScreen
from console.screens.validation import CompareScreen, ExportScreen, HistoryScreen, SamplesScreen
from console.tabs.validation import ValidationTab
from console.widgets.validation_report import RulesTable
from tests.ui.helpers import Recorder, stop_blinking, wait_jobs_dot, wait_until

SIZE = (120, 40)
STRICT_RULES = """\
name = "strict"

[[rules]]
name = "only receipts"
type = "allowed_values"
column = "event_type"
values = ["receipt_created"]
severity = "critical"

[[rules]]
name = "trace ids present"
type = "not_null"
column = "trace_id"

[[rules]]
name = "small totals"
type = "range"
column = "payload.total"
max = 50
severity = "medium"
"""


async def stream(endpoints: Endpoints, events: int) -> None:
    """One burst of `events` into the memory sink (the next burst is an hour away)."""
    async with RetailClient(endpoints.retail or "") as client:
        await client.start(StartRequest(emit_interval_ms=3_600_000, burst=events))
        deadline = time.monotonic() + 20
        while (await client.statistics()).events_sent_successfully < events:
            assert time.monotonic() < deadline, "the burst never completed"
            await asyncio.sleep(0.05)


async def open_tab(pilot: Pilot[None]) -> ValidationTab:
    stop_blinking(pilot)
    await pilot.press("5")
    tab = pilot.app.query_one(ValidationTab)
    await wait_until(pilot, lambda: tab.query_one(RulesTable).has_focus, "the rules table focus")
    return tab


async def set_form(
    pilot: Pilot[None],
    tab: ValidationTab,
    *,
    kind: str | None = None,
    source: str | None = None,
    max_messages: str | None = None,
    rules: str | None = None,
) -> None:
    if kind is not None:
        tab.query_one("#src-kind", Select).value = kind
        await pilot.pause()  # picking a kind fills the address: let it, then overwrite it
    if source is not None:
        tab.query_one("#src", Input).value = source
    if max_messages is not None:
        tab.query_one("#max", Input).value = max_messages
    if rules is not None:
        tab.query_one("#rules-kind", Select).value = "file" if rules else "builtin"
        await pilot.pause()
        tab.query_one("#rules-file", Input).value = rules


ENDINGS = (ValidationTab.Finished, ValidationTab.Failed, ValidationTab.Cancelled)


async def run(
    pilot: Pilot[None], tab: ValidationTab, recorder: Recorder, seconds: float = 30.0
) -> None:
    """Press r and wait for the run to end (finished, failed or cancelled)."""
    ended = len(recorder.of(ENDINGS))
    tab.query_one(RulesTable).focus()
    await pilot.pause()
    await pilot.press("r")
    await wait_until(
        pilot,
        lambda: len(recorder.of(ENDINGS)) > ended and not tab.running,
        "the run to end",
        seconds,
    )


def status(tab: ValidationTab) -> str:
    return str(tab.query_one("#run-status", Static).render())


def rows(table: DataTable[object]) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


async def test_validate_the_memory_sink_drill_compare_and_export(
    app: StreamopsApp, backend: Endpoints, tmp_path: Path
) -> None:
    recorder = Recorder()
    async with app.run_test(size=SIZE, message_hook=recorder) as pilot:
        await stream(backend, 500)
        tab = await open_tab(pilot)
        assert tab.query_one("#src-kind", Select).value == "memory"  # no Kafka configured

        # 1. The built-in rules over 400 of the 500 events: the bar reaches the target.
        await set_form(pilot, tab, max_messages="400")
        await run(pilot, tab, recorder)
        report = tab.report
        assert report is not None, recorder.toasts()
        assert report.summary.messages == 400
        assert tab.last_progress is not None
        assert (tab.last_progress.consumed, tab.last_progress.target) == (400, 400)
        bar = tab.query_one("#run-bar", ProgressBar)
        assert bar.progress == bar.total == 400
        assert status(tab).startswith("done · 400 messages")
        assert tab.query_one(RulesTable).row_count == len(report.rules) == len(retail_rules())
        summary = str(tab.query_one("#summary", Static).render())
        assert "400 of max 400" in summary and "p0" in summary
        assert any(t.startswith("Validation finished: 400 messages") for t in recorder.toasts())

        # 2. A stricter rule file: failing rules come first, most severe first.
        rules_file = tmp_path / "strict.toml"
        rules_file.write_text(STRICT_RULES)
        await set_form(pilot, tab, rules=str(rules_file))
        await run(pilot, tab, recorder)
        strict = tab.report
        assert strict is not None and strict is not report
        table = tab.query_one(RulesTable)
        first_row = rows(table)[0]
        assert first_row[:2] == ["critical", "only receipts"]
        only = next(r for r in strict.rules if r.name == "only receipts")
        assert not only.passed and only.failed > 0 and only.samples
        assert first_row[2] == f"{only.failed:,}"
        assert rows(table)[-1][1] == "trace ids present"  # passing rules last

        # Drill into the samples: partition, offset and the value as JSON.
        table.focus()
        table.move_cursor(row=0)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, SamplesScreen), "the samples")
        samples = app.screen.query_one("#samples", DataTable)
        assert samples.row_count == len(only.samples)
        sample = only.samples[0]
        assert rows(samples)[0][:2] == [str(sample.partition), str(sample.offset)]
        shown = str(app.screen.query_one("#sample-json", Static).render())
        assert str(sample.value) in shown and sample.value != "receipt_created"
        await pilot.press("escape")

        # 3. The same rules over fewer messages, then compare the last two reports.
        await set_form(pilot, tab, max_messages="200")
        await run(pilot, tab, recorder)
        fewer = tab.report
        assert fewer is not None and fewer.summary.messages == 200
        await pilot.press("h")
        await wait_until(pilot, lambda: isinstance(app.screen, HistoryScreen), "the history")
        history = app.screen
        assert isinstance(history, HistoryScreen)
        await wait_until(pilot, lambda: len(history.entries) == 3, "three stored reports")
        assert [e.seq for e in history.entries] == [3, 2, 1]
        await pilot.press("space", "down", "space", "c")
        await wait_until(pilot, lambda: isinstance(app.screen, CompareScreen), "the comparison")
        compare = app.screen
        assert isinstance(compare, CompareScreen)
        assert (compare.a.seq, compare.b.seq) == (2, 3)
        diff = {d.name: d for d in compare.diffs}
        fewer_only = next(r for r in fewer.rules if r.name == "only receipts")
        assert diff["only receipts"].failed_a == only.failed
        assert diff["only receipts"].failed_b == fewer_only.failed < only.failed
        assert diff["only receipts"].change == "better"
        shown_rows = rows(compare.query_one("#compare", DataTable))
        assert shown_rows[0][:3] == ["better", "critical", "only receipts"]
        await pilot.press("escape", "escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, HistoryScreen), "closing")

        # 4. Export the report shown as Markdown.
        target = tmp_path / "out" / "report.md"
        await pilot.press("e")
        await wait_until(pilot, lambda: isinstance(app.screen, ExportScreen), "the export form")
        app.screen.query_one("#export-format", Select).value = "md"
        await pilot.pause()
        app.screen.query_one("#export-path", Input).value = str(target)
        await pilot.press("enter")
        await wait_until(pilot, target.exists, "the exported file")
        text = target.read_text()
        assert text.startswith("# Validation report: memory") and "only receipts" in text
        await wait_until(
            pilot,
            lambda: any(t.startswith("Report exported:") for t in recorder.toasts()),
            "the export toast",
        )


async def test_the_rules_editor_checks_before_saving(app: StreamopsApp, tmp_path: Path) -> None:
    recorder = Recorder()
    async with app.run_test(size=SIZE, message_hook=recorder) as pilot:
        tab = await open_tab(pilot)
        await pilot.press("E")
        await wait_until(pilot, lambda: isinstance(app.screen, RulesEditorScreen), "the editor")
        editor = app.screen
        assert isinstance(editor, RulesEditorScreen)
        area = editor.query_one("#editor-text", TextArea)
        assert area.language == "toml"
        assert area.text.startswith('name = "retail (built-in)"')  # the built-in set as TOML
        path = tmp_path / "mine.toml"
        editor.query_one("#editor-path", Input).value = str(path)
        shown = editor.query_one("#editor-status", Static)

        area.text = 'name = "mine"\n[[rules]]\ntype = \n'
        await pilot.press("ctrl+s")
        assert shown.has_class("-error") and "invalid TOML" in str(shown.render())
        assert area.cursor_location[0] == 2  # on the offending line
        assert not path.exists()

        area.text = '[[rules]]\ntype = "range"\ncolumn = "payload.total"\n'
        await pilot.press("ctrl+s")
        assert "range needs min and/or max" in str(shown.render())
        assert not path.exists()
        assert any("Invalid rules:" in t for t in recorder.toasts())

        area.text = STRICT_RULES
        await pilot.press("ctrl+s")
        assert shown.has_class("-ok") and "3 rules (strict)" in str(shown.render())
        assert path.read_text() == STRICT_RULES

        await pilot.press("escape")  # leaves the text
        await pilot.press("escape")  # closes
        await wait_until(pilot, lambda: app.screen is app.main, "the editor to close")
        assert tab.query_one("#rules-kind", Select).value == "file"
        assert tab.query_one("#rules-file", Input).value == str(path)


async def test_errors_are_toasts_and_a_run_can_be_cancelled(
    app: StreamopsApp, tmp_path: Path
) -> None:
    recorder = Recorder()
    async with app.run_test(size=SIZE, message_hook=recorder) as pilot:
        tab = await open_tab(pilot)

        bad_rules = tmp_path / "bad.toml"
        bad_rules.write_text('[[rules]]\ntype = "regex"\ncolumn = "trace_id"\n')
        await set_form(pilot, tab, rules=str(bad_rules))
        await run(pilot, tab, recorder)
        assert tab.report is None
        toast = recorder.toasts()[-1]
        assert toast.startswith("Invalid rules:") and "regex needs pattern" in toast
        assert str(bad_rules) in toast and status(tab).startswith("failed — ")

        await set_form(pilot, tab, kind="file", source=str(tmp_path / "missing.jsonl"), rules="")
        await run(pilot, tab, recorder)
        toast = recorder.toasts()[-1]
        assert toast.startswith("Validation failed:") and "missing.jsonl" in toast

        # Nothing listens on port 1: refused at once, an error toast with the engine's message.
        await set_form(pilot, tab, kind="kafka", source="kafka://127.0.0.1:1/retail-events")
        await run(pilot, tab, recorder)
        toast = recorder.toasts()[-1]
        assert toast.startswith("Validation failed:") and "127.0.0.1:1" in toast
        assert tab.report is None

        # A broker that accepts connections and never answers: the run waits, x cancels it.
        with socket.create_server(("127.0.0.1", 0)) as silent:
            port = silent.getsockname()[1]
            await set_form(pilot, tab, source=f"kafka://127.0.0.1:{port}/retail-events")
            tab.query_one(RulesTable).focus()
            await pilot.press("r")
            assert tab.running and status(tab).startswith(f"connecting to kafka://127.0.0.1:{port}")
            await pilot.pause(0.5)
            assert tab.running
            await pilot.press("x")
            await wait_until(pilot, lambda: not tab.running, "the cancellation", 5)
        assert recorder.toasts()[-1] == "Validation cancelled: Stopped after 0 messages"
        assert status(tab) == "cancelled after 0 messages"


async def test_a_form_mistake_is_said_before_running(app: StreamopsApp) -> None:
    recorder = Recorder()
    async with app.run_test(size=SIZE, message_hook=recorder) as pilot:
        tab = await open_tab(pilot)
        await set_form(pilot, tab, kind="kafka")
        assert tab.query_one("#src", Input).value == ""  # kafka.bootstrap_servers is not set
        await pilot.press("r")
        assert not tab.running
        assert "kafka.bootstrap_servers" in recorder.toasts()[-1]
        await set_form(pilot, tab, kind="memory", max_messages="ten")
        await pilot.press("r")
        assert not tab.running and "max must be a whole number" in recorder.toasts()[-1]


# -- snapshots ---------------------------------------------------------------------


BROKEN_LINES = [
    b'{"event_type": "receipt_created", "payload": {"total": -5.5}',  # cut short: skipped
    orjson.dumps(
        {
            "event_type": "receipt_created",
            "trace_id": None,
            "ingest_timestamp": "yesterday",
            "payload": {"store_id": 1, "total": -12.5},
        }
    ),
    orjson.dumps({"event_type": "mystery_event", "payload": {}}),
]


async def settle_report(pilot: Pilot[None], backend: Endpoints, workdir: Path) -> None:
    await stream(backend, 300)
    async with httpx.AsyncClient() as client:
        sink = await client.get(f"{backend.retail}/stream/sink/events", params={"limit": 1000})
    sink.raise_for_status()
    (workdir / "events.jsonl").write_bytes(sink.content + b"\n".join(BROKEN_LINES) + b"\n")
    tab = await open_tab(pilot)
    await set_form(pilot, tab, kind="file", source="events.jsonl")
    await pilot.press("r")
    await wait_until(pilot, lambda: tab.report is not None and not tab.running, "the report")
    assert tab.report is not None
    assert (tab.report.summary.messages, tab.report.summary.skipped_count) == (303, 1)
    pilot.app.clear_notifications()
    tab.query_one(RulesTable).focus()
    await wait_jobs_dot(pilot)
    await pilot.pause(0.2)


@pytest.mark.parametrize("size", [(120, 40), (80, 24)], ids=["120x40", "80x24"])
def test_validation_tab_with_a_report(  # type: ignore[no-untyped-def]
    snap_compare,
    app: StreamopsApp,
    backend: Endpoints,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    size: tuple[int, int],
) -> None:
    monkeypatch.chdir(tmp_path)

    async def run_before(pilot: Pilot[None]) -> None:
        await settle_report(pilot, backend, tmp_path)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


async def test_read_only_consoles_validate_and_the_tab_has_help(
    settings: Settings, backend: Endpoints, clock: ManualClock, tmp_path: Path
) -> None:
    """Validation only reads, so `--read-only` keeps it; `?` and the palette know the tab."""
    events = tmp_path / "events.jsonl"
    events.write_bytes(b'{"event_type": "receipt_created", "payload": {"total": 3.5}}\n' * 5)
    read_only = settings.model_copy(update={"ui": UISettings(read_only=True, refresh_ms=250)})
    app = StreamopsApp(read_only, backend, clock=clock)
    recorder = Recorder()
    async with app.run_test(size=SIZE, message_hook=recorder) as pilot:
        tab = await open_tab(pilot)
        await set_form(pilot, tab, kind="file", source=str(events), max_messages="")
        await run(pilot, tab, recorder)
        assert tab.report is not None and tab.report.summary.messages == 5
        assert tab.report.summary.max_messages is None
        names = {command.name for command in app.palette_commands()}
        assert {"Validate topic…", "Run validation", "Validation history"} <= names
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        help_text = app.screen.query_one("#help-text", Markdown).source
        assert "**Rules**: failing first" in help_text and "5 Validation" in help_text
