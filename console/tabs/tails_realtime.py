"""The Socket.IO pane of 2 Tails: a live tail of one realtime session's `stream_event`s.

The same `Tail` widget as the SSE pane (pause/live, filters, saved filters, detail);
this module adds the source: a session (the runtime's demo session first, any the
server lists, or a new one made through `POST /api/sessions`), the data types to
subscribe to, and a small form that starts streams through the REST API so there is
something to tail. One exclusive worker runs `RealtimeClient.events()` (which
reconnects with backoff and subscribes again) and pushes each event into the tail;
only token refreshes, rate-limit warnings and failures travel as messages. The
connection state, rate, drops and reconnects are read from the event stream on the
tab's tick. REST calls run in workers too and come back as messages.

Choices where the spec is silent:

- The pane loads sessions and providers when it is first shown, not at start-up, so
  a console that never looks at it never talks to the realtime server.
- Data types offered are those of the session's provider (`GET /api/providers`); the
  spec's sample subscription (`gmail_messages`, `calendar_events`) is the default.
- Start (`S`) starts one stream per ticked data type with the form's settings; Stop
  (`X`) stops every active stream of the session, whoever started it. The line above
  the tail lists the session's streams, polled every second while the pane shows.
- `token_refresh` and `rate_limit_warning` events are highlighted in the tail, shown on
  the info line and raised as toasts; refused connections and subscription errors are
  toasts with the server's code and message (and `retry_after` when it sent one).
- The title names the session rather than the host (the host is in the header's
  tooltip), so the same demo reads the same on every port, and it fits 80 columns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import ValidationError
from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.notifications import SeverityLevel
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Select, Static
from textual.worker import Worker

from backends.common.clock import Clock
from backends.realtime.client import (
    TERMINAL_CODES,
    AnyStreamEvent,
    EventStream,
    RealtimeApiError,
    RealtimeClient,
)
from backends.realtime.models import (
    PROVIDER_STREAM_TYPES,
    STREAM_EVENT,
    STREAM_TYPES,
    SessionCreate,
    SessionInfo,
    StreamList,
    StreamStartRequest,
)
from console.realtime_format import (
    clock_of,
    format_event,
    is_notice,
    parse_stream_filters,
    short_name,
)
from console.tabs.base import worker_error
from console.widgets import formatting as fmt
from console.widgets.live_text import LiveText
from console.widgets.tail import DetailScreen, Tail, TailView

HealthReporter = Callable[[str, str], None]
DEFAULT_TYPES = ("gmail_messages", "calendar_events", "outlook_messages", "outlook_events")
POLL_SECONDS = 1.0
STREAM_TONES = {"active": "running", "completed": "ok", "stopped": "stopped", "error": "error"}
"""A stream's status as the shared formatting's health words, for its dot's colour."""


def detail_sections(message: dict[str, Any]) -> tuple[str, list[tuple[str, Any]]]:
    """Title and sections of the detail view: the typed event, then a data update's item."""
    try:
        event = STREAM_EVENT.validate_python(message)
    except ValidationError as exc:
        reason = f"not a stream_event: {exc.error_count()} error(s)"
        return "stream_event", [(f"raw message ({reason})", message)]
    title = f"{event.event_type} · {event.provider} · {clock_of(event.timestamp)} UTC"
    sections: list[tuple[str, Any]] = [(type(event).__name__, event.model_dump())]
    if event.event_type == "data_update":
        data = event.data
        title = f"data_update · {data.data_type} · {clock_of(event.timestamp)} UTC"
        sections = [
            (type(event).__name__, event.model_dump(exclude={"data": {"payload"}})),
            (f"payload — {data.data_type}", data.payload),
        ]
    return title, sections


def describe(error: RealtimeApiError) -> str:
    """The server's status, code and message, plus the field it blames when it names one."""
    details = error.details
    if "field" not in details:
        return str(error)
    blamed = f"{details['field']}={details.get('value')!r}"
    allowed = details.get("allowed_values")
    if isinstance(allowed, list) and allowed:
        blamed += f"; allowed: {', '.join(map(str, allowed))}"
    return f"{error} ({blamed})"


