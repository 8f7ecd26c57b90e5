"""2 Tails: live tails of export streams over SSE and of realtime Socket.IO events.

The SSE pane lists the export streams the runtime reports (`endpoints.export_credentials`)
and takes any other as URL + key + consumer key. One exclusive worker runs the
client's `listen()` (which reconnects with backoff from its last cursor) and feeds
the shared `Tail` widget directly — `push` is O(1) and touches no widget, so the
tail's own timer does all the drawing; only connection changes and errors travel
as messages. Choices worth knowing:

- `r` resumes the same stream from the current cursor (no gap, no duplicate, the
  tail kept) unless the source form changed since the last connect; then it starts
  afresh from the chosen start cursor with an empty tail.
- The last cursor per stream (keyed by consumer key) goes to the state file, debounced,
  and is offered as the start cursor next time.
- Messages are typed only when opened: the line shows a few key fields of the raw
  dict, the detail goes through `IdentifierStreamMessage` / `JournalEntryStreamMessage`
  and `parse_identifier_details`.
- The Socket.IO pane lives in `tails_realtime.py`; both panes feed the same `Tail`
  widget, and the tab's keys (pause, filter, save filter, connect, disconnect) act on
  the pane that shows. A filter saved in one pane is offered in both.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import ValidationError
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import (
    Button,
    Checkbox,
    ContentSwitcher,
    Input,
    Select,
    Tab,
    TabbedContent,
    Tabs,
)
from textual.worker import Worker

from backends.common.clock import Clock
from backends.endpoints import Endpoints
from backends.export.client import (
    AsyncExportStreamClient,
    ExportApiError,
    ListenState,
    RetryPolicy,
)
from backends.export.models import (
    IdentifierStreamMessage,
    JournalEntryStreamMessage,
    StreamError,
    parse_identifier_details,
)
from console.state import StateStore
from console.tabs.base import PaletteCommand, TabContent
from console.tabs.tails_realtime import RealtimePane
from console.widgets import formatting as fmt
from console.widgets.tail import DetailScreen, Tail, TailView

CUSTOM = "custom"
TYPED = "typed"
HealthReporter = Callable[[str, str], None]
"""`(state, detail)` for the header's export dot."""


# -- one line per message ------------------------------------------------------


def is_identifier_message(message: dict[str, Any]) -> bool:
    """Identifier messages carry `identifier_id`; journal entries carry `identifiers` instead."""
    return "identifier_id" in message or (
        "display_value" in message and "identifiers" not in message
    )


def message_time(message: dict[str, Any]) -> str:
    """When it happened (`modified_at`/`performed_at`), else when it was stored (cursor ms)."""
    stamp = message.get("modified_at") or message.get("performed_at")
    if isinstance(stamp, str) and "T" in stamp:
        return fmt.clock_time(stamp)[:8]
    millis = str(message.get("cursor") or message.get("message_id") or "").partition("-")[0]
    if millis.isdigit():
        return datetime.fromtimestamp(int(millis) / 1000, UTC).strftime("%H:%M:%S")
    return "--:--:--"


