"""1 Streams: drive the retail event generator and watch it run.

One polling worker fetches config, status, statistics, health and recent events
concurrently each `ui.refresh_ms` and posts them as one `Polled` message; the
handler redraws everything in that single batch. Recent events are fetched and
redrawn only while live (space pauses them so a row can be inspected), and only
the selected event is ever rendered as JSON.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.markup import escape
from textual.message import Message
from textual.validation import Integer
from textual.widgets import Button, DataTable, Input, Label, Select, SelectionList, Static

from backends.common.clock import Clock
from backends.retail.client import RetailApiError, RetailClient
from backends.retail.models import (
    ConfigResponse,
    ConfigUpdate,
    HealthResponse,
    RecentEventsResponse,
    SinkKind,
    StartRequest,
    StatisticsResponse,
    StatusResponse,
)
from backends.settings import UISettings
from console.screens.event_detail import EventDetailScreen
from console.tabs.base import ConsoleTab, Outcome, PaletteCommand
from console.widgets import formatting as fmt
from console.widgets.live_text import LiveText
from console.widgets.rate_chart import RateChart

SINKS: tuple[SinkKind, ...] = ("memory", "kafka", "redis", "eventhub")
RECENT_ROWS = 50
_ID_FIELDS = ("receipt_id", "transaction_id", "shipment_id", "impression_id", "customer_ble_id")


def event_where(event: dict[str, Any]) -> str:
    """Where it happened: store or DC, else the partition key the sink would use."""
    payload = event.get("payload") or {}
    if payload.get("store_id") is not None:
        return f"store {payload['store_id']}"
    if payload.get("dc_id") is not None:
        return f"dc {payload['dc_id']}"
    return str(event.get("partition_key") or "").replace("_", " ")


def event_ident(event: dict[str, Any]) -> str:
    """The business id an operator would search for, falling back to the trace id."""
    payload = event.get("payload") or {}
    for name in _ID_FIELDS:
        if payload.get(name):
            return str(payload[name])
    if payload.get("product_id") is not None:
        return f"product {payload['product_id']}"
    return str(event.get("trace_id", ""))


class StreamsTab(ConsoleTab):
    HELP = """\
### 1 Streams

Controls the **retail event generator** and shows it running.

- **s** starts a stream with the Control form (empty fields use the server's
  configuration; a changed *sink* is applied first), **x** stops it,
  **t** tests the selected sink's connection.
- The chart shows events sent per second over the last five minutes,
  computed from successive statistics samples.
- **space** pauses the recent events so a row stays put; **enter** on a row
  opens its envelope and payload as JSON.
- **d** jumps to Disruptions to inject a supply-chain disruption; watch
  `stockout_detected` and `reorder_triggered` climb in Counts.