class SessionPrompt(ModalScreen[SessionCreate | None]):
    """A new session: provider and optional agent id; enter creates, esc cancels."""

    BINDINGS: ClassVar[list[Binding]] = [
        Binding("escape", "cancel", "Cancel", id="session-prompt.cancel", key_display="esc"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="session-prompt") as dialog:
            dialog.border_title = "New realtime session"
            dialog.border_subtitle = "enter creates · esc cancels"
            yield Static(
                "Stands in for an OAuth grant: POST /api/sessions", id="session-prompt-subject"
            )
            yield Select(
                [("google", "google"), ("microsoft", "microsoft")],
                value="google",
                allow_blank=False,
                id="session-provider",
            )
            yield Input(placeholder="agent id (optional)", id="session-agent")
            yield Button("Create", id="session-create", variant="primary", compact=True)

    def on_mount(self) -> None:
        self.query_one("#session-provider", Select).focus()

    def _answer(self) -> None:
        provider = self.query_one("#session-provider", Select).value
        agent = self.query_one("#session-agent", Input).value.strip() or None
        try:
            request = SessionCreate(
                provider="microsoft" if provider == "microsoft" else "google", agent_id=agent
            )
        except ValidationError as exc:
            self.notify(exc.errors()[0]["msg"], title="agent id", severity="error", markup=False)
            return
        self.dismiss(request)

    @on(Input.Submitted)
    @on(Button.Pressed, "#session-create")
    def _submitted(self, event: Message) -> None:
        event.stop()
        self._answer()

    def action_cancel(self) -> None:
        self.dismiss(None)


class RealtimePane(Vertical):
    """Session, data types, stream form, the streams line and the shared tail."""

    class Loaded(Message, bubble=False):
        def __init__(self, sessions: list[SessionInfo], types: dict[str, list[str]]) -> None:
            super().__init__()
            self.sessions = sessions
            self.types = types

    class Done(Message, bubble=False):
        """A REST call succeeded; `then` applies its result on the UI's loop."""

        def __init__(self, then: Callable[[Any], None], result: Any) -> None:
            super().__init__()
            self.then = then
            self.result = result

    class Failed(Message, bubble=False):
        def __init__(self, action: str, error: RealtimeApiError) -> None:
            super().__init__()
            self.action = action
            self.error = error

    class StreamsListed(Message, bubble=False):
        def __init__(self, streams: StreamList | None, error: RealtimeApiError | None) -> None:
            super().__init__()
            self.streams = streams
            self.error = error

    class Notice(Message, bubble=False):
        """A token refresh or rate-limit warning from connection `generation`."""

        def __init__(self, generation: int, event: AnyStreamEvent) -> None:
            super().__init__()
            self.generation = generation
            self.event = event

    class ListenFailed(Message, bubble=False):
        """The event stream gave up: unknown session, expired token, unknown data types."""

        def __init__(self, generation: int, error: RealtimeApiError) -> None:
            super().__init__()
            self.generation = generation
            self.error = error

    def __init__(
        self,
        *,
        base_url: str | None,
        demo_session: str | None,
        clock: Clock,
        saved_filters: dict[str, str],
        report_health: HealthReporter,
    ) -> None:
        super().__init__(id="socketio-pane")
        self.base_url = base_url
        self.demo_session = demo_session
        self._report_health = report_health
        self.rest = RealtimeClient(base_url) if base_url else None
        self.sessions: dict[str, SessionInfo] = {}
        self.types: dict[str, list[str]] = dict(PROVIDER_STREAM_TYPES.items())
        self.streams: StreamList | None = None
        self.events: EventStream | None = None
        """The live event stream (state, reconnects, drops), read on each tick."""
        self.session_id: str | None = None
        """The session of the current (or last) connection."""
        self.status = "idle"
        self.activated = False
        self.last_refresh: str = ""
        self.last_warning: str = ""
        self._generation = 0
        self._error_seen: tuple[str, str] | None = None
        self._reconnects_seen = 0
        self._streams_error: RealtimeApiError | None = None
        self._pending: set[str] = set()
        self._title = ""
        self.tail = Tail(
            formatter=format_event,
            marker=is_notice,
            clock=clock,
            saved_filters=saved_filters,
            id="socketio-tail",
        )
        self._info = LiveText("", id="rt-info")

    # -- composition -----------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="rt-source"):
            yield Static("session", classes="rt-label")
            options = [(self._session_label(self.demo_session), self.demo_session)]
            yield Select(
                options if self.demo_session else [],
                value=self.demo_session or Select.NULL,
                prompt="no session — + creates one",
                compact=True,
                id="rt-session",
            )
            yield Button("+ session", id="rt-new-session", compact=True)
            yield Button("Connect", id="rt-connect", compact=True, variant="primary")
        with Horizontal(id="rt-types"):
            yield Static("types", classes="rt-label")
            for stream_type in STREAM_TYPES:
                yield Checkbox(
                    short_name(stream_type),
                    stream_type in DEFAULT_TYPES,
                    compact=True,
                    id=f"rt-type-{stream_type}",
                    classes="rt-type",
                    tooltip=stream_type,
                )
        with Horizontal(id="rt-stream"):
            yield Static("max", classes="rt-label")
            yield Input("100", type="integer", compact=True, id="rt-max")
            yield Static("batch", classes="rt-label")
            yield Input("20", type="integer", compact=True, id="rt-batch")
            yield Static("/min", classes="rt-label")
            yield Input("", placeholder="100", type="integer", compact=True, id="rt-rate")
            yield Checkbox("real time", compact=True, id="rt-real-time")
            yield Input(
                placeholder='filters: query="is:unread" label_ids=INBOX',
                compact=True,
                id="rt-filters",
            )
            yield Button("Start", id="rt-start", compact=True)
            yield Button("Stop", id="rt-stop", compact=True, variant="error")
        yield self._info
        yield self.tail

    def on_mount(self) -> None:
        self.tail.border_subtitle = (
            "space pause · / filter · enter detail · r connect · x disconnect · "
            "S start stream · X stop · s save filter"
        )
        self._show_types()
        self.tick()

    async def on_unmount(self) -> None:
        """Close the Socket.IO connection here: worker cancellation at exit is not awaited."""
        if self.events is not None:
            await self.events.aclose()
        if self.rest is not None:
            await self.rest.aclose()

    @staticmethod
    def _session_label(session_id: str | None, info: SessionInfo | None = None) -> str:
        if info is None:
            return str(session_id)
        label = f"{session_id} · {info.provider}"
        return label if info.status == "active" else f"{label} ({info.status})"

    def activate(self) -> None:
        """First time shown: load sessions and providers, and keep the streams line fresh."""
        if self.activated or self.rest is None:
            return
        self.activated = True
        self._load()
        self._poll_streams()

    # -- the form --------------------------------------------------------------

    def chosen_session(self) -> str | None:
        value = self.query_one("#rt-session", Select).value
        return value if isinstance(value, str) else None

    def _provider_types(self) -> list[str]:
        """The data types of the chosen session's provider; all of them until it is known."""
        session = self.sessions.get(self.chosen_session() or "")
        if session is None:
            return list(STREAM_TYPES)
        return list(self.types.get(session.provider, session.stream_types))

    def _type_boxes(self) -> list[tuple[str, Checkbox]]:
        """(stream type, its checkbox), in the spec's order."""
        return [
            (str(box.id).removeprefix("rt-type-"), box)
            for box in self.query(".rt-type").results(Checkbox)
        ]

    def _show_types(self) -> None:
        offered = self._provider_types()
        for stream_type, box in self._type_boxes():
            box.display = stream_type in offered

    def chosen_types(self) -> list[str]:
        offered = self._provider_types()
        return [t for t, box in self._type_boxes() if box.value and t in offered]

    def set_types(self, stream_types: list[str]) -> None:
        for stream_type, box in self._type_boxes():
            box.value = stream_type in stream_types

    def _stream_requests(self, session: str, types: list[str]) -> list[StreamStartRequest] | None:
        """One start request per type from the form; a bad field is a toast, not a request."""

        def number(field: str, default: int | None) -> int | None:
            text = self.query_one(f"#rt-{field}", Input).value.strip()
            return int(text) if text else default

        try:
            filters = parse_stream_filters(self.query_one("#rt-filters", Input).value)
            return [
                StreamStartRequest(
                    session_id=session,
                    stream_type=stream_type,
                    batch_size=number("batch", 100),
                    max_results=number("max", 1000),
                    filters=filters,
                    real_time=self.query_one("#rt-real-time", Checkbox).value,
                    rate_limit_per_minute=number("rate", None),
                )
                for stream_type in types
            ]
        except ValidationError as exc:
            first = exc.errors()[0]
            self._toast(f"{'.'.join(map(str, first['loc']))}: {first['msg']}", "Start stream")
        except ValueError as exc:
            self._toast(str(exc), "Start stream")
        return None

    @on(Select.Changed, "#rt-session")
    def _session_chosen(self, event: Select.Changed) -> None:
        event.stop()
        self._show_types()
        self._show_info()

    @on(Checkbox.Changed, ".rt-type")
    def _type_toggled(self, event: Checkbox.Changed) -> None:
        """Ticking a type while connected subscribes to it at once (and on every reconnect)."""
        event.stop()
        events = self.events
        if events is None or self.status not in ("connecting", "live", "reconnecting"):
            return
        if self.chosen_session() == self.session_id:
            stream_type = str(event.checkbox.id).removeprefix("rt-type-")
            self._change_subscription(events, stream_type, event.value)

    @work(group="rt-subscribe", exit_on_error=False)
    async def _change_subscription(
        self, events: EventStream, stream_type: str, subscribe: bool
    ) -> None:
        try:
            if subscribe:
                await events.subscribe([stream_type])
            else:
                await events.unsubscribe([stream_type])
        except RealtimeApiError as error:
            self.post_message(self.Failed(f"Subscribe to {stream_type}", error))
        except TimeoutError:
            error = RealtimeApiError(0, "TIMEOUT", "no subscription_confirmed from the server")
            self.post_message(self.Failed(f"Subscribe to {stream_type}", error))

    @on(Button.Pressed, "#rt-connect")
    def _connect_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.connect()

    @on(Button.Pressed, "#rt-new-session")
    def _new_session_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.new_session()

    @on(Button.Pressed, "#rt-start")
    def _start_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.start_streams()

    @on(Button.Pressed, "#rt-stop")
    def _stop_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.stop_streams()

    @on(Input.Submitted, "#rt-stream Input")
    def _stream_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.start_streams()

    # -- REST calls --------------------------------------------------------------

    def _toast(self, message: str, title: str, severity: SeverityLevel = "error") -> None:
        """`notify` without markup: server details must show verbatim."""
        self.notify(message, title=title, severity=severity, markup=False)

    def _unconfigured(self) -> bool:
        if self.rest is None:
            self._toast(
                'No realtime server: set realtime.url = "http://host:5000" or run it embedded.',
                "Socket.IO",
                "warning",
            )
            return True
        return False

    def perform(
        self,
        action: str,
        call: Callable[[RealtimeClient], Awaitable[Any]],
        then: Callable[[Any], None],
    ) -> None:
        """One REST call in a worker unless the same action is still in flight."""
        if self._unconfigured():
            return
        if action in self._pending:
            self._toast(f"{action} is already in progress", "Socket.IO", "warning")
            return
        self._pending.add(action)
        self._perform(action, call, then)

    @work(group="rt-action", exit_on_error=False)
    async def _perform(
        self,
        action: str,
        call: Callable[[RealtimeClient], Awaitable[Any]],
        then: Callable[[Any], None],
    ) -> None:
        assert self.rest is not None
        try:
            result = await call(self.rest)
        except RealtimeApiError as error:
            self.post_message(self.Failed(action, error))
        else:
            self.post_message(self.Done(then, result))
        finally:
            self._pending.discard(action)

    @on(Done)
    def _done(self, event: Done) -> None:
        event.then(event.result)

    @on(Failed)
    def _failed(self, event: Failed) -> None:
        self._toast(describe(event.error), f"{event.action} failed")

    @work(exclusive=True, group="rt-load", exit_on_error=False)
    async def _load(self) -> None:
        assert self.rest is not None
        try:
            providers = await self.rest.providers()
            sessions = await self.rest.list_sessions()
        except RealtimeApiError as error:
            self.post_message(self.Failed("Load sessions", error))
            return
        types = {p.provider: list(p.stream_types) for p in providers.providers}
        self.post_message(self.Loaded(sessions.sessions, types))

    @on(Loaded)
    def _loaded(self, event: Loaded) -> None:
        self.types.update(event.types)
        for session in event.sessions:
            self.sessions[session.session_id] = session
        self._show_sessions(self.chosen_session())

    def _show_sessions(self, chosen: str | None) -> None:
        """The demo session first, then the others as the server listed them."""
        demo = [self.demo_session] if self.demo_session else []
        ids = list(dict.fromkeys([*demo, *self.sessions]))
        select = self.query_one("#rt-session", Select)
        with self.prevent(Select.Changed):
            select.set_options([(self._session_label(s, self.sessions.get(s)), s) for s in ids])
            if chosen in ids:
                select.value = chosen
        self._show_types()
        self._show_info()

    def new_session(self) -> None:
        if self._unconfigured():
            return

        def create(request: SessionCreate | None) -> None:
            if request is not None:
                self.perform(
                    "Create session", lambda c: c.create_session(request), self._session_created
                )

        self.app.push_screen(SessionPrompt(), create)

    def _session_created(self, session: SessionInfo) -> None:
        self.sessions[session.session_id] = session
        self._show_sessions(session.session_id)
        self.set_types([t for t in DEFAULT_TYPES if t in session.stream_types])
        self._toast(
            f"{session.session_id} ({session.provider}) — token expires in {session.expires_in} s",
            "Session created",
            "information",
        )

    def start_streams(self) -> None:
        session, types = self.chosen_session(), self.chosen_types()
        if session is None or not types:
            self._toast(
                "Pick a session and at least one data type first.", "Start stream", "warning"
            )
            return
        requests = self._stream_requests(session, types)
        if requests is None:
            return

        async def start(client: RealtimeClient) -> list[str | RealtimeApiError]:
            """One stream per type; a refusal of one type does not hide the others' outcome."""
            outcomes: list[str | RealtimeApiError] = []
            for request in requests:
                try:
                    result = await client.start_stream(request)
                except RealtimeApiError as error:
                    if error.status_code == 0:  # no server: the other types would fail alike
                        raise
                    outcomes.append(error)
                else:
                    outcomes.append(f"{result.stream_type} {result.stream_id}")
            return outcomes

        def started(outcomes: list[str | RealtimeApiError]) -> None:
            names = [o for o in outcomes if isinstance(o, str)]
            if names:
                self._toast(", ".join(names), "Stream started", "information")
            for error in outcomes:
                if isinstance(error, RealtimeApiError):
                    self._toast(describe(error), "Start stream failed")
            self._poll_streams()

        self.perform("Start stream", start, started)

    def stop_streams(self) -> None:
        session = self.chosen_session()
        active = [
            stream_id
            for stream_id, stream in (self.streams.streams.items() if self.streams else [])
            if stream.session_id == session and stream.status == "active"
        ]
        if not active:
            self._toast(f"No active stream for {session}.", "Stop streams", "warning")
            return

        async def stop(client: RealtimeClient) -> list[str]:
            return [(await client.stop_stream(stream_id)).stream_id for stream_id in active]

        def stopped(ids: list[str]) -> None:
            self._toast(", ".join(ids), "Stream stopped", "information")
            self._poll_streams()

        self.perform("Stop streams", stop, stopped)

    @work(exclusive=True, group="rt-poll", exit_on_error=False)
    async def _poll_streams(self) -> None:
        """The streams line: `GET /api/streams` every second while the pane shows."""
        assert self.rest is not None
        while True:
            if self.display and self.is_attached:
                try:
                    self.post_message(self.StreamsListed(await self.rest.list_streams(), None))
                except RealtimeApiError as error:
                    self.post_message(self.StreamsListed(None, error))
            await asyncio.sleep(POLL_SECONDS)

    @on(StreamsListed)
    def _streams_listed(self, event: StreamsListed) -> None:
        self.streams = event.streams if event.streams is not None else self.streams
        self._streams_error = event.error
        self._show_info()

    def _show_info(self) -> None:
        session = self.chosen_session()
        parts: list[str] = []
        error = self._streams_error
        if error is not None:
            parts.append(escape(f"streams: cannot list ({error})"))
        elif self.streams is not None:
            mine = [s for s in self.streams.streams.values() if s.session_id == session]
            mine.sort(key=lambda s: (s.status != "active", s.stream_type))
            shown = [
                f"{short_name(s.stream_type)} {fmt.dot(STREAM_TONES.get(s.status, s.status))} "
                f"{s.status} "
                f"{fmt.count(s.items_streamed)}"
                for s in mine[:4]
            ]
            parts.append("streams: " + (" · ".join(shown) if shown else "none — S starts one"))
        parts += [escape(text) for text in (self.last_refresh, self.last_warning) if text]
        self._info.show(" │ ".join(parts) or "S starts a stream for the ticked data types")

    # -- connecting ------------------------------------------------------------

    def connect(self) -> None:
        if self._unconfigured():
            return
        session, types = self.chosen_session(), self.chosen_types()
        if session is None:
            self._toast("No session: press + session to create one.", "Cannot connect", "warning")
            return
        if not types:
            self._toast("Tick at least one data type.", "Cannot connect", "warning")
            return
        if session != self.session_id:
            self.tail.clear()
        self.session_id = session
        self._generation += 1
        self._error_seen = None
        self._reconnects_seen = 0
        self.last_refresh = self.last_warning = ""
        self.status = "connecting"
        self.events = None
        host = urlsplit(self.base_url or "").netloc
        self._report_health("unknown", f"connecting to {host}…")
        self.tail.set_hint(f"Connecting to {session} @ {host}, subscribing to {', '.join(types)}…")
        assert self.base_url is not None
        self._listen(self.base_url, session, types, self._generation)
        self.tick()

    @work(exclusive=True, group="tail-socketio", exit_on_error=False)
    async def _listen(self, base_url: str, session: str, types: list[str], generation: int) -> None:
        """Feed the tail from `events()`; notices and failures go out as messages."""
        async with RealtimeClient(base_url) as client, client.events(session, types) as events:
            self.events = events
            try:
                async for event in events:
                    self.tail.push(event.model_dump())
                    if event.event_type != "data_update":
                        self.post_message(self.Notice(generation, event))
            except RealtimeApiError as error:
                self.post_message(self.ListenFailed(generation, error))

    def disconnect(self) -> None:
        if self.status in ("idle", "closed", "failed"):
            self._toast("Not connected — press r to connect.", "Socket.IO", "warning")
            return
        self.workers.cancel_group(self, "tail-socketio")
        self.status = "closed"
        self._report_health("idle", f"not connected (last: {self.session_id})")
        self.tail.set_hint(f"Disconnected from {self.session_id} — press r to connect again.")
        self.tick()

    @on(Notice)
    def _notice(self, event: Notice) -> None:
        if event.generation != self._generation:
            return
        notice = event.event
        if notice.event_type == "token_refresh":
            data = notice.data
            self.last_refresh = (
                f"token refreshed {clock_of(notice.timestamp)} · expires "
                f"{clock_of(data.new_expires_at)}"
            )
            self._toast(
                f"expires in {data.expires_in} s (at {clock_of(data.new_expires_at)} UTC)",
                f"{notice.provider} token_refresh",
                "information",
            )
        elif notice.event_type == "rate_limit_warning":
            data = notice.data
            self.last_warning = (
                f"quota {data.remaining_quota} left · resets {clock_of(data.reset_time)}"
            )
            self._toast(data.warning_message, "rate_limit_warning", "warning")
        self._show_info()

    @on(ListenFailed)
    def _listen_failed(self, event: ListenFailed) -> None:
        if event.generation != self._generation:
            return
        error = event.error
        self.status = "failed"
        self._report_health("error", str(error))
        self._toast(f"{error.code}: {error.message}", f"Socket.IO · {error.code}")
        self.tail.set_hint(f"Not connected: {error.code}: {error.message}")
        self.tick()

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        """A bug or a malformed answer: a toast, never a traceback; `r` tries again."""
        error = worker_error(event)
        if error is None:
            return
        if event.worker.group == "tail-socketio":
            self.status = "failed"
            self._report_health("error", f"{type(error).__name__}: {error}")
        self._toast(f"{type(error).__name__}: {error}", "Unexpected error")

    @on(TailView.Selected)
    def _open_detail(self, event: TailView.Selected) -> None:
        event.stop()
        title, sections = detail_sections(event.message)
        self.app.push_screen(DetailScreen(title, sections, event.message))

    # -- the title line ----------------------------------------------------------

    def _follow(self) -> None:
        """Derive the state from the event stream; say so when it changes, fails or recovers.

        Polled, so a drop and reconnect quicker than a tick shows only as the counter:
        the reconnect toast follows the counter, not the states seen.
        """
        events = self.events
        if events is None or self.status not in ("connecting", "live", "reconnecting"):
            return
        if events.connected:
            status = "live"
        elif events.reconnects or events.last_error is not None:
            status = "reconnecting"
        else:
            status = "connecting"
        error = events.last_error
        seen = (error.code, error.message) if error is not None else None
        if error is not None and seen != self._error_seen:
            # Once per distinct problem: a server that stays down fails every retry alike.
            self._error_seen = seen
            if error.code not in TERMINAL_CODES:  # those end the stream: ListenFailed says so
                retry = f" — retrying in {error.retry_after:.0f} s" if error.retry_after else ""
                self._toast(
                    f"{error.code}: {error.message}{retry}", f"Socket.IO · {error.code}", "warning"
                )
        if status == "live" and events.reconnects != self._reconnects_seen:
            self._reconnects_seen = events.reconnects
            self._toast(
                f"Subscribed again to {', '.join(events.data_types)}",
                "Socket.IO reconnected",
                "information",
            )
        if status == self.status:
            return
        self.status = status
        where = f"{self.session_id} @ {urlsplit(self.base_url or '').netloc}"
        if status == "live":
            self._error_seen = None
            self._report_health("healthy", f"tailing {where}")
            self.tail.set_hint(f"Subscribed to {where} — waiting for events (S starts a stream).")
        elif status == "reconnecting":
            reason = f": {error}" if error is not None else ""
            self._report_health("degraded", f"reconnecting{reason}")

    def tick(self) -> None:
        self._follow()
        session = self.session_id or self.chosen_session()
        if self.rest is None:
            title = "Socket.IO: not configured — set realtime.url"
            self.tail.set_hint(
                'No realtime server configured: set realtime.url = "http://host:5000" '
                "(or leave it unset to run it embedded)."
            )
        elif self.status == "idle":
            title = "Socket.IO: not connected — pick a session and press r"
            if self.tail.received == 0:
                self.tail.set_hint(
                    "Pick a session and data types above, then press r. "
                    "S starts a stream so events flow."
                )
        else:
            word = {
                "connecting": "connecting…",
                "live": "live",
                "reconnecting": "reconnecting",
                "closed": "disconnected",
                "failed": "error",
            }.get(self.status, self.status)
            events = self.events
            dropped = events.dropped if events else 0
            reconnects = events.reconnects if events else 0
            title = (
                f"Socket.IO: {session} ─ {word} ─ {fmt.rate(self.tail.rate)} ev/s ─ "
                f"dropped {fmt.count(dropped)} ─ reconnects {reconnects}"
            )
        if title != self._title:
            self._title = title
            self.tail.border_title = title
