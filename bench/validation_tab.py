"""Validation tab: does a large validation run keep the console responsive?

The console runs on one asyncio loop; a validation decodes and checks hundreds of
thousands of messages. The tab runs it in a thread worker with its own loop. This
measures the UI loop's lag (how late a 20 ms timer fires: what a key press would
wait) while the tab validates `--messages` retail envelopes from a JSONL file,
next to the baseline of the same `run_validation` awaited on the UI loop itself
(what an ordinary async worker would do). Both in one run, same file, same rules.

The file repeats the embedded generator's events (one seeded burst from the memory
sink) until it holds `--messages` lines. Headless app (`run_test`), 120x40.

    .venv/bin/python bench/validation_tab.py [--messages 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import httpx
from textual.widgets import Input, Select
from uilag import LagProbe, lag_line  # bench/, on the path of a script run from it

from backends.common.clock import SystemClock
from backends.retail.client import RetailClient
from backends.retail.models import StartRequest
from backends.runtime import BackendHost
from backends.settings import Settings, UISettings
from backends.validation.runner import run_validation
from console.app import StreamopsApp
from console.state import StateStore
from console.tabs.validation import ValidationTab


async def make_file(retail: str, messages: int, path: Path) -> None:
    async with RetailClient(retail) as client:
        await client.start(StartRequest(emit_interval_ms=3_600_000, burst=5000))
        while (await client.statistics()).events_sent_successfully < 5000:
            await asyncio.sleep(0.05)
    async with httpx.AsyncClient() as client:
        page = (await client.get(f"{retail}/stream/sink/events", params={"limit": 5000})).content
    lines = page.splitlines()
    with path.open("wb") as out:
        for i in range(messages):
            out.write(lines[i % len(lines)] + b"\n")


async def main(messages: int) -> None:
    host = BackendHost(Settings(), only={"retail"})
    endpoints = host.start()
    try:
        workdir = Path(tempfile.mkdtemp(prefix="validation-tab-bench-"))
        events = workdir / "events.jsonl"
        await make_file(endpoints.retail or "", messages, events)
        app = StreamopsApp(
            Settings(ui=UISettings(refresh_ms=500)),
            endpoints,
            clock=SystemClock(),
            ui_state=StateStore(workdir / "state.json"),
        )
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("5")
            tab = app.query_one(ValidationTab)
            tab.query_one("#src-kind", Select).value = "file"
            await pilot.pause()
            tab.query_one("#src", Input).value = str(events)
            tab.query_one("#max", Input).value = ""
            await pilot.pause(2.0)  # the engine preload finishes

            probe = LagProbe(app)
            probe.start()
            t0 = time.perf_counter()
            tab.action_run()
            while tab.running:
                await asyncio.sleep(0.01)
            threaded_s = time.perf_counter() - t0
            threaded = probe.stop()
            assert tab.report is not None and tab.report.summary.messages == messages

            probe.start()
            t0 = time.perf_counter()
            report = await run_validation(f"file:{events}")  # on the UI loop: the baseline
            on_loop_s = time.perf_counter() - t0
            on_loop = probe.stop()
            assert report.summary.messages == messages
    finally:
        host.stop()

    print(f"{messages:,} retail envelopes, built-in rules ({len(report.rules)} rules)")
    for name, seconds, lag in (
        ("tab (thread worker)", threaded_s, threaded),
        ("baseline: on the UI loop", on_loop_s, on_loop),
    ):
        print(lag_line(name, messages, seconds, lag))
    print(
        f"  max lag ratio baseline/tab: {on_loop['max_ms'] / max(threaded['max_ms'], 0.1):.1f}x; "
        f"throughput ratio tab/baseline: {on_loop_s / threaded_s:.2f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    asyncio.run(main(parser.parse_args().messages))
