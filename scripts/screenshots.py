"""Regenerate the README's screenshots: a live embedded backend, driven by keys.

.venv/bin/python scripts/screenshots.py [--out docs]
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Select

from backends.endpoints import Endpoints
from backends.retail.client import RetailClient
from backends.runtime import BackendHost
from backends.settings import Settings, UISettings
from console.app import StreamopsApp
from console.tabs.jobs import JobsTab
from console.tabs.tails import TailsTab
from console.tabs.validation import ValidationTab


async def shoot(out: Path) -> None:
    settings = Settings(ui=UISettings(refresh_ms=250))
    settings.retail.seed = 7
    host = BackendHost(settings)
    endpoints = host.start()
    try:
        assert endpoints.retail
        app = StreamopsApp(settings, endpoints)
        async with app.run_test(size=(120, 36)) as pilot:
            async with RetailClient(endpoints.retail) as client:
                await client.create_disruption(
                    disruption_type="inventory_shortage",
                    target_id=10,
                    severity=0.9,
                    duration_minutes=30,
                )
                await client.create_disruption(
                    disruption_type="truck_breakdown",
                    target_id=5,
                    severity=0.7,
                    duration_minutes=45,
                )
            await pilot.press("s")
            await pilot.pause(12)
            app.save_screenshot(str(out / "streams.svg"))
            await pilot.press("4")
            await pilot.pause(1.5)
            app.save_screenshot(str(out / "disruptions.svg"))
            await pilot.press("1", "x")
            await pilot.pause(0.5)
            await shoot_tails(app, pilot, endpoints, out)
            await shoot_jobs(app, pilot, out)
            await shoot_validation(app, pilot, out)
    finally:
        host.stop()


async def until(pilot: Pilot[None], condition: Callable[[], bool], seconds: float) -> None:
    """Let the live app run until `condition` holds, or `seconds` passed (shoot anyway)."""
    for _ in range(int(seconds * 10)):
        if condition():
            return
        await pilot.pause(0.1)


async def shoot_tails(
    app: StreamopsApp, pilot: Pilot[None], endpoints: Endpoints, out: Path
) -> None:
    """The SSE pane tailing the embedded journal-entry stream, live."""
    await pilot.press("2")
    tab = app.query_one(TailsTab)
    assert endpoints.export_credentials is not None
    key = next(
        s.consumer_key
        for s in endpoints.export_credentials.streams
        if s.data_type == "journal_entry"
    )
    tab.query_one("#sse-stream", Select).value = key
    await pilot.pause(0.2)
    tab.focus_primary()
    await pilot.press("r")
    await until(pilot, lambda: tab.tail.received >= 200, 10)
    await pilot.pause(1.5)
    app.save_screenshot(str(out / "tails.svg"))
    await pilot.press("x")


async def shoot_jobs(app: StreamopsApp, pilot: Pilot[None], out: Path) -> None:
    """A PDF report and an anomaly pipeline over the events just streamed, and a health check."""
    await pilot.press("3")
    tab = app.query_one(JobsTab)
    await until(pilot, lambda: tab.connection == "connected", 10)
    await pilot.press("s")
    tab.form.set_action("process_data")
    await pilot.pause(0.2)
    tab.focus_primary()
    await pilot.press("s", "h")
    await until(
        pilot,
        lambda: len(tab.entries) == 3 and all(job.finished for job in tab.entries.values()),
        30,
    )
    tab.form.set_action("generate_report")
    tab.focus_primary()
    app.clear_notifications()
    await pilot.pause(0.5)
    app.save_screenshot(str(out / "jobs.svg"))


async def shoot_validation(app: StreamopsApp, pilot: Pilot[None], out: Path) -> None:
    """The built-in retail rules over the memory sink, with the disruptions' marks in it."""
    await pilot.press("5")
    tab = app.query_one(ValidationTab)
    tab.focus_primary()
    await pilot.press("r")
    await until(pilot, lambda: tab.report is not None and not tab.running, 60)
    app.clear_notifications()
    await pilot.pause(0.5)
    app.save_screenshot(str(out / "validation.svg"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    asyncio.run(shoot(args.out))


if __name__ == "__main__":
    main()
