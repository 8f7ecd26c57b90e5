"""2 Tails: the tail widget under load, the SSE pane against the embedded export backend.

The pilot flows tail the embedded export API over loopback SSE. Its feed is paced by
the shared ManualClock, so nothing is published until a test advances the clock:
`clock.advance(1)` publishes `feed_rate` (50) messages per stream from a fixed seed
(at most a second at a time: a feed further behind skips ahead). Snapshots feed the
widget directly with a fixed list, since stream cursors are Redis ids from the wall clock.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.pilot import Pilot
from textual.widgets import Checkbox, Input, Select

from backends.common.clock import ManualClock
from backends.endpoints import Endpoints, ExportCredentials, ExportStream
from backends.export.feed import SyntheticFeed
from backends.runtime import BackendHost
from backends.settings import ExportSettings, Settings
from console.app import StreamopsApp
from console.state import StateStore
from console.tabs.tails import TailsTab, detail_sections, format_message, is_test_message
from console.widgets.header import BackendDot
from console.widgets.tail import DetailScreen, NamePrompt, Tail, TailView
from tests.ui.helpers import Recorder, stop_blinking, wait_jobs_dot, wait_until

SIZE = (120, 40)
STYLES = Path(__file__).resolve().parents[2] / "styles"


def consumer_key(endpoints: Endpoints, data_type: str) -> str:
    assert endpoints.export_credentials is not None
    return next(
        s.consumer_key for s in endpoints.export_credentials.streams if s.data_type == data_type
    )


async def open_tails(pilot: Pilot[None]) -> TailsTab:
    app = pilot.app
    # The shell focuses Streams once mounted; switching before that would lose the focus.
    await wait_until(pilot, lambda: app.query_one("#recent").has_focus, "the initial focus")
    await pilot.press("2")
    tab = app.query_one(TailsTab)
    await wait_until(pilot, lambda: app.focused is tab.tail.view, "the tail to have focus")
    stop_blinking(pilot)
    return tab


async def connect(pilot: Pilot[None], tab: TailsTab, key: str) -> None:
    tab.query_one("#sse-stream", Select).value = key
    await pilot.pause()
    await pilot.press("r")
    await wait_until(pilot, lambda: tab.status == "connected", "the SSE connection")


async def publish(pilot: Pilot[None], clock: ManualClock, tab: TailsTab, seconds: float) -> int:
    """Advance the feed's clock (50 messages/s per stream, ~5 % of them test data, which
    the server leaves out unless asked) and wait until what it published has arrived."""
    before = tab.tail.received
    clock.advance(seconds)
    await wait_until(pilot, lambda: tab.tail.received > before, "new messages")
    settled = -1
    while settled != tab.tail.received:
        settled = tab.tail.received
        await pilot.pause(0.3)
    return settled - before


# -- fixed messages for the widget --------------------------------------------------


def fixed_messages(count: int, data_type: str = "identifier", seed: int = 7) -> list[dict]:
    """The synthetic feed's messages with fixed cursors, as an SSE batch would carry them."""
    feed = SyntheticFeed(random.Random(seed), ManualClock(), test_share=0.15)
    messages = []
    for n in range(count):
        message = feed.message(data_type)
        cursor = f"1705314600000-{n}"
        messages.append({"message_id": cursor, "cursor": cursor, **message})
    return messages


def scrolled_to_end(view: TailView) -> Callable[[], bool]:
    """A condition for `wait_until`: the newest line is in view (and there is scrolling)."""
    return lambda: view.max_scroll_y > 0 and view.scroll_y == view.max_scroll_y


class TailApp(App[None]):
    """The tail alone, for load and widget tests."""

    CSS_PATH: ClassVar[list[str | Path]] = [STYLES / "app.tcss", STYLES / "tails.tcss"]

    def __init__(self, **options: Any) -> None:
        super().__init__()
        self.tail = Tail(
            formatter=format_message,
            marker=is_test_message,
            clock=ManualClock(),
            saved_filters={},
            **options,
        )

    def compose(self) -> ComposeResult:
        yield self.tail

    def on_mount(self) -> None:
        self.tail.view.focus()


