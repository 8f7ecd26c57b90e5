"""Snapshots of each tab in a deterministic state.

Determinism comes from the backend and the app sharing one ManualClock (fixed
uptime, timestamps, time left and header clock), the backend's fixed seed, a
fixed terminal size, no cursor blink, and waiting until the polled state is
final before the screenshot. One hour between bursts means exactly one burst.
"""

from __future__ import annotations

from textual.pilot import Pilot
from textual.widgets import DataTable

from backends.endpoints import Endpoints
from backends.retail.client import RetailClient
from backends.retail.models import DisruptionCreate, StartRequest
from console.app import StreamopsApp
from console.tabs.disruptions import DisruptionsTab
from console.tabs.streams import StreamsTab, event_where
from console.widgets.header import BackendDot
from tests.ui.helpers import stop_blinking, wait_jobs_dot, wait_until


async def settle_streams(pilot: Pilot[None], endpoints: Endpoints) -> None:
    app = pilot.app
    stop_blinking(pilot)
    async with RetailClient(endpoints.retail or "") as client:
        await client.start(StartRequest(emit_interval_ms=3_600_000, burst=500))
        tab = app.query_one(StreamsTab)
        await wait_until(
            pilot,
            lambda: tab.statistics is not None and tab.statistics.events_sent_successfully == 500,
            "one burst of 500 events",
        )
        final = (await client.recent_events(50)).events
    # One poll fetches status, statistics and recent events concurrently, so a poll can pair
    # final statistics with rows or a status line read mid-burst; wait for the final ones.
    expected = [(str(e["event_type"]), event_where(e)) for e in final]
    table = app.query_one("#recent", DataTable)
    await wait_until(
        pilot,
        lambda: (
            [(str(r[1]), str(r[2])) for r in map(table.get_row_at, range(table.row_count))]
            == expected
        ),
        "the burst's last 50 events",
    )
    await wait_until(
        pilot, lambda: tab.status is not None and tab.status.events_sent == 500, "status"
    )
    await wait_until(
        pilot, lambda: app.query_one("#dot-retail", BackendDot).state == "healthy", "health"
    )
    await wait_jobs_dot(pilot)
    await wait_until(pilot, lambda: app.query_one("#recent").has_focus, "focus")


def test_streams_tab(snap_compare, app: StreamopsApp, backend: Endpoints) -> None:  # type: ignore[no-untyped-def]
    async def run_before(pilot: Pilot[None]) -> None:
        await settle_streams(pilot, backend)

    assert snap_compare(app, terminal_size=(120, 40), run_before=run_before)


def test_streams_tab_80x24(snap_compare, app: StreamopsApp, backend: Endpoints) -> None:  # type: ignore[no-untyped-def]
    async def run_before(pilot: Pilot[None]) -> None:
        await settle_streams(pilot, backend)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_disruptions_tab(snap_compare, app: StreamopsApp, backend: Endpoints) -> None:  # type: ignore[no-untyped-def]
    async def run_before(pilot: Pilot[None]) -> None:
        stop_blinking(pilot)
        async with RetailClient(backend.retail or "") as client:
            await client.create_disruption(
                DisruptionCreate(
                    disruption_type="inventory_shortage",
                    target_id=10,
                    severity=0.5,
                    duration_minutes=15,
                    product_ids=[101, 102, 103],
                )
            )
        await pilot.press("4")
        table = app.query_one("#active", DataTable)
        await wait_until(pilot, lambda: table.row_count == 1, "the disruption")
        await wait_until(pilot, lambda: table.has_focus, "focus")
        await wait_jobs_dot(pilot)
        assert app.query_one(DisruptionsTab).disruptions is not None

    assert snap_compare(app, terminal_size=(120, 40), run_before=run_before)
