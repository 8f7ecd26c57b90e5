"""2 Tails, Socket.IO pane: a live tail of realtime `stream_event`s from the embedded backend.

The realtime backend runs embedded (real uvicorn, real python-socketio server, real
`RealtimeClient` in the console) on the shared ManualClock: event timestamps, rate-limit
windows and token lifetimes follow it, so a test advances it to roll a stream's
per-minute quota or to make the demo session's token due for refresh. Streams page
with a small real delay (`page_delay_ms`), which is what lets a test pause mid-stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from textual.pilot import Pilot
from textual.widgets import Checkbox, ContentSwitcher, Input, Select

from backends.common.clock import ManualClock
from backends.endpoints import Endpoints
from backends.runtime import BackendHost
from backends.settings import RealtimeSettings, Settings
from console.app import StreamopsApp
from console.tabs.tails import TailsTab
from console.tabs.tails_realtime import RealtimePane, SessionPrompt, detail_sections
from console.widgets.header import BackendDot
from console.widgets.tail import DetailScreen
from tests.ui.helpers import Recorder, stop_blinking, wait_until

SIZE = (120, 40)
DEMO = "your-session-id"


@pytest.fixture
def host(clock: ManualClock) -> Iterator[BackendHost]:
    """Retail (the app needs it) and realtime, embedded; no export."""
    settings = Settings(realtime=RealtimeSettings(page_delay_ms=20))
    with BackendHost(settings, clock=clock, only=["retail", "realtime"]) as running:
        yield running


@pytest.fixture
def rt_app(settings: Settings, host: BackendHost, clock: ManualClock) -> StreamopsApp:
    return StreamopsApp(settings, host.endpoints, clock=clock)


async def open_realtime(pilot: Pilot[None]) -> RealtimePane:
    app = pilot.app
    await wait_until(pilot, lambda: app.query_one("#recent").has_focus, "the initial focus")
    await pilot.press("2", "p")
    tab = app.query_one(TailsTab)
    pane = tab.realtime
    await wait_until(pilot, lambda: app.focused is pane.tail.view, "the realtime tail's focus")
    await wait_until(pilot, lambda: DEMO in pane.sessions, "the session list")
    stop_blinking(pilot)
    return pane


async def connect(pilot: Pilot[None], pane: RealtimePane) -> None:
    await pilot.press("r")
    await wait_until(pilot, lambda: pane.status == "live", "the subscription")


def set_form(pane: RealtimePane, **fields: str) -> None:
    for name, value in fields.items():
        pane.query_one(f"#rt-{name}", Input).value = value


async def start(pilot: Pilot[None], pane: RealtimePane, expected: int) -> None:
    """Press S (with the tail focused) and wait until `expected` events in all arrived."""
    pane.tail.view.focus()
    await pilot.press("S")
    await wait_until(pilot, lambda: pane.tail.received >= expected, f"{expected} events")


def data_types(pane: RealtimePane) -> set[str]:
    return {m["data"]["data_type"] for m in pane.tail.shown if m["event_type"] == "data_update"}


async def test_tail_the_demo_session(rt_app: StreamopsApp, clock: ManualClock) -> None:
    recorder = Recorder()
    async with rt_app.run_test(size=SIZE, message_hook=recorder) as pilot:
        pane = await open_realtime(pilot)
        # the demo session is google: gmail, threads, calendar, contacts, files
        visible = {str(box.tooltip) for box in pane.query(".rt-type") if box.display}
        assert visible == {
            "gmail_messages",
            "gmail_threads",
            "calendar_events",
            "contacts",
            "files",
        }
        assert pane.chosen_types() == ["gmail_messages", "calendar_events"]
        dot = rt_app.query_one("#dot-realtime", BackendDot)
        assert "configured — not connected" in str(dot.tooltip)

        await connect(pilot, pane)
        assert dot.has_class("-good")
        title = str(pane.tail.border_title)
        assert title.startswith(f"Socket.IO: {DEMO} ─ live ─")
        assert "dropped 0 ─ reconnects 0" in title

        # events arrive and render
        set_form(pane, max="30", batch="10")
        await start(pilot, pane, 60)
        await pilot.pause(0.3)
        assert pane.tail.received == 60 and len(pane.tail.shown) == 60
        assert data_types(pane) == {"gmail_messages_message", "calendar_events_event"}
        lines = [entry.line for entry in pane.tail.view.entries]
        assert all(line.startswith("10:30:00 data_update") for line in lines)
        await wait_until(
            pilot,
            lambda: "gmail ● completed 30" in str(pane.query_one("#rt-info").render()),
            "the streams line",
        )
        assert any(
            t.startswith("Stream started: gmail_messages stream-") for t in recorder.toasts()
        )

        # pause: the count keeps rising, the view is frozen
        await pilot.press("space")
        frozen = list(pane.tail.shown)
        await start(pilot, pane, 120)
        await pilot.pause(0.3)
        assert pane.tail.behind == 60 and pane.tail.shown == frozen
        assert "paused — 60 behind" in str(pane.tail.query_one(".tail-status").render())

        # live again: everything shown
        await pilot.press("space")
        await pilot.pause(0.2)
        assert len(pane.tail.shown) == 120 and not pane.tail.paused

        # filter on a nested field
        await pilot.press("slash")
        assert isinstance(rt_app.focused, Input)
        await pilot.press(*"data.data_type=calendar_events_event", "enter")
        assert rt_app.focused is pane.tail.view
        assert len(pane.tail.shown) == 60
        assert data_types(pane) == {"calendar_events_event"}

        # detail through the typed event model
        await pilot.press("up", "enter")
        assert isinstance(rt_app.screen, DetailScreen)
        headings = [str(s.render()) for s in rt_app.screen.query(".tail-detail-heading")]
        assert headings == ["DataUpdateEvent", "payload — calendar_events_event"]
        await pilot.press("escape")

        # disconnect
        await pilot.press("x")
        assert pane.status == "closed"
        assert "disconnected" in str(pane.tail.border_title)
        assert dot.has_class("-off")


async def test_rate_limit_warning_and_token_refresh_are_highlighted_and_toasted(
    rt_app: StreamopsApp, clock: ManualClock
) -> None:
    recorder = Recorder()
    async with rt_app.run_test(size=SIZE, message_hook=recorder) as pilot:
        pane = await open_realtime(pilot)
        pane.set_types(["files"])
        await connect(pilot, pane)
        # 10 a minute: the 9th event leaves 1, which is the warning threshold
        set_form(pane, max="12", batch="12", rate="10")
        await start(pilot, pane, 11)
        await wait_until(
            pilot,
            lambda: any(e.marked for e in pane.tail.view.entries),
            "the highlighted warning",
        )
        [warning] = [e for e in pane.tail.view.entries if e.marked]
        assert warning.message["event_type"] == "rate_limit_warning"
        assert "Rate limit approaching. 1 requests remaining." in warning.line
        assert "rate_limit_warning: Rate limit approaching. 1 requests remaining." in (
            recorder.toasts()
        )
        assert pane.tail.received == 11  # 10 updates; the stream waits for the next minute

        # an hour on: the demo token is due, refreshed, announced
        clock.advance(3400)
        await wait_until(
            pilot,
            lambda: any(m["event_type"] == "token_refresh" for m in pane.tail.shown),
            "the token refresh",
        )
        [refresh] = [
            e for e in pane.tail.view.entries if e.message["event_type"] == "token_refresh"
        ]
        assert refresh.marked and "expires in 3600 s" in refresh.line
        assert any(
            t.startswith("google token_refresh: expires in 3600 s") for t in recorder.toasts()
        )
        info = str(pane.query_one("#rt-info").render())
        assert "token refreshed 11:26:40" in info and "quota 1 left" in info
        # the new minute let the stream finish
        await wait_until(
            pilot,
            lambda: sum(m["event_type"] == "data_update" for m in pane.tail.shown) == 12,
            "the rest of the stream",
        )


async def test_reconnects_after_the_server_drops_the_connection(
    rt_app: StreamopsApp, host: BackendHost
) -> None:
    recorder = Recorder()
    async with rt_app.run_test(size=SIZE, message_hook=recorder) as pilot:
        pane = await open_realtime(pilot)
        await connect(pilot, pane)
        backend = host.realtime
        assert backend is not None

        async def drop_all() -> None:
            for sid in backend.service.connected_sids():
                await backend.sio.disconnect(sid)

        await asyncio.to_thread(host.call, drop_all())
        await wait_until(
            pilot, lambda: pane.events is not None and pane.events.reconnects == 1, "the drop"
        )
        await wait_until(
            pilot,
            lambda: "live ─ 0.0 ev/s ─ dropped 0 ─ reconnects 1" in str(pane.tail.border_title),
            "the new subscription",
        )
        assert "Socket.IO reconnected: Subscribed again to gmail_messages, calendar_events" in (
            recorder.toasts()
        )
        # subscribed again: a new stream's events arrive on the new connection
        set_form(pane, max="5", batch="5")
        await start(pilot, pane, 10)
        assert data_types(pane) == {"gmail_messages_message", "calendar_events_event"}


async def test_create_a_microsoft_session_and_tail_outlook(
    rt_app: StreamopsApp, host: BackendHost
) -> None:
    recorder = Recorder()
    async with rt_app.run_test(size=SIZE, message_hook=recorder) as pilot:
        pane = await open_realtime(pilot)
        await pilot.press("N")
        assert isinstance(rt_app.screen, SessionPrompt)
        rt_app.screen.query_one("#session-provider", Select).value = "microsoft"
        rt_app.screen.query_one("#session-agent", Input).focus()
        await pilot.press(*"agent-7", "enter")
        await wait_until(pilot, lambda: len(pane.sessions) == 2, "the new session")
        session = pane.chosen_session()
        assert session and session != DEMO
        assert pane.sessions[session].provider == "microsoft"
        assert pane.sessions[session].agent_id == "agent-7"
        assert any(
            t.startswith(f"Session created: {session} (microsoft)") for t in recorder.toasts()
        )
        visible = {str(box.tooltip) for box in pane.query(".rt-type") if box.display}
        assert visible == {"outlook_messages", "outlook_events", "contacts", "files"}
        assert pane.chosen_types() == ["outlook_messages", "outlook_events"]

        pane.tail.view.focus()
        await connect(pilot, pane)
        set_form(pane, max="4", batch="4")
        await start(pilot, pane, 8)
        updates = [m for m in pane.tail.shown if m["event_type"] == "data_update"]
        assert {m["session_id"] for m in updates} == {session}
        assert data_types(pane) == {"outlook_messages_message", "outlook_events_event"}

        # the spec's Outlook filter, applied by the server
        pane.set_types(["outlook_messages"])
        set_form(pane, filters='filter="isRead eq false"')
        await start(pilot, pane, 12)
        unread = [m["data"]["payload"] for m in pane.tail.shown[8:]]
        assert len(unread) == 4 and all(item["isRead"] is False for item in unread)

        # X stops the session's active streams (real time keeps them running)
        set_form(pane, max="1", batch="1", filters="")
        pane.query_one("#rt-real-time", Checkbox).value = True
        pane.set_types(["contacts"])
        await start(pilot, pane, 13)
        await wait_until(
            pilot,
            lambda: "contacts ● active" in str(pane.query_one("#rt-info").render()),
            "the active stream",
        )
        await pilot.press("X")
        await wait_until(
            pilot,
            lambda: "contacts ● stopped" in str(pane.query_one("#rt-info").render()),
            "the stopped stream",
        )


async def test_server_errors_are_toasts_with_code_and_message(rt_app: StreamopsApp) -> None:
    recorder = Recorder()
    async with rt_app.run_test(size=SIZE, message_hook=recorder) as pilot:
        pane = await open_realtime(pilot)
        pane.set_types(["calendar_events"])
        set_form(pane, filters="time_min=yesterday")
        pane.tail.view.focus()
        await pilot.press("S")
        await wait_until(
            pilot, lambda: any("Start stream failed" in t for t in recorder.toasts()), "the toast"
        )
        [toast] = [t for t in recorder.toasts() if "Start stream failed" in t]
        assert toast.startswith("Start stream failed: 400 STREAM_CONFIG_ERROR: ")
        assert "time_min" in toast

        set_form(pane, filters='query="is:unread')  # unclosed quote: refused before sending
        await pilot.press("S")
        await pilot.pause(0.1)
        assert "Start stream: filters: No closing quotation" in recorder.toasts()


async def test_an_expired_session_is_refused_with_the_servers_code(
    rt_app: StreamopsApp, host: BackendHost, clock: ManualClock
) -> None:
    created = await asyncio.to_thread(
        httpx.post,
        f"{host.endpoints.realtime}/api/sessions",
        json={"provider": "google", "expires_in": 10, "session_lifetime": 10},
    )
    expiring = created.json()["data"]["session_id"]
    clock.advance(60)
    recorder = Recorder()
    async with rt_app.run_test(size=SIZE, message_hook=recorder) as pilot:
        pane = await open_realtime(pilot)
        await wait_until(pilot, lambda: expiring in pane.sessions, "the expiring session")
        pane.query_one("#rt-session", Select).value = expiring
        await pilot.pause()
        pane.tail.view.focus()
        await pilot.press("r")
        await wait_until(pilot, lambda: pane.status == "failed", "the refusal")
        assert "Socket.IO · TOKEN_EXPIRED: TOKEN_EXPIRED: OAuth token expired" in (
            recorder.toasts()
        )
        assert rt_app.query_one("#dot-realtime", BackendDot).has_class("-bad")
        assert "Not connected: TOKEN_EXPIRED" in str(pane.tail.query_one(".tail-hint").render())
        assert pane.sessions[expiring].status == "expired"  # as the server listed it


async def test_palette_and_keymap_reach_the_realtime_pane(rt_app: StreamopsApp) -> None:
    async with rt_app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: rt_app.query_one("#recent").has_focus, "the initial focus")
        names = {command.name for command in rt_app.palette_commands()}
        assert {
            "Tail realtime session…",
            "Connect realtime session",
            "Create realtime session…",
            "Start realtime stream",
            "Stop realtime streams",
        } <= names
        ids = {row.binding_id for row in rt_app.keymap_rows()}
        assert {"tails.start_stream", "tails.stop_streams", "tails.new_session"} <= ids
        [command] = [c for c in rt_app.palette_commands() if c.name == "Create realtime session…"]
        command.callback()
        await wait_until(pilot, lambda: isinstance(rt_app.screen, SessionPrompt), "the prompt")
        assert rt_app.query_one("#tails-panes", ContentSwitcher).current == "socketio-pane"
        await pilot.press("escape")
        assert not isinstance(rt_app.screen, SessionPrompt)


# -- detail -------------------------------------------------------------------------


def test_detail_goes_through_the_typed_event_models() -> None:
    warning = {
        "event_type": "rate_limit_warning",
        "session_id": DEMO,
        "provider": "google",
        "timestamp": 1705314600.0,
        "data": {
            "remaining_quota": 10,
            "reset_time": 1705314660.0,
            "warning_message": "Rate limit approaching. 10 requests remaining.",
        },
    }
    title, sections = detail_sections(warning)
    assert title == "rate_limit_warning · google · 10:30:00 UTC"
    assert [heading for heading, _ in sections] == ["RateLimitWarningEvent"]
    update = {**warning, "event_type": "data_update"}
    update["data"] = {"data_type": "files_file", "payload": {"id": "f1", "name": "a.pdf"}}
    title, sections = detail_sections(update)
    assert title == "data_update · files_file · 10:30:00 UTC"
    assert sections[1] == ("payload — files_file", {"id": "f1", "name": "a.pdf"})
    assert "payload" not in sections[0][1]["data"]
    title, sections = detail_sections({"event_type": "data_update"})
    assert sections[0][0].startswith("raw message (not a stream_event")


# -- snapshot -----------------------------------------------------------------------


async def settle_realtime(pilot: Pilot[None]) -> None:
    """Connected to the demo session, 8 gmail messages and a rate-limit warning, paused."""
    pane = await open_realtime(pilot)
    pane.set_types(["gmail_messages"])
    await connect(pilot, pane)
    set_form(pane, max="8", batch="8", rate="9")
    await start(pilot, pane, 9)
    await wait_until(
        pilot,
        lambda: "gmail ● completed 8" in str(pane.query_one("#rt-info").render()),
        "the streams line",
    )
    # Toasts fade on the wall clock: clear them so the picture is the same every run.
    pilot.app.clear_notifications()
    view = pane.tail.view
    await wait_until(pilot, lambda: view.virtual_size.width > 80, "the line widths")
    await pilot.press("up")
    await wait_until(pilot, lambda: pane.tail.paused and view.cursor == 7, "the paused view")
    await pilot.pause(0.3)


def test_realtime_pane(  # type: ignore[no-untyped-def]
    snap_compare, settings: Settings, host: BackendHost, clock: ManualClock
) -> None:
    app = StreamopsApp(settings, host.endpoints, clock=clock)
    assert snap_compare(app, terminal_size=(120, 40), run_before=settle_realtime)


def test_realtime_pane_80x24(  # type: ignore[no-untyped-def]
    snap_compare, settings: Settings, host: BackendHost, clock: ManualClock
) -> None:
    app = StreamopsApp(settings, host.endpoints, clock=clock)
    assert snap_compare(app, terminal_size=(80, 24), run_before=settle_realtime)


async def test_without_a_realtime_server_the_pane_says_how_to_configure_one(
    settings: Settings, host: BackendHost, clock: ManualClock
) -> None:
    endpoints: Endpoints = host.endpoints.model_copy(
        update={"realtime": None, "realtime_session_id": None}
    )
    app = StreamopsApp(settings, endpoints, clock=clock)
    recorder = Recorder()
    async with app.run_test(size=SIZE, message_hook=recorder) as pilot:
        await wait_until(pilot, lambda: app.query_one("#recent").has_focus, "the initial focus")
        await pilot.press("2", "p")
        pane = app.query_one(TailsTab).realtime
        assert "realtime.url" in str(app.query_one("#dot-realtime", BackendDot).tooltip)
        assert "not configured" in str(pane.tail.border_title)
        await pilot.pause(0.3)
        assert "realtime.url" in str(pane.tail.query_one(".tail-hint").render())
        await pilot.press("r")
        assert any("realtime.url" in t for t in recorder.toasts())
