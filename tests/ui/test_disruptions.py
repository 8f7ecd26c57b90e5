"""Pilot flows of the Disruptions tab against a real embedded backend."""

from __future__ import annotations

from textual.widgets import DataTable, Input, Static

from backends.common.clock import ManualClock
from backends.endpoints import Endpoints
from backends.retail.client import RetailClient
from backends.retail.models import DisruptionCreate
from console.app import StreamopsApp
from console.screens.confirm import ConfirmScreen
from console.tabs.base import ConsoleTab
from console.tabs.disruptions import DisruptionsTab
from tests.ui.helpers import Recorder, stop_blinking, wait_until

SIZE = (120, 40)


def active(app: StreamopsApp) -> DataTable[str]:
    return app.query_one("#active", DataTable)


async def open_tab(pilot, app: StreamopsApp) -> None:  # type: ignore[no-untyped-def]
    stop_blinking(pilot)
    await pilot.press("4")
    tab = app.query_one(DisruptionsTab)
    await wait_until(pilot, lambda: tab.disruptions is not None, "the first disruption list")
    await wait_until(pilot, lambda: active(app).has_focus, "the active table to take focus")


async def test_inject_cancel_and_clear_all(app: StreamopsApp) -> None:
    recorder = Recorder()
    async with app.run_test(size=SIZE, message_hook=recorder) as pilot:
        await open_tab(pilot, app)
        assert app.query_one("#active-panel").has_class("-empty")

        await pilot.press("i")
        await wait_until(pilot, lambda: active(app).row_count == 1, "the injected disruption")
        row = [str(cell) for cell in active(app).get_row_at(0)]
        assert row[1:5] == ["truck_breakdown", "5", "0.7", "30:00"]
        assert [m.action for m in recorder.of(ConsoleTab.ActionCompleted)] == ["Inject disruption"]

        await pilot.press("delete")
        await wait_until(pilot, lambda: active(app).row_count == 0, "the cancellation")
        assert any(t.startswith("Cancel disruption: Cancelled") for t in recorder.toasts())

        for count in (1, 2):
            await pilot.press("i")
            await wait_until(pilot, lambda n=count: active(app).row_count == n, f"{count} rows")

        await pilot.press("C")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await pilot.pause(0.3)
        assert active(app).row_count == 2

        await pilot.press("C")
        await pilot.press("y")
        await wait_until(pilot, lambda: active(app).row_count == 0, "clear all")
        assert "Clear all disruptions: Cleared 2 active disruptions" in recorder.toasts()


async def test_form_errors_are_shown_without_a_request(app: StreamopsApp) -> None:
    recorder = Recorder()
    async with app.run_test(size=SIZE, message_hook=recorder) as pilot:
        await open_tab(pilot, app)
        app.query_one("#d-severity", Input).value = "1.5"
        app.query_one("#d-products", Input).value = "101, abc"
        await pilot.press("i")
        await pilot.pause(0.3)
        errors = str(app.query_one("#inject-errors", Static).render())
        assert "severity: a number from 0.0 to 1.0" in errors
        assert "products: whole numbers separated by commas" in errors
        assert not recorder.of(ConsoleTab.ActionCompleted)
        assert not recorder.of(ConsoleTab.ActionFailed)


async def test_server_rejection_is_a_toast_with_its_code(app: StreamopsApp) -> None:
    recorder = Recorder()
    async with app.run_test(size=SIZE, message_hook=recorder) as pilot:
        await open_tab(pilot, app)
        app.query_one("#d-target", Input).value = "99999"
        await pilot.press("i")
        await wait_until(pilot, lambda: bool(recorder.of(ConsoleTab.ActionFailed)), "the 400")
        assert (
            "Inject disruption failed: 400 Unknown truck 99999 for truck_breakdown"
            in recorder.toasts()
        )


async def test_enter_in_the_form_injects(app: StreamopsApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await open_tab(pilot, app)
        await pilot.press("n", "tab")
        assert app.focused is app.query_one("#d-target", Input)
        await pilot.press("enter")
        await wait_until(pilot, lambda: active(app).row_count == 1, "the injected disruption")


async def test_time_left_counts_down(
    app: StreamopsApp, backend: Endpoints, clock: ManualClock
) -> None:
    async with RetailClient(backend.retail or "") as client:
        await client.create_disruption(
            DisruptionCreate(
                disruption_type="inventory_shortage",
                target_id=10,
                severity=0.5,
                duration_minutes=15,
            )
        )
    async with app.run_test(size=SIZE) as pilot:
        await open_tab(pilot, app)
        await wait_until(pilot, lambda: active(app).row_count == 1, "the disruption")
        assert active(app).get_row_at(0)[4] == "15:00"
        clock.advance(65)
        await wait_until(pilot, lambda: active(app).get_row_at(0)[4] == "13:55", "the countdown")