# -- the widget ---------------------------------------------------------------------


async def test_20k_messages_stay_bounded_and_the_keyboard_still_works() -> None:
    """Correctness under a flood; how responsive the loop stays is bench/tail.py's."""
    app = TailApp(max_lines=2_000, buffer_size=5_000)
    template = fixed_messages(50)
    async with app.run_test(size=SIZE) as pilot:
        tail = app.tail

        async def produce() -> None:
            """20k messages in 1,000-message batches, as fast as SSE batches could come."""
            for batch in range(20):
                tail.push_many(
                    {**template[i % 50], "cursor": f"1-{batch * 1000 + i}"} for i in range(1000)
                )
                await asyncio.sleep(0.005)

        await produce()
        await pilot.pause(0.3)

        assert tail.received == 20_000
        assert tail.buffered == 5_000 and tail.dropped == 15_000
        assert len(tail.view.entries) == 2_000 == tail.view.line_count
        assert tail.shown[-1]["cursor"] == "1-19999"
        assert "15,000 dropped (cap 5,000)" in str(tail.query_one(".tail-status").render())

        await pilot.press("space")
        assert tail.paused
        await produce()
        await pilot.pause(0.2)
        assert tail.behind == 20_000 and tail.shown[-1]["cursor"] == "1-19999"
        await pilot.press("space")
        assert not tail.paused and tail.behind == 0
        assert len(tail.view.entries) == 2_000 == tail.view.line_count


async def test_the_view_follows_new_lines_until_the_user_scrolls_up() -> None:
    app = TailApp()
    messages = fixed_messages(120)
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.tail.view
        at_end = scrolled_to_end(view)
        app.tail.push_many(messages[:60])
        # The lines are wider than the view: the horizontal scrollbar appears once `Log`
        # has measured them, and takes a row from under the newest line.
        await wait_until(pilot, lambda: view.show_horizontal_scrollbar, "the scrollbar")
        await wait_until(pilot, at_end, "the newest line in view")
        app.tail.push_many(messages[60:80])
        await wait_until(pilot, lambda: len(view.entries) == 80, "the new lines")
        await wait_until(pilot, at_end, "the view to follow")

        view.scroll_to(y=0, animate=False, immediate=True)
        app.tail.push_many(messages[80:100])
        await wait_until(pilot, lambda: len(view.entries) == 100, "more lines")
        await pilot.pause(0.1)
        assert view.scroll_y == 0 and not app.tail.paused

        view.scroll_end(animate=False, immediate=True, x_axis=False)
        app.tail.push_many(messages[100:])
        await wait_until(pilot, lambda: len(view.entries) == 120, "the last lines")
        await wait_until(pilot, at_end, "the view to follow again")


async def test_pause_freezes_the_view_while_counting_and_space_jumps_back_to_live() -> None:
    app = TailApp()
    messages = fixed_messages(60)
    async with app.run_test(size=SIZE) as pilot:
        tail = app.tail
        tail.push_many(messages[:40])
        await pilot.pause(0.2)
        assert len(tail.shown) == 40

        await pilot.press("space")
        tail.push_many(messages[40:])
        await pilot.pause(0.2)
        assert tail.received == 60 and tail.behind == 20
        assert len(tail.shown) == 40
        assert "paused — 20 behind" in str(tail.query_one(".tail-status").render())

        await pilot.press("space")
        await pilot.pause(0.1)
        assert tail.shown == messages and tail.behind == 0
        assert "live" in str(tail.query_one(".tail-status").render())


