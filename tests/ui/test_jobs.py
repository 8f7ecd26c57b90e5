"""The Jobs tab against a real embedded job server (BackendHost) on a ManualClock.

Built-in jobs finish in milliseconds on the embedded data, so the flows that need
a job to stay running (several at once, cancel, reconnect, re-attach, a bar at
50 % in a snapshot) use a *gated* action: a real handler, registered on the real
server's registry the way the server's own tests add actions, that reports 50 %
and then waits until the test opens its gate. Everything else — the WebSocket,
JWT auth, the client's reconnects and re-subscribes, progress and results — is
the production path.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Markdown, ProgressBar, Select, Static, TextArea

from backends.common.clock import ManualClock
from backends.endpoints import Endpoints
from backends.jobs.handlers import JobContext
from backends.retail.client import RetailClient
from backends.retail.models import StartRequest
from backends.runtime import BackendHost
from backends.settings import Settings, UISettings
from console.app import StreamopsApp
from console.screens.help import HelpScreen
from console.screens.job_result import JobResultScreen
from console.state import RememberedJob, StateStore
from console.tabs.jobs import JobsTab
from console.widgets.job_list import JobEntry
from tests.ui.helpers import Recorder, stop_blinking, wait_until

SIZE = (120, 40)


class Gate:
    """The `gated` action on the real server: 0 %, then 50 %, then waits for `release`."""

    def __init__(self, host: BackendHost) -> None:
        self.host = host
        self._events: dict[str, asyncio.Event] = {}
        assert host.jobs is not None
        registry = host.jobs.server.registry

        @registry.handler("gated", estimated_duration=60)
        async def gated(ctx: JobContext, payload: Any) -> dict[str, Any]:
            event = self._events.setdefault(ctx.request_id, asyncio.Event())
            await ctx.progress(0, "Starting", step="start")
            await ctx.progress(50, "Halfway there", step="half", processed=500, total=1000)
            await event.wait()
            await ctx.progress(100, "Finishing", step="finish", processed=1000, total=1000)
            return {"records": 1000, "released": True}

    def release(self, request_id: str) -> None:
        async def open_gate() -> None:
            self._events.setdefault(request_id, asyncio.Event()).set()

        self.host.call(open_gate())


@pytest.fixture
def host(clock: ManualClock) -> Iterator[BackendHost]:
    backend = BackendHost(Settings(), clock=clock)
    backend.start()
    try:
        yield backend
    finally:
        backend.stop()


@pytest.fixture
def endpoints(host: BackendHost) -> Endpoints:
    return host.endpoints


@pytest.fixture
def gate(host: BackendHost) -> Gate:
    return Gate(host)


@pytest.fixture
def app(settings: Settings, endpoints: Endpoints, clock: ManualClock) -> StreamopsApp:
    return StreamopsApp(settings, endpoints, clock=clock)


@pytest.fixture(autouse=True)
def no_desktop(monkeypatch: pytest.MonkeyPatch) -> None:
    """`o` must take the no-desktop path (copy) here, never launch a browser on the host."""
    for name in ("DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)


def drop_connections(host: BackendHost) -> None:
    """What a network blip or a restarting proxy does: every client connection closes (1012)."""

    async def drop() -> None:
        assert host.jobs is not None and host.jobs.server._server is not None
        for connection in list(host.jobs.server._server.connections):
            await connection.close(1012, "service restart")

    host.call(drop())


def numbered_ids(tab: JobsTab) -> None:
    """Request ids the same every run (snapshots; the server only needs them unique)."""
    counter = iter(range(1, 1000))
    prefixes = {"generate_report": "rep", "process_data": "prc", "health": "hlt"}
    tab.new_request_id = lambda action: f"{prefixes.get(action, 'job')}-{next(counter):04d}"


async def open_tab(pilot: Pilot[None]) -> JobsTab:
    stop_blinking(pilot)
    await pilot.press("3")
    tab = pilot.app.query_one(JobsTab)
    await wait_until(pilot, lambda: tab.connection == "connected", "the jobs connection")
    await wait_until(pilot, lambda: tab.job_list.has_focus, "the jobs list to take focus")
    return tab


def entry(tab: JobsTab, request_id: str) -> JobEntry:
    return tab.entries[request_id]


def row_text(tab: JobsTab, request_id: str) -> str:
    row = tab.job_list.rows[request_id]
    return " | ".join(str(static.render()) for static in row.query(Static))


async def submit_raw(pilot: Pilot[None], tab: JobsTab, body: dict[str, Any]) -> None:
    tab.form.set_action("raw")
    await pilot.pause()
    tab.query_one("#job-raw", TextArea).text = orjson.dumps(body).decode()
    tab.query_one("#job-raw", TextArea).focus()
    await pilot.press("ctrl+s")


async def generate_events(endpoints: Endpoints, burst: int = 500) -> None:
    """One burst of retail events (one hour between bursts: exactly one on a ManualClock)."""
    async with RetailClient(endpoints.retail or "") as client:
        await client.start(StartRequest(emit_interval_ms=3_600_000, burst=burst))
        for _ in range(200):
            if (await client.statistics()).events_sent_successfully >= burst:
                return
            await asyncio.sleep(0.05)
    raise AssertionError("the burst never arrived")


# -- flows --------------------------------------------------------------------------------


async def test_report_job_reaches_100_and_its_result_opens(
    app: StreamopsApp, endpoints: Endpoints, state_file: Path
) -> None:
    await generate_events(endpoints)
    recorder = Recorder()
    async with app.run_test(size=SIZE, message_hook=recorder) as pilot:
        tab = await open_tab(pilot)
        numbered_ids(tab)
        tab.query_one("#job-format", Select).value = "csv"
        await pilot.press("s")
        await wait_until(pilot, lambda: "rep-0001" in tab.entries, "the job in the list")
        job = entry(tab, "rep-0001")
        await wait_until(pilot, lambda: job.status == "succeeded", "the report to finish")
        bar = tab.job_list.rows["rep-0001"].query_one(ProgressBar)
        await wait_until(pilot, lambda: bar.percentage == 1.0, "the bar at 100 %")
        assert job.message == "Report ready"  # the server's last phase message
        assert job.current_step is not None
        assert job.data["records"] == 500
        assert job.data["format"] == "csv"
        assert "500 records" in row_text(tab, "rep-0001")
        assert "done" in row_text(tab, "rep-0001")
        assert any(
            t.startswith("Job finished: rep-0001 generate_report done") for t in recorder.toasts()
        )
        assert StateStore(state_file).state.jobs == {}  # finished: nothing to re-attach

        await pilot.press("enter")
        assert isinstance(app.screen, JobResultScreen)
        url = job.data["url"]
        facts = str(app.screen.query_one("#job-result-facts", Static).render())
        assert url in facts and "500" in facts
        await pilot.press("o")
        await wait_until(pilot, lambda: app.clipboard == url, "the URL copied (no desktop)")
        assert any("copied instead" in t for t in recorder.toasts())

    async with httpx.AsyncClient() as http:
        response = await http.get(url)
    assert response.status_code == 200
    assert len(response.content) == job.data["size_bytes"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["period", "category", "event_type", "events", "value"]
    assert sum(int(r[3]) for r in rows[1:]) == 500


async def test_several_jobs_at_once_with_elapsed_and_eta(
    app: StreamopsApp, gate: Gate, clock: ManualClock
) -> None:
    async with app.run_test(size=SIZE) as pilot:
        tab = await open_tab(pilot)
        numbered_ids(tab)
        for _ in range(2):
            await submit_raw(pilot, tab, {"action": "gated", "payload": {}})
        tab.form.set_action("generate_report")
        tab.focus_primary()
        await pilot.press("s", "h")
        ids = ["job-0001", "job-0002", "rep-0003", "hlt-0004"]
        await wait_until(pilot, lambda: all(i in tab.entries for i in ids), "four jobs")
        await wait_until(
            pilot,
            lambda: all(entry(tab, i).percentage == 50 for i in ids[:2]),
            "both gated jobs at 50 %",
        )
        await wait_until(
            pilot,
            lambda: all(entry(tab, i).status == "succeeded" for i in ids[2:]),
            "the report and the health check, while the gated jobs still run",
        )
        assert [r.entry.request_id for r in tab.job_list.ordered] == ids[::-1]  # newest first
        clock.advance(30)
        await wait_until(
            pilot, lambda: "00:30 · ETA 00:30" in row_text(tab, "job-0001"), "elapsed and ETA"
        )
        text = row_text(tab, "job-0002")
        assert "Halfway there · 500/1,000 records" in text and "50 %" in text
        assert "Jobs ─ 2 running · 2 finished ─ connected" in str(
            tab.query_one("#jobs-panel").border_title
        )
        gate.release("job-0001")
        await wait_until(pilot, lambda: entry(tab, "job-0001").finished, "the first gated job")
        assert entry(tab, "job-0002").status == "running"
        gate.release("job-0002")
        await wait_until(pilot, lambda: entry(tab, "job-0002").status == "succeeded", "the second")
        assert entry(tab, "job-0002").data == {"records": 1000, "released": True}


async def test_cancel_the_selected_job(app: StreamopsApp, gate: Gate, state_file: Path) -> None:
    recorder = Recorder()
    async with app.run_test(size=SIZE, message_hook=recorder) as pilot:
        tab = await open_tab(pilot)
        numbered_ids(tab)
        await submit_raw(pilot, tab, {"action": "gated", "payload": {}})
        await wait_until(pilot, lambda: "job-0001" in tab.entries, "the job")
        job = entry(tab, "job-0001")
        await wait_until(pilot, lambda: job.percentage == 50, "the job at 50 %")
        assert list(StateStore(state_file).state.jobs) == ["job-0001"]  # remembered while running
        tab.focus_primary()
        await pilot.press("c")
        await wait_until(pilot, lambda: job.status == "cancelled", "the cancellation")
        assert "cancelled at 50 %" in row_text(tab, "job-0001")
        assert "Job cancelled: job-0001 gated cancelled." in recorder.toasts()
        assert StateStore(state_file).state.jobs == {}
        await pilot.press("c")
        await pilot.pause(0.2)
        assert "job-0001 has already finished." in [t.split(": ", 1)[1] for t in recorder.toasts()]


async def test_server_errors_are_toasts_with_code_and_message(app: StreamopsApp) -> None:
    recorder = Recorder()
    async with app.run_test(size=SIZE, message_hook=recorder) as pilot:
        tab = await open_tab(pilot)
        numbered_ids(tab)
        bad = {
            "start_date": "01/20/2024",
            "end_date": "2024-01-31",
            "format": "pdf",
            "report_type": "monthly",
        }
        await submit_raw(pilot, tab, {"action": "generate_report", "payload": bad})
        await wait_until(pilot, lambda: "rep-0001" in tab.entries, "the job")
        await wait_until(pilot, lambda: entry(tab, "rep-0001").finished, "the server's answer")
        job = entry(tab, "rep-0001")
        assert (job.status, job.error_code) == ("failed", "VALIDATION_ERROR")
        toast = next(t for t in recorder.toasts() if "VALIDATION_ERROR" in t)
        assert toast.startswith("rep-0001 generate_report · VALIDATION_ERROR: VALIDATION_ERROR ")
        assert "start_date" in toast and "01/20/2024" in toast
        assert "VALIDATION_ERROR" in row_text(tab, "rep-0001")

        await submit_raw(pilot, tab, {"action": "no_such_action", "payload": {}})
        await wait_until(pilot, lambda: "job-0002" in tab.entries, "the second job")
        await wait_until(pilot, lambda: entry(tab, "job-0002").finished, "its answer")
        assert entry(tab, "job-0002").error_code == "INVALID_ACTION"
        assert any(" · INVALID_ACTION: INVALID_ACTION " in t for t in recorder.toasts())


async def test_form_problems_are_shown_before_anything_is_sent(app: StreamopsApp) -> None:
    recorder = Recorder()
    async with app.run_test(size=SIZE, message_hook=recorder) as pilot:
        tab = await open_tab(pilot)
        tab.query_one("#job-start", Input).value = "2024-02-10"
        tab.query_one("#job-end", Input).value = "2024-13-01"
        tab.query_one("#job-filters", Input).value = "region=north"
        await pilot.press("s")
        await pilot.pause(0.2)
        errors = str(tab.query_one("#job-errors", Static).render())
        assert "end_date: a date as YYYY-MM-DD" in errors
        assert "filters.region" not in errors  # a bad date stops before the model check
        assert tab.entries == {}
        tab.query_one("#job-end", Input).value = "2024-02-01"
        await pilot.press("s")
        await pilot.pause(0.2)
        assert "end_date: on or after start_date" in str(
            tab.query_one("#job-errors", Static).render()
        )
        tab.query_one("#job-end", Input).value = "2024-02-11"
        tab.query_one("#job-filters", Input).focus()
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert "filters.region: Extra inputs are not permitted" in str(
            tab.query_one("#job-errors", Static).render()
        )
        assert tab.entries == {}
        assert any(t.startswith("Cannot submit: ") for t in recorder.toasts())


async def test_raw_json_starts_from_the_form(app: StreamopsApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        tab = await open_tab(pilot)
        tab.query_one("#job-format", Select).value = "excel"
        await pilot.press("r")
        await pilot.pause()
        body = orjson.loads(tab.query_one("#job-raw", TextArea).text)
        assert body["action"] == "generate_report"
        assert body["payload"]["format"] == "excel"
        assert body["payload"]["start_date"] == "2024-01-01"  # ManualClock: 2024-01-15
        tab.focus_primary()
        await pilot.press("r")
        await pilot.pause()
        assert tab.form.action == "generate_report"


async def test_jobs_survive_a_dropped_connection(
    app: StreamopsApp, host: BackendHost, gate: Gate
) -> None:
    recorder = Recorder()
    async with app.run_test(size=SIZE, message_hook=recorder) as pilot:
        tab = await open_tab(pilot)
        numbered_ids(tab)
        await submit_raw(pilot, tab, {"action": "gated", "payload": {}})
        await wait_until(pilot, lambda: "job-0001" in tab.entries, "the job")
        job = entry(tab, "job-0001")
        await wait_until(pilot, lambda: job.percentage == 50, "the job at 50 %")

        drop_connections(host)
        await wait_until(
            pilot, lambda: tab.query_one("#jobs-panel").has_class("-reconnecting"), "reconnecting"
        )
        assert "reconnecting…" in str(tab.query_one("#jobs-panel").border_title)
        assert app.query_one("#dot-jobs").state == "degraded"
        await wait_until(pilot, lambda: tab.connection == "connected", "the reconnect", 15)
        assert not tab.query_one("#jobs-panel").has_class("-reconnecting")
        states = [m.state for m in recorder.of(JobsTab.ClientState)]
        assert states[-2:] == ["reconnecting", "connected"]
        toasts = recorder.toasts()
        assert any("lost — reconnecting; 1 running job(s) keep running" in t for t in toasts)
        assert any("1 running job(s) re-subscribed" in t for t in toasts)
        assert job.status == "running"

        gate.release("job-0001")  # the result reaches the client through the re-subscription
        await wait_until(pilot, lambda: job.status == "succeeded", "the result after reconnect")
        assert job.data == {"records": 1000, "released": True}


async def test_a_restarted_console_reattaches_to_running_jobs(
    settings: Settings, endpoints: Endpoints, clock: ManualClock, gate: Gate, state_file: Path
) -> None:
    first = StreamopsApp(settings, endpoints, clock=clock)
    async with first.run_test(size=SIZE) as pilot:
        tab = await open_tab(pilot)
        numbered_ids(tab)
        await submit_raw(pilot, tab, {"action": "gated", "payload": {}})
        await wait_until(pilot, lambda: "job-0001" in tab.entries, "the job")
        await wait_until(pilot, lambda: entry(tab, "job-0001").percentage == 50, "50 %")
    remembered = StateStore(state_file).state.jobs
    assert list(remembered) == ["job-0001"]
    assert remembered["job-0001"].endpoint == endpoints.jobs

    clock.advance(90)
    second = StreamopsApp(settings, endpoints, clock=clock)
    async with second.run_test(size=SIZE) as pilot:
        tab = await open_tab(pilot)
        await wait_until(pilot, lambda: "job-0001" in tab.entries, "the re-attached job")
        job = entry(tab, "job-0001")
        assert job.reattached and job.action == "gated"
        await wait_until(pilot, lambda: job.percentage == 50, "its progress, via subscribe")
        await wait_until(
            pilot, lambda: "01:30 · ETA 01:30" in row_text(tab, "job-0001"), "elapsed since submit"
        )
        gate.release("job-0001")
        await wait_until(pilot, lambda: job.status == "succeeded", "the result")
    assert StateStore(state_file).state.jobs == {}


async def test_a_job_the_server_no_longer_knows_is_shown_as_gone(
    settings: Settings, endpoints: Endpoints, clock: ManualClock, state_file: Path
) -> None:
    store = StateStore(state_file)
    job = RememberedJob(
        endpoint=endpoints.jobs or "", action="generate_report", submitted_at="2024-01-15T10:00:00Z"
    )
    store.remember_job("rep-expired", job)
    app = StreamopsApp(settings, endpoints, clock=clock)  # reads the state file
    recorder = Recorder()
    async with app.run_test(size=SIZE, message_hook=recorder) as pilot:
        tab = await open_tab(pilot)
        await wait_until(pilot, lambda: "rep-expired" in tab.entries, "the remembered job")
        await wait_until(pilot, lambda: entry(tab, "rep-expired").finished, "the server's answer")
        assert entry(tab, "rep-expired").status == "lost"
        assert entry(tab, "rep-expired").error_code == "NOT_FOUND"
        assert "gone" in row_text(tab, "rep-expired")
    assert StateStore(state_file).state.jobs == {}


async def test_read_only_runs_health_but_submits_and_cancels_nothing(
    endpoints: Endpoints, clock: ManualClock
) -> None:
    settings = Settings(ui=UISettings(refresh_ms=250, read_only=True))
    app = StreamopsApp(settings, endpoints, clock=clock)
    recorder = Recorder()
    async with app.run_test(size=SIZE, message_hook=recorder) as pilot:
        tab = await open_tab(pilot)
        assert tab.query_one("#job-submit").disabled
        await pilot.press("s")
        await pilot.pause(0.2)
        assert tab.entries == {}
        assert any(
            t.startswith("Read-only: Submit generate_report is disabled") for t in recorder.toasts()
        )
        await pilot.press("h")
        await wait_until(pilot, lambda: len(tab.entries) == 1, "the health job")
        (health,) = tab.entries.values()
        await wait_until(pilot, lambda: health.status == "succeeded", "the health answer")
        assert health.data["status"] == "healthy"
        assert "✓ healthy" in row_text(tab, health.request_id)


async def test_palette_and_keymap_list_the_jobs_actions(app: StreamopsApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        tab = await open_tab(pilot)
        names = [c.name for c in app.palette_commands()]
        for name in ("Submit report job…", "Run health check job", "Cancel selected job"):
            assert name in names
        rows = [r for r in app.keymap_rows() if r.scope == "Jobs"]
        assert {r.binding_id for r in rows} >= {
            "jobs.submit",
            "jobs.cancel",
            "jobs.open",
            "jobs.health",
            "jobs.raw",
        }
        assert all(b.id and b.tooltip for b in tab.BINDINGS)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        help_text = app.screen.query_one("#help-text", Markdown).source
        assert "**Jobs**: ↑↓ select" in help_text and "### 3 Jobs" in help_text


# -- snapshots ----------------------------------------------------------------------------


async def settle_jobs(pilot: Pilot[None], endpoints: Endpoints, clock: ManualClock) -> None:
    """A report done, a gated job at 50 % for 42 s, a rejected request and a health check."""
    app = pilot.app
    await generate_events(endpoints)
    tab = await open_tab(pilot)
    numbered_ids(tab)
    tab.query_one("#job-format", Select).value = "csv"
    await pilot.press("s")
    await wait_until(pilot, lambda: "rep-0001" in tab.entries, "the report")
    await wait_until(pilot, lambda: entry(tab, "rep-0001").status == "succeeded", "its result")
    await submit_raw(pilot, tab, {"action": "gated", "payload": {}})
    await wait_until(pilot, lambda: "job-0002" in tab.entries, "the gated job")
    await wait_until(pilot, lambda: entry(tab, "job-0002").percentage == 50, "50 %")
    bad = {
        "start_date": "2024-01-31",
        "end_date": "2024-01-01",
        "format": "csv",
        "report_type": "monthly",
    }
    await submit_raw(pilot, tab, {"action": "generate_report", "payload": bad})
    await wait_until(pilot, lambda: "rep-0003" in tab.entries, "the rejected report")
    await wait_until(pilot, lambda: entry(tab, "rep-0003").finished, "its rejection")
    tab.form.set_action("generate_report")
    tab.focus_primary()
    await pilot.press("h")
    await wait_until(pilot, lambda: "hlt-0004" in tab.entries, "the health check")
    await wait_until(pilot, lambda: entry(tab, "hlt-0004").finished, "its answer")
    clock.advance(42)
    app._tick_clock()
    await wait_until(
        pilot, lambda: "00:42 · ETA 00:42" in row_text(tab, "job-0002"), "elapsed and ETA"
    )
    await wait_until(pilot, lambda: app.query_one("#dot-retail").state == "healthy", "health")
    tab.form.scroll_home(animate=False)
    stop_blinking(pilot)
    app.clear_notifications()
    await pilot.pause(0.2)


def test_jobs_tab(
    snap_compare, app: StreamopsApp, endpoints: Endpoints, clock: ManualClock, gate: Gate
) -> None:  # type: ignore[no-untyped-def]
    async def run_before(pilot: Pilot[None]) -> None:
        await settle_jobs(pilot, endpoints, clock)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_jobs_tab_80x24(
    snap_compare, app: StreamopsApp, endpoints: Endpoints, clock: ManualClock, gate: Gate
) -> None:  # type: ignore[no-untyped-def]
    async def run_before(pilot: Pilot[None]) -> None:
        await settle_jobs(pilot, endpoints, clock)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