- **esc** leaves a form field so single-key actions work again.
"""
    WIDGET_HELP: ClassVar[dict[str, str]] = {
        "interval": "**interval ms**: milliseconds between bursts (0-3,600,000). "
        "Empty uses the server's `emit_interval_ms`.",
        "burst": "**burst**: events generated per burst (1-100,000). "
        "Empty uses the server's value.",
        "duration": "**duration**: stop automatically after this many minutes. "
        "Empty runs until stopped.",
        "sink": "**sink**: where events go. Applied with `PUT /stream/config` before the next "
        "start (not while streaming). kafka, redis and eventhub need their settings configured.",
        "event-types": "**event types**: space toggles a type, **a** selects all. "
        "All selected sends no filter (every type).",
        "recent": "**Recent events**: newest first. **enter** opens the JSON, **space** "
        "pauses/resumes the live view.",
        "counts": "**Counts**: events generated per type in this session.",
    }
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("s", "start", "Start", id="streams.start", tooltip="Start a stream from the form"),
        Binding("x", "stop", "Stop", id="streams.stop", tooltip="Stop the running stream"),
        Binding("t", "test", "Test", id="streams.test", tooltip="Test the sink connection"),
        Binding("d", "app.create_disruption", "Disrupt", id="streams.disrupt"),
        Binding("space", "toggle_pause", "Pause", id="streams.pause"),
        Binding("a", "all_types", "All types", id="streams.all_types", show=False),
        Binding(
            "escape", "focus_primary", "Leave field", id="streams.leave_field", key_display="esc"
        ),
    ]

    class ConfigLoaded(Message, bubble=False):
        def __init__(self, config: ConfigResponse) -> None:
            super().__init__()
            self.config = config

    class Polled(Message, bubble=False):
        """One consistent snapshot of the backend; `recent` is None while paused."""

        def __init__(
            self,
            *,
            status: StatusResponse,
            statistics: StatisticsResponse,
            health: HealthResponse,
            recent: RecentEventsResponse | None,
            at: float,
        ) -> None:
            super().__init__()
            self.status = status
            self.statistics = statistics
            self.health = health
            self.recent = recent
            self.at = at

    def __init__(self, *, retail: RetailClient, ui: UISettings, clock: Clock) -> None:
        super().__init__(retail=retail, ui=ui, clock=clock, id="streams-tab")
        self.config: ConfigResponse | None = None
        self.status: StatusResponse | None = None
        self.statistics: StatisticsResponse | None = None
        self.paused = False
        self._form_filled = False
        self._recent: list[dict[str, Any]] = []
        self._unreachable = False

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="control") as control:
            control.border_title = "Control"
            with Horizontal(classes="field"):
                yield Label("interval ms", classes="field-label")
                yield self._int_input("interval", "interval ms", 0, 3_600_000)
            with Horizontal(classes="field"):
                yield Label("burst", classes="field-label")
                yield self._int_input("burst", "burst", 1, 100_000)
            with Horizontal(classes="field"):
                yield Label("duration", classes="field-label")
                yield self._int_input("duration", "duration minutes", 1, 7 * 24 * 60)
            with Horizontal(classes="field"):
                yield Label("sink", classes="field-label")
                yield Select(
                    [(name, name) for name in SINKS],
                    value="memory",
                    allow_blank=False,
                    compact=True,
                    id="sink",
                )
            yield Label("event types", classes="field-label")
            yield SelectionList[str](id="event-types", compact=True)
            with Horizontal(id="control-buttons"):
                yield Button("Start", id="start", variant="success", compact=True)
                yield Button("Stop", id="stop", variant="error", compact=True)
                yield Button("Test", id="test", compact=True)
        with Vertical(id="monitor") as monitor:
            monitor.border_title = "Status"
            yield LiveText("Connecting to the retail backend…", id="status-line")
            yield RateChart(id="rate-chart")
            with Horizontal(id="streams-middle"):
                counts: DataTable[str] = DataTable(id="counts", cursor_type="row")
                counts.border_title = "Counts"
                counts.add_column("count", key="count", width=7)
                counts.add_column("event type", key="type")
                yield counts
                health = LiveText("", id="health")
                health.border_title = "Health"
                yield health
            with Vertical(id="recent-panel", classes="-empty") as recent_panel:
                recent_panel.border_title = "Recent events"
                recent: DataTable[str] = DataTable(id="recent", cursor_type="row")
                for label in ("time", "type", "store/key", "id"):
                    recent.add_column(label)
                yield recent
                yield Static("No events yet — press s to start a stream", id="recent-empty")

    @staticmethod
    def _int_input(widget_id: str, name: str, low: int, high: int) -> Input:
        """Empty is valid: the server's configured value applies (or no limit, for duration)."""
        return Input(
            placeholder="minutes" if widget_id == "duration" else "server default",
            type="integer",
            valid_empty=True,
            validators=[
                Integer(low, high, failure_description=f"{name}: a whole number {low}-{high:,}")
            ],
            compact=True,
            id=widget_id,
            classes="control-input",
        )

    def focus_primary(self) -> None:
        self.query_one("#recent", DataTable).focus()

    def commands(self) -> list[PaletteCommand]:
        return [
            PaletteCommand(
                "Start stream", "Start the retail generator with the form", self.action_start
            ),
            PaletteCommand("Stop stream", "Stop the running stream", self.action_stop),
            PaletteCommand("Test sink connection", "Test the selected sink", self.action_test),
            PaletteCommand(
                "Pause or resume recent events",
                "Freeze the recent events list",
                self.action_toggle_pause,
            ),
            PaletteCommand(
                "Select all event types", "Stream every event type", self.action_all_types
            ),
        ]

    # -- polling -------------------------------------------------------------

    async def poll_once(self) -> None:
        failure: RetailApiError | None = None
        try:
            async with asyncio.TaskGroup() as group:
                config = group.create_task(self.retail.get_config())
                status = group.create_task(self.retail.status())
                statistics = group.create_task(self.retail.statistics())
                health = group.create_task(self.retail.health())
                recent = (
                    None
                    if self.paused
                    else group.create_task(self.retail.recent_events(RECENT_ROWS))
                )
        except* RetailApiError as errors:
            failure = errors.exceptions[0]
        if failure is not None:
            self.post_message(self.PollFailed(failure))
            return
        self.post_message(self.ConfigLoaded(config.result()))
        self.post_message(
            self.Polled(
                status=status.result(),
                statistics=statistics.result(),
                health=health.result(),
                recent=recent.result() if recent is not None else None,
                at=self.clock.monotonic(),
            )
        )

    @on(ConfigLoaded)
    def _config_loaded(self, event: ConfigLoaded) -> None:
        self.config = event.config
        if self._form_filled:
            return
        self._form_filled = True
        realtime = event.config.realtime
        self.query_one("#interval", Input).value = str(realtime.emit_interval_ms)
        self.query_one("#burst", Input).value = str(realtime.burst)
        self.query_one("#sink", Select).value = realtime.sink
        types = self.query_one("#event-types", SelectionList)
        types.clear_options()
        types.add_options([(name, name, True) for name in event.config.available_event_types])

    @on(ConsoleTab.PollFailed)
    def _poll_failed(self, event: ConsoleTab.PollFailed) -> None:
        message = str(event.error)
        if not self._unreachable:
            self.toast(message, title="Retail backend", severity="error")
        self._unreachable = True
        self.query_one("#status-line", LiveText).show(
            f"{fmt.dot('unreachable')} [b]retail backend unavailable[/b] — {escape(message)}"
        )

    @on(Polled)
    def _polled(self, event: Polled) -> None:
        if self._unreachable:
            self.toast("Connection restored", title="Retail backend")
            self._unreachable = False
        self.status = event.status
        self.statistics = event.statistics
        self._show_status(event.status)
        self.query_one(RateChart).sample(event.at, event.statistics.events_sent_successfully)
        self._show_counts(event.statistics.event_type_counts)
        self._show_health(event.health)
        if event.recent is not None:
            self._show_recent(event.recent.events)

    def _show_status(self, status: StatusResponse) -> None:
        sink = escape(self.config.realtime.sink) if self.config else "?"
        if status.is_streaming:
            text = (
                f"{fmt.dot('running')} [b]running[/b] {fmt.hms(status.uptime_seconds)} · "
                f"{fmt.count(status.events_sent)} sent · {fmt.rate(status.events_per_second)} ev/s"
                f" · sink {sink}"
            )
        elif status.status == "error":
            error = escape(str(getattr(status, "error", "") or "unknown error"))
            text = f"{fmt.dot('error')} [b]stream failed[/b]: {error} — press s to restart"
        elif status.events_sent:
            text = (
                f"{fmt.dot('stopped')} [b]stopped[/b] · last session sent "
                f"{fmt.count(status.events_sent)} · sink {sink} — press s to start"
            )
        else:
            text = f"{fmt.dot('off')} No stream running — press s to start · sink {sink}"
        self.query_one("#status-line", LiveText).show(text)

    def _show_counts(self, counts: dict[str, int]) -> None:
        table = self.query_one("#counts", DataTable)
        order = list(self.config.available_event_types) if self.config else []
        order += sorted(set(counts) - set(order))
        for name in order:
            value = Text(fmt.count(counts.get(name, 0)), justify="right")
            if name in table.rows:
                table.update_cell(name, "count", value)
            else:
                table.add_row(value, Text(name), key=name)

    def _show_health(self, health: HealthResponse) -> None:
        checks = health.checks
        rows: list[str] = []
        task = checks.get("streaming_task")
        if task is not None:
            state = str(task.get("status", "?"))
            rows.append(f"stream   {fmt.dot(state)} {escape(state)}")
        sink = checks.get("sink")
        if sink is not None:
            state = str(sink.get("status", "?"))
            detail = escape(str(sink.get("kind") or state))
            breaker = sink.get("circuit_breaker")
            if breaker not in (None, "closed", "disabled"):
                detail += f" · breaker {escape(str(breaker))}"
            rows.append(f"sink     {fmt.dot(state)} {detail}")
        stats = checks.get("statistics")
        if stats is not None:
            state = str(stats.get("status", "?"))
            percent = float(stats.get("failure_rate", 0.0)) * 100
            rows.append(f"failures {fmt.dot(state)} {percent:.1f} %")
        panel = self.query_one("#health", LiveText)
        panel.border_title = f"Health: {health.status}"
        panel.show("\n".join(rows))

    def _show_recent(self, events: list[dict[str, Any]]) -> None:
        if [e.get("trace_id") for e in events] == [e.get("trace_id") for e in self._recent]:
            return
        self._recent = events
        table = self.query_one("#recent", DataTable)
        row = table.cursor_row
        table.clear()
        # Text, not str: DataTable parses strings as markup, and these come from the server.
        table.add_rows(
            (
                Text(fmt.clock_time(e.get("timestamp") or e.get("ingest_timestamp"))),
                Text(str(e.get("event_type", ""))),
                Text(event_where(e)),
                Text(event_ident(e)),
            )
            for e in events
        )
        if events:
            table.move_cursor(row=min(row, len(events) - 1), animate=False)
        self.query_one("#recent-panel").set_class(not events, "-empty")

    # -- actions -------------------------------------------------------------

    def _selected_sink(self) -> SinkKind:
        value = self.query_one("#sink", Select).value
        return value if value in SINKS else "memory"  # type: ignore[return-value]

    def _start_request(self) -> StartRequest | None:
        """The form as a request, or None after telling the user what to fix."""
        errors: list[str] = []
        fields: dict[str, Any] = {}
        for widget_id, field in (
            ("interval", "emit_interval_ms"),
            ("burst", "burst"),
            ("duration", "duration_minutes"),
        ):
            widget = self.query_one(f"#{widget_id}", Input)
            result = widget.validate(widget.value)
            if result is not None and not result.is_valid:
                errors.extend(result.failure_descriptions)
            elif widget.value:
                fields[field] = int(widget.value)
        selected = self.query_one("#event-types", SelectionList).selected
        available = self.config.available_event_types if self.config else []
        if available and not selected:
            errors.append("select at least one event type (a selects all)")
        elif len(selected) < len(available):
            fields["event_types"] = list(selected)
        if errors:
            self.toast("\n".join(errors), title="Cannot start", severity="error")
            return None
        return StartRequest(**fields)

    def action_start(self) -> None:
        if not self.writable("Start stream"):
            return
        request = self._start_request()
        if request is None:
            return
        sink = self._selected_sink()
        current = self.config.realtime.sink if self.config else None

        async def start() -> Outcome:
            if sink != current:
                await self.retail.update_config(ConfigUpdate(sink=sink))
            started = await self.retail.start(request)
            return Outcome(f"{started.message} ({started.operation_id}) → sink {sink}")

        self.perform("Start stream", start)

    def action_stop(self) -> None:
        if not self.writable("Stop stream"):
            return

        async def stop() -> Outcome:
            stopped = await self.retail.stop()
            return Outcome(f"{stopped.message} ({stopped.operation_id})")

        self.perform("Stop stream", stop)

    def action_test(self) -> None:
        sink = self._selected_sink()
        current = self.config.realtime.sink if self.config else None
        streaming = bool(self.status and self.status.is_streaming)
        apply = sink != current and not streaming and not self.ui.read_only

        async def test() -> Outcome:
            if apply:
                await self.retail.update_config(ConfigUpdate(sink=sink))
            tested = sink if apply or current is None else current
            result = await self.retail.test_connection()
            return Outcome(
                f"{tested} sink: {result.message} ({result.response_time_ms:.0f} ms)",
                ok=result.success,
            )

        self.perform("Test sink connection", test)

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        panel = self.query_one("#recent-panel")
        panel.border_title = (
            "Recent events — paused (space resumes)" if self.paused else "Recent events"
        )
        self.wake()

    def action_all_types(self) -> None:
        self.query_one("#event-types", SelectionList).select_all()

    @on(Button.Pressed, "#start")
    def _start_pressed(self) -> None:
        self.action_start()

    @on(Button.Pressed, "#stop")
    def _stop_pressed(self) -> None:
        self.action_stop()

    @on(Button.Pressed, "#test")
    def _test_pressed(self) -> None:
        self.action_test()

    @on(Input.Submitted, ".control-input")
    def _next_field(self) -> None:
        self.screen.focus_next()

    @on(DataTable.RowSelected, "#recent")
    def _open_event(self, event: DataTable.RowSelected) -> None:
        if 0 <= event.cursor_row < len(self._recent):
            self.app.push_screen(EventDetailScreen(self._recent[event.cursor_row]))