async def test_moving_the_cursor_pauses_and_enter_selects_that_message() -> None:
    app = TailApp()
    messages = fixed_messages(30)
    selected: list[dict] = []

    class Picker(TailApp):
        def on_tail_view_selected(self, event: TailView.Selected) -> None:
            selected.append(event.message)

    app = Picker()
    async with app.run_test(size=SIZE) as pilot:
        app.tail.push_many(messages)
        await pilot.pause(0.2)
        await pilot.press("up", "up", "enter")
        await pilot.pause(0.1)
        assert app.tail.paused
        assert selected == [messages[27]]
        await pilot.press("home", "enter", "end", "enter")
        await pilot.pause(0.1)
        assert selected[1:] == [messages[0], messages[29]]


async def test_filters_apply_to_buffered_and_new_messages() -> None:
    app = TailApp()
    messages = fixed_messages(120)
    phones = [m for m in messages if m["type"] == "phone"]
    assert 0 < len(phones) < len(messages)
    async with app.run_test(size=SIZE) as pilot:
        tail = app.tail
        tail.push_many(messages[:60])
        await pilot.pause(0.2)
        assert tail.apply_filter("type=phone")
        assert tail.shown == [m for m in messages[:60] if m["type"] == "phone"]
        tail.push_many(messages[60:])
        await pilot.pause(0.2)
        assert tail.shown == phones

        assert not tail.apply_filter('originator.name="James')
        assert tail.filter.source == "type=phone"
        assert tail.query_one(".tail-filter").has_class("-invalid")

        assert tail.apply_filter("no-such-text-anywhere")
        assert tail.shown == []
        assert "No message matches" in str(tail.query_one(".tail-hint").render())
        assert tail.apply_filter("")
        assert tail.shown == messages


def test_lines_show_the_key_fields_of_both_data_types() -> None:
    identifier = {
        "cursor": "1735689600000-5",
        "identifier_id": "550e8400",
        "type": "phone",
        "display_value": "+12345678888",
        "confidence": 0.95,
        "modified_at": "2025-01-15T10:30:00Z",
        "is_test": True,
        "tags": [{"tag_title": "Threat Type", "value": "Phishing"}],
    }
    line = format_message(identifier)
    assert line.split() == [
        "10:30:00",
        "identifier",
        "phone",
        "+12345678888",
        "conf",
        "0.95",
        "Threat",
        "Type=Phishing",
        "TEST",
    ]
    assert is_test_message(identifier)
    journal = {
        "cursor": "1735689600000-6",
        "type": "phone_call",
        "description": "",
        "performed_at": "2025-10-27T12:35:36.158925Z",
        "originator": {"name": "James D"},
        "identifiers": [{"type": "phone", "display_value": "+12345678888"}],
        "confidence": 1,
    }
    assert format_message(journal).split() == [
        "12:35:36",
        "journal",
        "phone_call",
        "phone",
        "+12345678888",
        "conf",
        "1.00",
        "by",
        "James",
        "D",
    ]
    assert format_message({"cursor": "1735689600000-0"}).startswith("00:00:00 journal")


def test_detail_goes_through_the_typed_models() -> None:
    [identifier] = fixed_messages(1)
    title, sections = detail_sections(identifier)
    assert title.startswith(f"identifier · {identifier['type']} · {identifier['display_value']}")
    headings = [heading for heading, _ in sections]
    assert headings[0] == "IdentifierStreamMessage"
    assert "parse_identifier_details" in headings[1]
    assert sections[0][1]["identifier_id"] == identifier["identifier_id"]

    [journal] = fixed_messages(1, "journal_entry")
    title, sections = detail_sections(journal)
    assert title.startswith("journal entry")
    assert sections[0][0] == "JournalEntryStreamMessage"
    assert len(sections) == 1 + len(journal["identifiers"])
    assert sections[1][0].startswith(f"identifiers[0] {journal['identifiers'][0]['type']}")

    title, sections = detail_sections({"identifier_id": "x", "tags": "not a list"})
    assert sections[0][0].startswith("raw message (does not fit IdentifierStreamMessage")