def _clip(value: Any, width: int) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _confidence(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return f"conf {value:.2f}"
    return "conf  —  "


def format_message(message: dict[str, Any]) -> str:
    """`time kind type value conf tag`, in columns, for both data types."""
    time = message_time(message)
    kind = "identifier" if is_identifier_message(message) else "journal"
    if kind == "identifier":
        tags = message.get("tags") or []
        first = tags[0] if tags and isinstance(tags[0], dict) else {}
        tag = f"{first.get('tag_title')}={first.get('value')}" if first else ""
        value = message.get("display_value")
        tail = tag
    else:
        identifiers = [i for i in message.get("identifiers") or [] if isinstance(i, dict)]
        value = message.get("description") or (
            f"{identifiers[0].get('type')} {identifiers[0].get('display_value')}"
            if identifiers
            else ""
        )
        originator = message.get("originator")
        name = originator.get("name") if isinstance(originator, dict) else None
        tail = f"by {name}" if name else ""
    line = (
        f"{time} {kind:<10} {_clip(message.get('type'), 13):<13} {_clip(value, 30):<30} "
        f"{_confidence(message.get('confidence'))}  {tail}".rstrip()
    )
    return f"{line}  TEST" if message.get("is_test") is True else line


def is_test_message(message: dict[str, Any]) -> bool:
    return message.get("is_test") is True


def detail_sections(message: dict[str, Any]) -> tuple[str, list[tuple[str, Any]]]:
    """Title and sections of the detail view: the typed model, then the typed details."""
    identifier = is_identifier_message(message)
    model = IdentifierStreamMessage if identifier else JournalEntryStreamMessage
    cursor = message.get("cursor") or message.get("message_id") or "?"
    try:
        typed = model.from_dict(message)
    except ValidationError as exc:
        reason = f"does not fit {model.__name__}: {exc.error_count()} error(s)"
        return f"message · cursor {cursor}", [(f"raw message ({reason})", message)]
    sections: list[tuple[str, Any]] = [(model.__name__, typed.to_dict())]
    if isinstance(typed, IdentifierStreamMessage):
        title = f"identifier · {typed.type} · {typed.display_value} · cursor {cursor}"
        details = parse_identifier_details(typed.type, typed.details or typed.data)
        sections.append((f"{type(details).__name__} — parse_identifier_details", details.to_dict()))
    else:
        title = f"journal entry · {typed.type} · cursor {cursor}"
        for n, ident in enumerate(typed.identifiers):
            details = parse_identifier_details(ident.type, ident.data)
            heading = f"identifiers[{n}] {ident.type} {ident.display_value}"
            sections.append((f"{heading} — {type(details).__name__}", details.to_dict()))
    return title, sections


# -- the stream to tail --------------------------------------------------------


@dataclass(frozen=True)
class StreamSource:
    name: str
    api_url: str
    api_key_id: str | None
    api_key_secret: str | None
    consumer_key: str

    @property
    def host(self) -> str:
        return urlsplit(self.api_url).netloc or self.api_url

    @property
    def state_key(self) -> str:
        """Cursors are remembered by consumer key: it names one stream wherever it is served."""
        return self.consumer_key


def embedded_sources(endpoints: Endpoints) -> list[tuple[str, StreamSource]]:
    """(label, source) for every stream the runtime reports."""
    credentials = endpoints.export_credentials
    if endpoints.export is None or credentials is None:
        return []
    return [
        (
            f"{stream.name} · {stream.data_type}",
            StreamSource(
                stream.name,
                endpoints.export,
                credentials.api_key_id,
                credentials.api_key_secret,
                stream.consumer_key,
            ),
        )
        for stream in credentials.streams
    ]


class TailsTab(TabContent):
    HELP = """\
### 2 Tails

Live tails of **export streams** (SSE) and of realtime **Socket.IO** `stream_event`s;
`p` switches panes.

- Pick a **stream** (or *custom URL…* and fill in URL, key id, secret and consumer
  key), a **start cursor** (`$` new only, `0` from the beginning, the cursor saved
  last time, or a typed one) and whether to **include test** data; **r** connects.
- **r** again resumes from the current cursor after a drop; after changing the
  form it starts afresh. **x** disconnects. The client reconnects by itself with
  backoff; the title shows the state, cursor, msg/s and reconnects.
- **space** pauses the view (messages keep arriving and counting) and resumes live;
  moving the cursor (↑↓ PgUp PgDn g G) pauses too. **enter** opens the selected
  message through its typed model.
- **/** filters: free text, `field=value`, nested `a.b=value`, lists match any
  element (`tags.value=Phishing`); terms are AND-ed. **s** saves the filter under
  a name; pick saved ones from the list next to it.
- **c** copies the current cursor. The last cursor of each stream is remembered
  across restarts.

**Socket.IO pane**: pick a **session** (the demo session, any the server lists, or
**N** / *+ session* for a new one) and the **data types**, then **r** subscribes
(`x` disconnects; the client reconnects and subscribes again by itself). **S** starts
a stream for each ticked type with max results, batch size, events per minute,
real time and filters (`query="is:unread" label_ids=INBOX`, or JSON); **X** stops the
session's active streams. `token_refresh` and `rate_limit_warning` events are
highlighted and raised as toasts; the title shows the state, ev/s, events dropped by
a slow consumer and reconnects.
"""
    WIDGET_HELP: ClassVar[dict[str, str]] = {
        "sse-stream": "**stream**: the embedded export streams, or *custom URL…* for any "
        "server that follows export-stream.md.",
        "sse-cursor": "**start cursor**: `$` only new messages, `0` the whole retained "
        "stream, *saved* where you left off, or type one (`1735689600000-0`).",
        "sse-include-test": "**include test**: also stream messages marked `is_test`.",
        "rt-session": "**session**: a realtime session (an authorised provider account); "
        "`+ session` creates one through `POST /api/sessions`.",
        "rt-filters": "**filters** of new streams: `key=value` terms such as "
        '`query="is:unread from:important@example.com"`, `label_ids=INBOX,IMPORTANT`, '
        '`time_min=2024-01-01T00:00:00Z`, `filter="isRead eq false"`, or a JSON object.',
    }
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("r", "connect", "Connect", id="tails.connect", tooltip="Connect or resume"),
        Binding("x", "disconnect", "Disconnect", id="tails.disconnect"),
        Binding("space", "toggle_pause", "Pause", id="tails.pause", tooltip="Pause/live"),
        Binding("slash", "filter", "Filter", id="tails.filter", key_display="/"),
        Binding("s", "save_filter", "Save filter", id="tails.save_filter"),
        Binding("c", "copy_cursor", "Copy cursor", id="tails.copy_cursor"),
        Binding("n", "pick_stream", "Stream", id="tails.stream", tooltip="Pick the stream"),
        Binding("t", "toggle_test", "Include test", id="tails.include_test", show=False),
        Binding("p", "switch_pane", "SSE/Socket.IO", id="tails.pane", show=False),
        Binding("S", "start_streams", "Start stream", id="tails.start_stream"),
        Binding("X", "stop_streams", "Stop streams", id="tails.stop_streams"),
        Binding("N", "new_session", "New session", id="tails.new_session", show=False),
        Binding(
            "escape", "focus_primary", "Leave field", id="tails.leave_field", key_display="esc"
        ),
    ]
    _SSE_ACTIONS: ClassVar[frozenset[str]] = frozenset({"copy_cursor", "toggle_test"})
    _REALTIME_ACTIONS: ClassVar[frozenset[str]] = frozenset(
        {"start_streams", "stop_streams", "new_session"}
    )

    class ListenChanged(Message, bubble=False):
        """The listener's state (a copy), from the worker of connection `generation`."""

        def __init__(self, generation: int, state: ListenState) -> None:
            super().__init__()
            self.generation = generation
            self.state = state

    class ListenFailed(Message, bubble=False):
        """The listener gave up: an error that retrying cannot fix (401, 403, 410, 416…)."""

        def __init__(self, generation: int, error: ExportApiError) -> None:
            super().__init__()
            self.generation = generation
            self.error = error

    class ServerError(Message, bubble=False):
        """An SSE `error` event: the server reports a problem but keeps the stream open."""

        def __init__(self, generation: int, error: StreamError) -> None:
            super().__init__()
            self.generation = generation
            self.error = error

    def __init__(
        self,
        *,
        endpoints: Endpoints,
        store: StateStore,
        clock: Clock,
        report_health: HealthReporter,
        report_realtime_health: HealthReporter | None = None,
    ) -> None:
        super().__init__(id="tails-tab")
        self.store = store
        self.clock = clock
        self._report_health = report_health
        self._endpoints = endpoints
        self._sources = dict(
            (source.consumer_key, (label, source)) for label, source in embedded_sources(endpoints)
        )
        self.source: StreamSource | None = None
        """What the current (or last) connection tails."""
        self.listen_state: ListenState | None = None
        """The live listener's state object (cursor, reconnects), read on each tick."""
        self.status = "idle"
        self._generation = 0
        self._form_changed = False
        self._title = ""
        self._problem_shown: str | None = None
        self.tail = Tail(
            formatter=format_message,
            marker=is_test_message,
            clock=clock,
            saved_filters=store.filters,
            id="sse-tail",
        )
        self.realtime = RealtimePane(
            base_url=endpoints.realtime,
            demo_session=endpoints.realtime_session_id,
            clock=clock,
            saved_filters=store.filters,
            report_health=report_realtime_health or (lambda state, detail: None),
        )

    # -- composition -----------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Tabs(
            Tab("SSE · export streams", id="pane-sse"),
            Tab("Socket.IO · realtime", id="pane-socketio"),
            id="tails-panes-tabs",
        )
        with ContentSwitcher(initial="sse-pane", id="tails-panes"):
            with Vertical(id="sse-pane"):
                with Horizontal(id="sse-source"):
                    options = [(label, key) for key, (label, _) in self._sources.items()]
                    yield Select(
                        [*options, ("custom URL…", CUSTOM)],
                        value=options[0][1] if options else CUSTOM,
                        allow_blank=False,
                        compact=True,
                        id="sse-stream",
                    )
                    yield Select(
                        [("from $ (new only)", "$")],
                        value="$",
                        allow_blank=False,
                        compact=True,
                        id="sse-cursor",
                    )
                    yield Input(placeholder="cursor", compact=True, id="sse-cursor-input")
                    yield Checkbox("include test", compact=True, id="sse-include-test")
                    yield Button("Connect", id="sse-connect", compact=True, variant="primary")
                credentials = self._endpoints.export_credentials
                with Horizontal(id="sse-custom"):
                    yield Input(
                        self._endpoints.export or "",
                        placeholder="http://host:8080/api",
                        compact=True,
                        id="sse-url",
                    )
                    yield Input(
                        credentials.api_key_id if credentials else "",
                        placeholder="key id",
                        compact=True,
                        id="sse-key-id",
                    )
                    yield Input(
                        credentials.api_key_secret if credentials else "",
                        placeholder="secret",
                        password=True,
                        compact=True,
                        id="sse-secret",
                    )
                    yield Input(placeholder="consumer key", compact=True, id="sse-consumer-key")
                yield self.tail
            yield self.realtime

    def on_mount(self) -> None:
        self.query_one("#tails-panes-tabs", Tabs).can_focus = False
        self._stream_changed()
        self._form_changed = False
        self.tail.border_subtitle = (
            "space pause · / filter · enter detail · c copy cursor · r reconnect · s save filter"
        )
        self._tick()
        self.set_interval(0.25, self._tick)

    def on_unmount(self) -> None:
        self.store.flush(force=True)

    def focus_primary(self) -> None:
        self.active_tail.view.focus()

    @property
    def active_tail(self) -> Tail:
        """The tail of the pane that shows: the one the tail keys act on."""
        return self.tail if self._pane() == "sse-pane" else self.realtime.tail

    def commands(self) -> list[PaletteCommand]:
        pause = "Resume tail" if self.active_tail.paused else "Pause tail"
        return [
            PaletteCommand("Tail export stream…", "Pick an export stream to tail", self._pick),
            PaletteCommand(
                "Copy cursor", "Copy the tail's current cursor", self.action_copy_cursor
            ),
            PaletteCommand(pause, "Freeze or unfreeze the tail", self._pause_from_palette),
            PaletteCommand("Filter tail…", "Filter the tail's messages", self._filter_from_palette),
            PaletteCommand("Save tail filter…", "Keep the filter under a name", self._save_filter),
            PaletteCommand(
                "Reconnect export stream", "Connect or resume the tail", self.connect_sse
            ),
            PaletteCommand("Disconnect export stream", "Stop tailing", self.disconnect_sse),
            PaletteCommand(
                "Tail realtime session…", "Pick a Socket.IO session to tail", self._pick_session
            ),
            PaletteCommand(
                "Connect realtime session",
                "Subscribe to the ticked data types",
                self._realtime(self.realtime.connect),
            ),
            PaletteCommand(
                "Disconnect realtime session",
                "Stop the Socket.IO tail",
                self._realtime(self.realtime.disconnect),
            ),
            PaletteCommand(
                "Create realtime session…",
                "POST /api/sessions (google or microsoft)",
                self._realtime(self.realtime.new_session),
            ),
            PaletteCommand(
                "Start realtime stream",
                "Start a stream per ticked data type",
                self._realtime(self.realtime.start_streams),
            ),
            PaletteCommand(
                "Stop realtime streams",
                "Stop the session's active streams",
                self._realtime(self.realtime.stop_streams),
            ),
        ]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        sse = self._pane() == "sse-pane"
        if action in (self._REALTIME_ACTIONS if sse else self._SSE_ACTIONS):
            return False
        return super().check_action(action, parameters)

    # -- the form --------------------------------------------------------------

    def _pane(self) -> str | None:
        return self.query_one("#tails-panes", ContentSwitcher).current

    def _stream_key(self) -> str:
        value = self.query_one("#sse-stream", Select).value
        return value if isinstance(value, str) else CUSTOM

    def _custom_source(self) -> StreamSource | None:
        values = {
            name: self.query_one(f"#sse-{name}", Input).value.strip()
            for name in ("url", "key-id", "secret", "consumer-key")
        }
        missing = [name for name in ("url", "consumer-key") if not values[name]]
        if missing:
            self.toast(
                f"Custom stream: fill in {' and '.join(m.replace('-', ' ') for m in missing)}.",
                title="Cannot connect",
                severity="error",
            )
            return None
        return StreamSource(
            values["consumer-key"],
            values["url"],
            values["key-id"] or None,
            values["secret"] or None,
            values["consumer-key"],
        )

    def _chosen_source(self) -> StreamSource | None:
        key = self._stream_key()
        if key == CUSTOM:
            return self._custom_source()
        return self._sources[key][1]

    def _start_cursor(self) -> str | None:
        value = self.query_one("#sse-cursor", Select).value
        if value != TYPED:
            return str(value)
        typed = self.query_one("#sse-cursor-input", Input).value.strip()
        if not typed:
            self.toast("Type a start cursor (e.g. 1735689600000-0).", severity="error")
            return None
        return typed

    def _cursor_options(self) -> tuple[list[tuple[str, str]], str]:
        """`$`, `0`, the saved cursor of the selected stream if any, and typed…."""
        key = self._stream_key()
        source = self._sources.get(key, (None, None))[1]
        if key == CUSTOM:
            consumer = self.query_one("#sse-consumer-key", Input).value.strip()
            saved = self.store.cursor(consumer) if consumer else None
        else:
            saved = self.store.cursor(source.state_key) if source else None
        options = [("from $ (new only)", "$"), ("from 0 (beginning)", "0")]
        if saved and saved not in {"$", "0"}:
            options.append((f"from saved {saved}", saved))
        options.append(("from typed cursor…", TYPED))
        return options, saved if saved and saved not in {"$", "0"} else "$"

    def _stream_changed(self) -> None:
        self.query_one("#sse-pane").set_class(self._stream_key() == CUSTOM, "-custom")
        self._refresh_cursor_options()

    def _refresh_cursor_options(self) -> None:
        options, default = self._cursor_options()
        cursor = self.query_one("#sse-cursor", Select)
        cursor.set_options(options)
        cursor.value = default

    @on(Select.Changed, "#sse-stream")
    def _stream_selected(self) -> None:
        self._stream_changed()
        self._form_changed = True

    @on(Select.Changed, "#sse-cursor")
    def _cursor_selected(self, event: Select.Changed) -> None:
        self.query_one("#sse-source").set_class(event.value == TYPED, "-typed")
        self._form_changed = True

    @on(Input.Changed, "#sse-custom Input, #sse-cursor-input")
    @on(Checkbox.Changed, "#sse-include-test")
    def _form_edited(self) -> None:
        self._form_changed = True

    @on(Input.Submitted, "#sse-custom Input, #sse-cursor-input")
    @on(Button.Pressed, "#sse-connect")
    def _connect_pressed(self, event: Message) -> None:
        event.stop()
        if isinstance(event, Input.Submitted) and event.input.id == "sse-consumer-key":
            self._refresh_cursor_options()
        self._connect(fresh=True)

    @on(Tabs.TabActivated, "#tails-panes-tabs")
    def _pane_tab(self, event: Tabs.TabActivated) -> None:
        event.stop()
        pane = "socketio-pane" if event.tab.id == "pane-socketio" else "sse-pane"
        switcher = self.query_one("#tails-panes", ContentSwitcher)
        # Mounting activates the first tab too: only a real switch may move the focus.
        if switcher.current != pane:
            switcher.current = pane
            if pane == "socketio-pane":
                self.realtime.activate()
            self.refresh_bindings()
            self.call_after_refresh(self.focus_primary)

    # -- connecting ------------------------------------------------------------

    def action_connect(self) -> None:
        if self._pane() == "sse-pane":
            self.connect_sse()
        else:
            self.realtime.connect()

    def connect_sse(self) -> None:
        self._connect(fresh=self._form_changed or self.source is None)

    def _connect(self, *, fresh: bool) -> None:
        if fresh:
            source, cursor = self._chosen_source(), self._start_cursor()
        else:
            source, cursor = self.source, self.listen_state.cursor if self.listen_state else None
        if source is None or cursor is None:
            return
        if fresh:
            self.tail.clear()
        self._form_changed = False
        self.source = source
        self._generation += 1
        self.status = "connecting"
        self._report_health("unknown", f"connecting to {source.host}…")
        self.tail.set_hint(f"Connecting to {source.name} @ {source.host} from cursor {cursor}…")
        include_test = self.query_one("#sse-include-test", Checkbox).value
        self._listen(source, cursor, include_test, self._generation)
        self._tick()

    @work(exclusive=True, group="tail-sse", exit_on_error=False)
    async def _listen(
        self, source: StreamSource, cursor: str, include_test: bool, generation: int
    ) -> None:
        """Feed the tail from `listen()`; state changes and failures go out as messages."""

        def on_state(state: ListenState) -> None:
            self.post_message(self.ListenChanged(generation, replace(state)))

        retry = RetryPolicy(max_retries=None, max_delay=15.0)
        async with AsyncExportStreamClient(
            source.api_url, source.api_key_id, source.api_key_secret, retry=retry
        ) as client:
            listener = client.listen(source.consumer_key, cursor, include_test, on_state=on_state)
            self.listen_state = listener.state
            try:
                async for event in listener:
                    if event.messages:
                        self.tail.push_many(event.messages)
                        self.store.set_cursor(source.state_key, listener.state.cursor)
                    elif event.error is not None:
                        self.post_message(self.ServerError(generation, event.error))
            except ExportApiError as error:
                self.post_message(self.ListenFailed(generation, error))
            finally:
                await listener.aclose()

    def action_disconnect(self) -> None:
        if self._pane() == "sse-pane":
            self.disconnect_sse()
        else:
            self.realtime.disconnect()

    def disconnect_sse(self) -> None:
        if self.status in ("idle", "closed", "failed"):
            self.toast("Not connected — press r to connect.", severity="warning")
            return
        self.workers.cancel_group(self, "tail-sse")
        self.store.flush(force=True)

    @on(ListenChanged)
    def _listen_changed(self, event: ListenChanged) -> None:
        if event.generation != self._generation or self.source is None:
            return
        state, previous = event.state, self.status
        self.status = state.status
        where = f"{self.source.name} @ {self.source.host}"
        if state.status == "connected":
            self.store.set_cursor(self.source.state_key, state.cursor)
            self._report_health("healthy", f"tailing {where}")
            self.tail.set_hint(f"Connected to {where} — waiting for messages…")
            if previous == "reconnecting":
                self.toast(f"Resumed from cursor {state.cursor}", title="Export stream")
        elif state.status == "reconnecting" and state.last_error is not None:
            self._report_health("degraded", f"reconnecting: {state.last_error}")
            if previous != "reconnecting":
                self.toast(
                    f"{state.last_error} — reconnecting from cursor {state.cursor}",
                    title=f"Export stream · {state.last_error.code}",
                    severity="warning",
                )
        elif state.status == "closed":
            self._report_health("idle", f"not tailing (last: {where})")
            self.tail.set_hint(f"Disconnected from {where} — press r to resume.")
        self._tick()

    @on(ListenFailed)
    def _listen_failed(self, event: ListenFailed) -> None:
        if event.generation != self._generation:
            return
        error = event.error
        self.status = "failed"
        self._report_health("error", str(error))
        hint = ""
        if error.status in (410, 416):
            hint = " — pick 0 or $ as the start cursor and press r"
        elif error.status in (401, 403):
            hint = " — check the key and the consumer key"
        self.toast(f"{error}{hint}", title=f"Export stream · {error.code}", severity="error")
        self.tail.set_hint(f"Not connected: {error}{hint}")
        self._tick()

    @on(ServerError)
    def _server_error(self, event: ServerError) -> None:
        if event.generation == self._generation:
            error = event.error
            self.toast(
                f"{error.code} {error.error}".strip(), title="Export stream", severity="error"
            )

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        """A bug or a malformed answer: a toast, never a traceback; `r` tries again."""
        error = self.toast_worker_error(event)
        if error is None:
            return
        self.status = "failed"
        self._report_health("error", f"{type(error).__name__}: {error}")
        self._tick()

    # -- the title line --------------------------------------------------------

    def _tick(self) -> None:
        """Refresh the title (state, cursor, rate, reconnects) and save the cursor if due."""
        source, state = self.source, self.listen_state
        if source is None:
            title = "SSE: not connected — pick a stream and press r"
            if not self._sources and self.tail.received == 0:
                self.tail.set_hint(
                    "No export streams configured: set export.url, export.api_key_id and "
                    "export.api_key_secret, or pick custom URL… and fill in the fields."
                )
            elif self.tail.received == 0:
                self.tail.set_hint("Pick a stream and a start cursor above, then press r.")
        else:
            word = {
                "connecting": "connecting…",
                "connected": "live",
                "reconnecting": f"reconnecting {state.attempt if state else ''}",
                "closed": "disconnected",
                "failed": "error",
            }.get(self.status, self.status)
            cursor = state.cursor if state else "—"
            reconnects = state.reconnects if state else 0
            title = (
                f"SSE: {source.name} @ {source.host} ─ {word} ─ cursor {cursor} ─ "
                f"{fmt.rate(self.tail.rate)} msg/s ─ reconnects {reconnects}"
            )
        if title != self._title:
            self._title = title
            self.tail.border_title = title
        self.realtime.tick()
        self.store.flush()
        if self.store.problem and self.store.problem != self._problem_shown:
            self.toast(self.store.problem, title="UI state", severity="warning")
        self._problem_shown = self.store.problem

    # -- tail actions ----------------------------------------------------------

    def action_toggle_pause(self) -> None:
        self.active_tail.toggle_pause()

    def action_filter(self) -> None:
        self.active_tail.focus_filter()

    def action_save_filter(self) -> None:
        self.active_tail.save_filter()

    def action_start_streams(self) -> None:
        self.realtime.start_streams()

    def action_stop_streams(self) -> None:
        self.realtime.stop_streams()

    def action_new_session(self) -> None:
        self.realtime.new_session()

    def action_copy_cursor(self) -> None:
        cursor = self.listen_state.cursor if self.listen_state else None
        if not cursor:
            self.toast("No cursor yet — connect first (r).", severity="warning")
            return
        self.app.copy_to_clipboard(cursor)
        self.toast(f"Cursor {cursor} copied to the clipboard", title="Copied")

    def action_pick_stream(self) -> None:
        if self._pane() == "sse-pane":
            self.query_one("#sse-stream", Select).focus()
        else:
            self.query_one("#rt-session", Select).focus()

    def action_toggle_test(self) -> None:
        self.query_one("#sse-include-test", Checkbox).toggle()

    def action_switch_pane(self) -> None:
        tabs = self.query_one("#tails-panes-tabs", Tabs)
        tabs.active = "pane-socketio" if tabs.active == "pane-sse" else "pane-sse"

    def _show_pane(self, pane: str) -> None:
        self.query_one("#tails-panes-tabs", Tabs).active = (
            "pane-sse" if pane == "sse-pane" else "pane-socketio"
        )
        self.query_one("#tails-panes", ContentSwitcher).current = pane
        if pane == "socketio-pane":
            self.realtime.activate()
        self.refresh_bindings()

    def _reveal(self, then: Callable[[], object], pane: str | None = None) -> None:
        """Bring this tab (and `pane`, if given) to the front, then run `then` once laid out."""
        self.query_ancestor(TabbedContent).active = str(self.parent.id if self.parent else "")
        if pane is not None:
            self._show_pane(pane)
        self.call_after_refresh(then)

    def _pick(self) -> None:
        self._reveal(self.action_pick_stream, "sse-pane")

    def _pick_session(self) -> None:
        self._reveal(self.action_pick_stream, "socketio-pane")

    def _pause_from_palette(self) -> None:
        self._reveal(self.action_toggle_pause)

    def _filter_from_palette(self) -> None:
        self._reveal(self.action_filter)

    def _save_filter(self) -> None:
        self._reveal(self.action_save_filter)

    def _realtime(self, then: Callable[[], object]) -> Callable[[], None]:
        """A palette command that shows the Socket.IO pane first."""
        return lambda: self._reveal(then, "socketio-pane")

    @on(Tail.FilterSaved)
    def _filter_saved(self, event: Tail.FilterSaved) -> None:
        for tail in (self.tail, self.realtime.tail):
            tail.add_saved_filter(event.name, event.source)
        if self.store.save_filter(event.name, event.source):
            self.toast(f"Filter {event.name!r} saved: {event.source}", title="Saved filter")
        else:
            self.toast(str(self.store.problem), title="UI state", severity="error")

    @on(TailView.Selected)
    def _open_detail(self, event: TailView.Selected) -> None:
        title, sections = detail_sections(event.message)
        self.app.push_screen(DetailScreen(title, sections, event.message))
