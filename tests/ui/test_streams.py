"""Pilot flows of the Streams tab against a real embedded backend."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, Input, Select, Static

from backends.endpoints import Endpoints
from backends.retail.client import RetailApiError, RetailClient
from backends.retail.models import StartRequest
from backends.settings import Settings
from console.app import StreamopsApp
from console.screens.event_detail import EventDetailScreen
from console.tabs.base import ConsoleTab
from console.tabs.streams import StreamsTab
from tests.ui.helpers import Recorder, stop_blinking, wait_until

SIZE = (120, 40)


def status_text(app: StreamopsApp) -> str:
    return str(app.query_one("#status-line", Static).render())


async def test_start_stream_and_watch_the_counter_rise(app: StreamopsApp) -> None:
    recorder = Recorder()
    async with app.run_test(size=SIZE, message_hook=recorder) as pilot:
        stop_blinking(pilot)
        tab = app.query_one(StreamsTab)
        await wait_until(pilot, lambda: tab.config is not None, "the retail config")
        assert "No stream running — press s to start" in status_text(app)

        await pilot.press("s")
        await wait_until(
            pilot, lambda: tab.status is not None and tab.status.events_sent > 0, "first events"
        )
        first = tab.status.events_sent
        await wait_until(pilot, lambda: tab.status.events_sent > first, "the counter to rise")
        assert "running" in status_text(app)
        await wait_until(
            pilot, lambda: app.query_one("#recent", DataTable).row_count > 0, "recent events"
        )
        completed = recorder.of(ConsoleTab.ActionCompleted)
        assert [m.action for m in completed] == ["Start stream"]
        assert any(t.startswith("Start stream: Event streaming started") for t in recorder.toasts())


async def test_stop_stream(app: StreamopsApp) -> None:
    recorder = Recorder()
    async with app.run_test(size=SIZE, message_hook=recorder) as pilot:
        tab = app.query_one(StreamsTab)
        await wait_until(pilot, lambda: tab.config is not None, "the retail config")
        await pilot.press("s")
        await wait_until(pilot, lambda: bool(tab.status and tab.status.is_streaming), "running")

        await pilot.press("x")
        await wait_until(pilot, lambda: bool(tab.status and not tab.status.is_streaming), "stopped")
        await wait_until(pilot, lambda: "stopped" in status_text(app), "the stopped status line")
        assert any(t.startswith("Stop stream: Event streaming stopped") for t in recorder.toasts())


async def test_start_while_streaming_shows_the_servers_409(
    app: StreamopsApp, backend: Endpoints
) -> None:
    async with RetailClient(backend.retail or "") as client:
        await client.start(StartRequest(emit_interval_ms=1000, burst=10))
        with pytest.raises(RetailApiError) as second:
            await client.start(StartRequest(emit_interval_ms=1000, burst=10))
        assert second.value.status_code == 409

    recorder = Recorder()
    async with app.run_test(size=SIZE, message_hook=recorder) as pilot:
        tab = app.query_one(StreamsTab)
        await wait_until(pilot, lambda: tab.config is not None, "the retail config")
        await pilot.press("s")
        await wait_until(pilot, lambda: bool(recorder.of(ConsoleTab.ActionFailed)), "the failure")
        assert "Start stream failed: 409 Streaming already active" in recorder.toasts()


async def test_sink_is_applied_before_start_and_tested_by_t(app: StreamopsApp) -> None:
    recorder = Recorder()
    async with app.run_test(size=SIZE, message_hook=recorder) as pilot:
        tab = app.query_one(StreamsTab)
        await wait_until(pilot, lambda: tab.config is not None, "the retail config")
        await pilot.press("t")
        await wait_until(pilot, lambda: bool(recorder.of(ConsoleTab.ActionCompleted)), "the test")
        assert any(
            t.startswith("Test sink connection: memory sink: Connection test successful")
            for t in recorder.toasts()
        )

        app.query_one("#sink", Select).value = "kafka"
        await pilot.press("s")
        await wait_until(pilot, lambda: bool(recorder.of(ConsoleTab.ActionFailed)), "the failure")
        assert any(
            t.startswith("Start stream failed: 400 Kafka is not configured")
            for t in recorder.toasts()
        )
        await wait_until(
            pilot, lambda: tab.config is not None and tab.config.realtime.sink == "kafka", "sink"
        )


async def test_invalid_form_is_refused_before_any_request(app: StreamopsApp) -> None:
    recorder = Recorder()
    async with app.run_test(size=SIZE, message_hook=recorder) as pilot:
        tab = app.query_one(StreamsTab)
        await wait_until(pilot, lambda: tab.config is not None, "the retail config")
        app.query_one("#interval", Input).value = "99999999"
        await pilot.press("s")
        await pilot.pause(0.3)
        assert "Cannot start: interval ms: a whole number 0-3,600,000" in recorder.toasts()
        assert not recorder.of(ConsoleTab.ActionCompleted)
        assert not recorder.of(ConsoleTab.ActionFailed)


async def test_enter_on_a_recent_event_opens_its_json(
    app: StreamopsApp, backend: Endpoints
) -> None:
    async with RetailClient(backend.retail or "") as client:
        await client.start(StartRequest(emit_interval_ms=3_600_000, burst=20))
    async with app.run_test(size=SIZE) as pilot:
        recent = app.query_one("#recent", DataTable)
        await wait_until(pilot, lambda: recent.row_count == 20, "twenty recent events")
        await wait_until(pilot, lambda: recent.has_focus, "the recent table to take focus")

        await pilot.press("down", "enter")
        assert isinstance(app.screen, EventDetailScreen)
        shown = str(app.screen.query_one("#event-json", Static).render())
        assert '"payload"' in shown and '"trace_id"' in shown
        await pilot.press("escape")
        assert not isinstance(app.screen, EventDetailScreen)


async def test_space_pauses_the_recent_events(app: StreamopsApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        tab = app.query_one(StreamsTab)
        await wait_until(pilot, lambda: tab.config is not None, "the retail config")
        await pilot.press("space")
        assert tab.paused
        assert "paused" in str(app.query_one("#recent-panel").border_title)
        await pilot.press("space")
        assert not tab.paused


async def test_read_only_refuses_start_with_a_reason(
    settings: Settings, backend: Endpoints
) -> None:
    settings.ui.read_only = True
    app = StreamopsApp(settings, backend)
    recorder = Recorder()
    async with app.run_test(size=SIZE, message_hook=recorder) as pilot:
        tab = app.query_one(StreamsTab)
        await wait_until(pilot, lambda: tab.config is not None, "the retail config")
        await pilot.press("s")
        await pilot.pause(0.3)
        assert any(t.startswith("Read-only: Start stream is disabled") for t in recorder.toasts())
        assert not recorder.of(ConsoleTab.ActionCompleted)
        assert tab.status is not None and not tab.status.is_streaming
        assert app.query_one("#read-only-badge")