def test_every_binding_has_an_id_and_a_description() -> None:
    for owner in (TailsTab, Tail, TailView, DetailScreen, NamePrompt):
        for binding in owner.BINDINGS:
            assert isinstance(binding, Binding)
            assert binding.id and binding.description, (owner.__name__, binding.key)


# -- the SSE pane against the real export backend -----------------------------------


async def test_tail_the_identifier_stream(
    app: StreamopsApp,
    backend: Endpoints,
    clock: ManualClock,
    settings: Settings,
    state_file: Path,
) -> None:
    key = consumer_key(backend, "identifier")
    recorder = Recorder()
    async with app.run_test(size=SIZE, message_hook=recorder) as pilot:
        tab = await open_tails(pilot)
        tail = tab.tail
        await connect(pilot, tab, key)
        dot = app.query_one("#dot-export", BackendDot)
        assert dot.has_class("-good")
        assert "live" in str(tail.border_title) and "demo-identifiers" in str(tail.border_title)

        # messages arrive
        first = await publish(pilot, clock, tab, 1.0)
        assert 40 <= first <= 50 and len(tail.shown) == tail.received == first
        assert all("identifier_id" in m and not m["is_test"] for m in tail.shown)

        # pause: the count keeps rising, the view is frozen
        await pilot.press("space")
        frozen = list(tail.shown)
        second = await publish(pilot, clock, tab, 1.0)
        assert tail.received == first + second and tail.behind == second
        assert tail.shown == frozen

        # resume: back to live, everything shown
        await pilot.press("space")
        await pilot.pause(0.2)
        assert len(tail.shown) == tail.received and not tail.paused

        # filter type=phone shows only phones
        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        await pilot.press(*"type=phone", "enter")
        assert app.focused is tail.view
        phones = list(tail.shown)
        assert phones and {m["type"] for m in phones} == {"phone"}

        # save it, clear it, apply it again from the saved list
        await pilot.press("s")
        assert isinstance(app.screen, NamePrompt)
        await pilot.press(*"phones", "enter")
        await wait_until(pilot, lambda: state_file.exists(), "the state file")
        assert StateStore(state_file).filters == {"phones": "type=phone"}
        assert tail.apply_filter("")
        assert len(tail.shown) == tail.received
        saved = tail.query_one(".tail-saved", Select)
        saved.clear()
        await pilot.pause()
        saved.value = "phones"
        await wait_until(pilot, lambda: tail.shown == phones, "the saved filter")

        # detail of the selected message, through the typed model
        tail.view.focus()
        await pilot.press("up", "enter")
        assert isinstance(app.screen, DetailScreen)
        headings = [str(s.render()) for s in app.screen.query(".tail-detail-heading")]
        assert headings[0] == "IdentifierStreamMessage"
        assert headings[1] == "PhoneDetails — parse_identifier_details"
        await pilot.press("escape")
        assert not isinstance(app.screen, DetailScreen)

        # copy the cursor
        cursor = tab.listen_state.cursor if tab.listen_state else ""
        assert re.fullmatch(r"\d+-\d+", cursor)
        assert cursor in str(tail.border_title)
        await pilot.press("c")
        assert app.clipboard == cursor
        assert f"Copied: Cursor {cursor} copied to the clipboard" in recorder.toasts()

    saved_cursor = StateStore(state_file).cursor(key)
    assert saved_cursor == cursor

    # restart: the last cursor is offered (and chosen) as the start cursor
    again = StreamopsApp(settings, backend, clock=clock)
    async with again.run_test(size=SIZE) as pilot:
        tab = await open_tails(pilot)
        tab.query_one("#sse-stream", Select).value = key
        await pilot.pause(0.1)
        assert tab.query_one("#sse-cursor", Select).value == saved_cursor
        tab.tail.query_one(".tail-saved", Select).value = "phones"
        await wait_until(pilot, lambda: tab.tail.filter.source == "type=phone", "saved filter")


async def test_disconnect_and_resume_from_the_cursor_without_gaps_or_duplicates(
    app: StreamopsApp, backend: Endpoints, clock: ManualClock
) -> None:
    async with app.run_test(size=SIZE) as pilot:
        tab = await open_tails(pilot)
        await connect(pilot, tab, consumer_key(backend, "journal_entry"))
        await publish(pilot, clock, tab, 1.0)
        dot = app.query_one("#dot-export", BackendDot)

        await pilot.press("x")
        await wait_until(pilot, lambda: tab.status == "closed", "the disconnect")
        assert "disconnected" in str(tab.tail.border_title)
        assert dot.has_class("-off")
        clock.advance(1.0)  # published while nobody listens
        await pilot.pause(0.3)

        await pilot.press("r")
        await wait_until(pilot, lambda: tab.status == "connected", "the resumed connection")
        await publish(pilot, clock, tab, 1.0)
        cursors = [m["cursor"] for m in tab.tail.shown]
        ordered = sorted(cursors, key=lambda c: tuple(int(p) for p in c.split("-")))
        assert cursors == ordered and len(set(cursors)) == len(cursors)
        assert len(cursors) >= 120  # three seconds' worth, the missed one included
        assert all("identifiers" in m for m in tab.tail.shown)
        assert dot.has_class("-good")


async def test_include_test_streams_test_data_highlighted(
    app: StreamopsApp, backend: Endpoints, clock: ManualClock
) -> None:
    async with app.run_test(size=SIZE) as pilot:
        tab = await open_tails(pilot)
        await pilot.press("t")
        assert tab.query_one("#sse-include-test", Checkbox).value
        await connect(pilot, tab, consumer_key(backend, "identifier"))
        received = await publish(pilot, clock, tab, 1.0) + await publish(pilot, clock, tab, 1.0)
        assert received == 100  # test data included
        tests = [e for e in tab.tail.view.entries if e.message["is_test"]]
        assert tests and all(e.marked and (e.line or "").endswith("TEST") for e in tests)
        assert not any(e.marked for e in tab.tail.view.entries if not e.message["is_test"])


async def test_a_rejected_key_is_a_toast_with_the_servers_code_and_message(
    app: StreamopsApp, backend: Endpoints
) -> None:
    recorder = Recorder()
    async with app.run_test(size=SIZE, message_hook=recorder) as pilot:
        tab = await open_tails(pilot)
        tab.query_one("#sse-stream", Select).value = "custom"
        await pilot.pause()
        assert tab.query_one("#sse-custom").display
        assert tab.query_one("#sse-url", Input).value == backend.export
        tab.query_one("#sse-key-id", Input).value = "nobody"
        tab.query_one("#sse-secret", Input).value = "wrong"
        tab.query_one("#sse-consumer-key", Input).value = consumer_key(backend, "identifier")
        tab.query_one("#sse-consumer-key", Input).focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: tab.status == "failed", "the failure")
        [toast] = [t for t in recorder.toasts() if t.startswith("Export stream")]
        assert ": 401 " in toast, toast
        assert "check the key" in toast
        assert app_dot(app).has_class("-bad")
        assert "Not connected: 401" in str(tab.tail.query_one(".tail-hint").render())


def app_dot(app: StreamopsApp) -> BackendDot:
    return app.query_one("#dot-export", BackendDot)


async def test_header_palette_and_keymap(app: StreamopsApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await open_tails(pilot)
        dot = app_dot(app)
        assert dot.has_class("-off") and "configured — not tailing" in str(dot.tooltip)
        names = {command.name for command in app.palette_commands()}
        assert {"Tail export stream…", "Copy cursor", "Pause tail", "Filter tail…"} <= names
        ids = {row.binding_id for row in app.keymap_rows()}
        assert {"tails.pause", "tails.filter", "tails.copy_cursor", "tails.connect"} <= ids
        await pilot.press("1")
        [command] = [c for c in app.palette_commands() if c.name == "Filter tail…"]
        command.callback()
        await wait_until(pilot, lambda: app.focused is app.query_one(".tail-filter"), "the filter")


async def test_p_switches_panes_and_the_keys_follow_the_pane(app: StreamopsApp) -> None:
    """Tail keys act on the pane that shows; each pane's own keys only work there."""
    async with app.run_test(size=SIZE) as pilot:
        tab = await open_tails(pilot)
        assert not tab.check_action("start_streams", ())
        await pilot.press("p")
        assert tab.query_one("#tails-panes").current == "socketio-pane"
        assert app.focused is tab.realtime.tail.view
        assert not tab.check_action("copy_cursor", ())
        assert tab.check_action("start_streams", ())
        await pilot.press("space")
        assert tab.realtime.tail.paused and not tab.tail.paused
        await pilot.press("p")
        assert tab.query_one("#tails-panes").current == "sse-pane"
        assert app.focused is tab.tail.view


# -- snapshots ----------------------------------------------------------------------

FIXED_ENDPOINTS = ExportCredentials(
    api_key_id="demo-key",
    api_key_secret="demo-secret",
    streams=[
        ExportStream(
            name="demo-identifiers",
            consumer_key="6f1c2a9e-0000-4000-8000-000000000001",
            data_type="identifier",
        ),
        ExportStream(
            name="demo-journal-entries",
            consumer_key="6f1c2a9e-0000-4000-8000-000000000002",
            data_type="journal_entry",
        ),
    ],
)


def snapshot_app(settings: Settings, backend: Endpoints, clock: ManualClock) -> StreamopsApp:
    """Export endpoints that nothing listens on: the snapshot never connects."""
    endpoints = backend.model_copy(
        update={"export": "http://127.0.0.1:9/api", "export_credentials": FIXED_ENDPOINTS}
    )
    return StreamopsApp(settings, endpoints, clock=clock)


async def settle_tails(pilot: Pilot[None]) -> None:
    tab = await open_tails(pilot)
    view = tab.tail.view
    tab.tail.push_many(fixed_messages(60))
    await wait_until(pilot, lambda: len(view.entries) == 60, "the lines")
    # `Log` measures line widths in a thread: the horizontal scrollbar depends on it.
    await wait_until(pilot, lambda: view.virtual_size.width > 80, "the line widths")
    at_end = scrolled_to_end(view)
    await wait_until(pilot, at_end, "the view scrolled to the newest line")
    await pilot.press("up", "up", "up")
    await wait_until(pilot, lambda: tab.tail.paused and view.cursor == 56, "the paused view")
    await wait_until(pilot, at_end, "the cursor's line in view")
    await wait_jobs_dot(pilot)
    await pilot.pause(0.2)


def test_tails_tab(  # type: ignore[no-untyped-def]
    snap_compare, settings: Settings, backend: Endpoints, clock: ManualClock
) -> None:
    app = snapshot_app(settings, backend, clock)
    assert snap_compare(app, terminal_size=(120, 40), run_before=settle_tails)


def test_tails_tab_80x24(  # type: ignore[no-untyped-def]
    snap_compare, settings: Settings, backend: Endpoints, clock: ManualClock
) -> None:
    app = snapshot_app(settings, backend, clock)
    assert snap_compare(app, terminal_size=(80, 24), run_before=settle_tails)


async def test_the_tail_survives_heartbeats(settings: Settings, clock: ManualClock) -> None:
    with BackendHost(Settings(export=ExportSettings(heartbeat_seconds=0.2)), clock=clock) as host:
        app = StreamopsApp(settings, host.endpoints, clock=clock)
        async with app.run_test(size=SIZE) as pilot:
            tab = await open_tails(pilot)
            await connect(pilot, tab, consumer_key(host.endpoints, "identifier"))
            await publish(pilot, clock, tab, 1.0)
            await pilot.pause(1.0)  # five heartbeats
            assert tab.status == "connected"
