"""3 Jobs: submit jobs to the WebSocket job server and watch several run at once.

One `JobsClient` lives as long as the tab, inside one worker (`jobs-client`), so
its connection closes with the tab; it reconnects with backoff by itself and
re-subscribes to its running jobs, and the tab only shows the state it reports
(`on_state`). Each job is one worker awaiting its handle's result. Progress
callbacks write into the job's `JobEntry` and touch no widget; a 10 Hz timer
redraws what changed, so a burst of progress messages costs at most ten redraws
a second whatever the rate. Choices where the spec is silent:

- Request ids are `rep-`/`prc-`/`hlt-`/`job-` plus 8 random hex digits (short
  enough to read in the list; a raw request may bring its own `id`). Every request
  carries `metadata.client_version`, as the spec's example does.
- Running jobs are remembered in the UI state file (request id, action, submit
  time, endpoint) the moment the server accepts them and forgotten when they
  finish, so a restarted console re-attaches with `subscribe`. A job the server no
  longer knows (expired, another tenant) shows as *gone* with the server's code.
- Elapsed and ETA use the injected clock from the moment the job was submitted;
  a re-attached job counts from its remembered submit time.
- `o` opens a result with the system opener (`open`, `xdg-open`, `os.startfile`)
  when there is a desktop to open it on; over SSH or without one it copies the
  URL/path to the clipboard instead and says so.
- Read-only consoles may run `health` (it changes nothing) and watch remembered
  jobs, but not submit or cancel others.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import sys
from collections.abc import Callable
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Select, TabbedContent
from textual.worker import Worker

from backends.common.clock import Clock, iso_z
from backends.jobs.client import CONNECTION_CLOSED, JobHandle, JobsClient, JobsError, Progress
from backends.jobs.models import CANCELLED, NOT_FOUND
from backends.settings import UISettings
from console.screens.job_result import JobResultScreen, result_location
from console.state import RememberedJob, StateStore
from console.tabs.base import PaletteCommand, TabContent
from console.widgets.job_form import JobForm, JobRequest
from console.widgets.job_list import JobEntry, JobList

HealthReporter = Callable[[str, str], None]
"""`(state, detail)` for the header's jobs dot."""
PREFIXES: dict[str, str] = {"generate_report": "rep", "process_data": "prc", "health": "hlt"}
REDRAW_SECONDS = 0.1
"""Progress redraws at most ten times a second (DESIGN.md: 10-20)."""
EMPTY = "No jobs yet — fill the form and press s (or enter in a field); h runs a health check."
NOT_CONFIGURED = (
    "No job server configured: set jobs.url (e.g. ws://host:8765/production) and "
    "jobs.token, or run the embedded backends."
)


def random_request_id(action: str) -> str:
    return f"{PREFIXES.get(action, 'job')}-{secrets.token_hex(4)}"


def client_version() -> str:
    try:
        return version("streamops")
    except PackageNotFoundError:
        return "dev"


def error_text(code: str | None, message: str | None, details: dict[str, Any] | None) -> str:
    """`CODE message (field: expected …, received …)`: what the server said, verbatim."""
    text = f"{code or 'ERROR'} {message or ''}".strip()
    details = details or {}
    bits = [f"{key} {value}" for key, value in details.items() if key not in ("field", "errors")]
    field = f"{details['field']}: " if "field" in details else ""
    if bits or field:
        text += f" ({field}{', '.join(bits)})"
    return text


def desktop_opener() -> list[str] | None:
    """The command that opens a URL/path on this machine's desktop, if it has one."""
    if os.environ.get("SSH_CONNECTION") or os.environ.get("SSH_TTY"):
        return None
    if sys.platform == "darwin":
        return ["open"]
    if sys.platform.startswith("linux") and (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        path = shutil.which("xdg-open")
        return [path] if path else None
    return None


class JobsTab(TabContent):
    HELP = """\
### 3 Jobs

Submits jobs to the **WebSocket job server** (`generate_report`, `process_data`,
`health`, or any action as raw JSON) and follows several at once.

- Fill the **New job** form and press **s** (or **enter** in a field, or the
  button). Problems show under the form before anything is sent; the server's
  own errors arrive as toasts with its code and message (`VALIDATION_ERROR …`).
- **r** switches the form to **raw JSON** (starting from the current form) and
  back: `{"action": …, "payload": {…}, "id": optional, "metadata": optional}`.
- **h** runs a health check.
- Each job shows a progress bar, the server's phase message, records so far,
  elapsed time and ETA. **↑↓** select a job, **c** cancels it, **enter** opens
  its result (URL/path, records, size, stats or metrics), **o** opens the
  URL/path (or copies it when there is no desktop), **y** copies it.
- **D** clears finished jobs from the list.
- Jobs run on the server: if the connection drops the border turns yellow
  (*reconnecting*) and the client re-subscribes when it is back; a restarted
  console re-attaches to the jobs it left running.
- **n** jumps to the form, **esc** leaves a field.
"""
    WIDGET_HELP: ClassVar[dict[str, str]] = {
        "job-action": "**action**: a built-in handler's form, or *raw JSON* for any request.",
        "job-start": "**start**: first day of the report, `YYYY-MM-DD`.",
        "job-end": "**end**: last day of the report, `YYYY-MM-DD`, not before start.",
        "job-format": "**format**: `pdf` (with a chart when *include charts*), `csv`, `excel`.",
        "job-report-type": "**type**: `monthly`, `quarterly`, `annual` or `custom`.",
        "job-filters": "**filters**: optional `key=value` pairs, e.g. "
        "`category=electronics, region=north-america`.",
        "job-pipeline": "**pipeline**: `classification`, `regression`, `clustering`, `anomaly`.",
        "job-source-type": "**source**: `file` (a path in the job server's data folder), "
        "`query` (SQL over the retail events), `stream` (a stream id).",
        "job-source": "**path / query / stream_id** of the data source.",
        "job-output": "**output**: `json`, `csv` or `parquet`.",
        "job-destination": "**destination**: optional output location.",
        "job-options": "**options**: optional `key=value` pairs, values as JSON "
        "(`confidence_threshold=0.8, max_iterations=100`).",
        "job-raw": "**raw JSON**: the whole request; **ctrl+s** submits it.",
        "jobs-list": "**Jobs**: ↑↓ select, **enter** result, **c** cancel, **o** open.",
    }
    BINDINGS: ClassVar[list[Binding]] = [
        Binding(
            "s,ctrl+s",
            "submit",
            "Submit",
            id="jobs.submit",
            key_display="s",
            tooltip="Submit the New job form",
        ),
        Binding("h", "health", "Health", id="jobs.health", tooltip="Run a health check job"),
        Binding("c", "cancel_job", "Cancel", id="jobs.cancel", tooltip="Cancel the selected job"),
        Binding(
            "o",
            "open_result",
            "Open",
            id="jobs.open",
            tooltip="Open the selected job's result URL/path (or copy it)",
        ),
        Binding(
            "y",
            "copy_location",
            "Copy",
            id="jobs.copy",
            show=False,
            tooltip="Copy the selected job's result URL/path",
        ),
        Binding("r", "raw", "Raw JSON", id="jobs.raw", tooltip="Form ↔ raw JSON request"),
        Binding("n", "new", "New", id="jobs.new", show=False, tooltip="Go to the New job form"),
        Binding(
            "D",
            "clear_finished",
            "Clear done",
            id="jobs.clear_finished",
            show=False,
            tooltip="Remove finished jobs from the list",
        ),
        Binding(
            "escape",
            "focus_primary",
            "Leave field",
            id="jobs.leave_field",
            key_display="esc",
            tooltip="Back to the jobs list, so single-key actions work",
        ),
    ]

    class ClientState(Message, bubble=False):
        """`connecting` / `connected` / `reconnecting` / `closed`, from the client."""

        def __init__(self, state: str) -> None:
            super().__init__()
            self.state = state

    class ClientFailed(Message, bubble=False):
        def __init__(self, error: str) -> None:
            super().__init__()
            self.error = error

    class JobAccepted(Message, bubble=False):
        """The server has the job (queued, or already answered): remember it while it runs."""

        def __init__(self, entry: JobEntry) -> None:
            super().__init__()
            self.entry = entry

    class JobEnded(Message, bubble=False):
        """Succeeded, failed, cancelled or gone: the entry says which."""

        def __init__(self, entry: JobEntry) -> None:
            super().__init__()
            self.entry = entry

    def __init__(
        self,
        *,
        endpoint: str | None,
        token: str | None,
        ui: UISettings,
        clock: Clock,
        store: StateStore,
        report_health: HealthReporter,
    ) -> None:
        super().__init__(id="jobs-tab")
        self.endpoint = endpoint
        self.token = token
        self.ui = ui
        self.clock = clock
        self.store = store
        self._report_health = report_health
        self.client: JobsClient | None = None
        """The connected client, for workers; None until the first connection."""
        self._owned: JobsClient | None = None
        self.connection = "connecting" if endpoint else "not configured"
        self.entries: dict[str, JobEntry] = {}
        self.handles: dict[str, JobHandle] = {}
        self.new_request_id: Callable[[str], str] = random_request_id
        """Replaceable so a demo or snapshot shows the same ids every run."""
        self.opener: Callable[[], list[str] | None] = desktop_opener
        self._ready = asyncio.Event()
        self._title = ""
        self.form = JobForm(today=clock.now().date(), read_only=ui.read_only, id="job-form")
        self.job_list = JobList(id="jobs-list")

    # -- composition -----------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield self.form
        with Vertical(id="jobs-panel") as panel:
            panel.border_title = "Jobs"
            panel.border_subtitle = "enter result · c cancel · o open"
            yield self.job_list

    def on_mount(self) -> None:
        self.set_interval(REDRAW_SECONDS, self._redraw)
        if self.endpoint and self.token:
            self.job_list.set_empty_text(f"Connecting to {self.endpoint}…")
            self._run_client(self.endpoint, self.token)
        else:
            self.connection = "not configured"
            self.job_list.set_empty_text(NOT_CONFIGURED)
        self._redraw()

    def focus_primary(self) -> None:
        self.job_list.focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """esc leaves any part of the form (the raw JSON editor sends esc on to the button)."""
        if action == "focus_primary":
            focused = self.screen.focused
            return focused is not None and self.form in focused.ancestors_with_self
        return True

    def commands(self) -> list[PaletteCommand]:
        return [
            PaletteCommand(
                "Submit report job…", "generate_report from the Jobs form", self._palette_report
            ),
            PaletteCommand(
                "Submit process_data job…", "process_data from the Jobs form", self._palette_process
            ),
            PaletteCommand(
                "Run health check job",
                "health on the job server",
                lambda: self._reveal(self.action_health),
            ),
            PaletteCommand(
                "Submit job as raw JSON…", "Any action, typed as JSON", self._palette_raw
            ),
            PaletteCommand("Cancel selected job", "Cancel the job under the cursor", self._cancel),
            PaletteCommand("Open job result", "Open the selected job's result", self._open),
            PaletteCommand(
                "Clear finished jobs", "Remove finished jobs", self.action_clear_finished
            ),
        ]

    def _reveal(self, then: Callable[[], object]) -> None:
        self.query_ancestor(TabbedContent).active = str(self.parent.id if self.parent else "")
        self.call_after_refresh(then)

    def _form_for(self, action: str) -> None:
        self.form.set_action(action)
        self.query_one("#job-action", Select).focus()

    def _palette_report(self) -> None:
        self._reveal(lambda: self._form_for("generate_report"))

    def _palette_process(self) -> None:
        self._reveal(lambda: self._form_for("process_data"))

    def _palette_raw(self) -> None:
        self._reveal(lambda: self._form_for(JobForm.RAW))

    def _cancel(self) -> None:
        self._reveal(self.action_cancel_job)

    def _open(self) -> None:
        self._reveal(self.action_open_result)

    # -- the client --------------------------------------------------------------

    @work(exclusive=True, group="jobs-client", exit_on_error=False)
    async def _run_client(self, endpoint: str, token: str) -> None:
        """Own the client for the tab's lifetime; cancelling this worker closes it.

        The client reconnects by itself once connected; a server that is down when
        the console starts is retried here with the same backoff.
        """

        def on_state(state: str) -> None:
            self.post_message(self.ClientState(state))

        client = self._owned = JobsClient(endpoint, token, on_state=on_state)
        delay = client.backoff_initial
        try:
            while True:
                try:
                    await client.connect()
                    break
                except JobsError as error:
                    self.post_message(
                        self.ClientFailed(error_text(error.code, error.message, error.details))
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, client.backoff_max)
            self.client = client
            self._ready.set()
            for request_id, job in self.store.jobs(endpoint).items():
                self._reattach(request_id, job)
            await asyncio.Event().wait()
        finally:
            self._ready.clear()
            self.client = None
            await client.aclose()

    async def on_unmount(self) -> None:
        """Close the connection here, awaited: a cancelled worker may not get to finish it,
        and a server shutting down would then wait out its close timeout."""
        if self._owned is not None:
            await self._owned.aclose()

    @on(ClientState)
    def _client_state(self, event: ClientState) -> None:
        if self.connection == "failed" and event.state in ("connecting", "closed"):
            return  # the start-up retry loop: keep showing why it failed
        previous, self.connection = self.connection, event.state
        running = sum(1 for e in self.entries.values() if not e.finished)
        if event.state == "connected":
            self._report_health("healthy", f"connected to {self.endpoint}")
            self.job_list.set_empty_text(EMPTY)
            if previous == "reconnecting":
                self.toast(
                    f"Reconnected to {self.endpoint}; {running} running job(s) re-subscribed.",
                    title="Jobs",
                )
        elif event.state == "reconnecting":
            self._report_health("degraded", f"reconnecting to {self.endpoint}")
            if previous != "reconnecting":
                self.toast(
                    f"Connection to {self.endpoint} lost — reconnecting; "
                    f"{running} running job(s) keep running on the server.",
                    title="Jobs",
                    severity="warning",
                )
        elif event.state == "closed":
            reason = self.client.close_reason if self.client else None
            self._report_health("error", f"disconnected from {self.endpoint}: {reason or 'closed'}")
        else:
            self._report_health("unknown", f"connecting to {self.endpoint}…")
        self._redraw()

    @on(ClientFailed)
    def _client_failed(self, event: ClientFailed) -> None:
        """Toasted once; the worker keeps retrying and the header dot keeps the reason."""
        if self.connection != "failed":
            self.toast(
                f"{event.error} — retrying with backoff",
                title="Jobs · cannot connect",
                severity="error",
            )
        self.connection = "failed"
        self._report_health("error", event.error)
        self.job_list.set_empty_text(f"Not connected: {event.error} — retrying…")
        self._redraw()

    # -- submitting --------------------------------------------------------------

    def writable(self, what: str) -> bool:
        if self.ui.read_only:
            self.toast(
                f"{what} is disabled: the console runs read-only (--read-only / ui.read_only).",
                title="Read-only",
                severity="warning",
            )
            return False
        return True

    def action_submit(self) -> None:
        self.form.submit()

    def action_health(self) -> None:
        self.submit(JobRequest("health", {}))

    @on(JobForm.Rejected)
    def _rejected(self, event: JobForm.Rejected) -> None:
        self.toast("\n".join(event.errors), title="Cannot submit", severity="error")

    @on(JobForm.Submitted)
    def _submitted(self, event: JobForm.Submitted) -> None:
        self.submit(event.request)

    def submit(self, request: JobRequest) -> JobEntry | None:
        """Add the job to the list at once and send it from a worker."""
        if request.action != "health" and not self.writable(f"Submit {request.action}"):
            return None
        if self.endpoint is None:
            self.toast(NOT_CONFIGURED, title="Jobs", severity="error")
            return None
        request_id = request.request_id or self.new_request_id(request.action)
        if request_id in self.entries and not self.entries[request_id].finished:
            self.toast(f"Job {request_id} is still running.", title="Jobs", severity="warning")
            return None
        entry = JobEntry(request_id, request.action, request.label, self.clock.monotonic())
        self._add(entry)
        self._send(entry, request)
        return entry

    def _add(self, entry: JobEntry) -> None:
        old = self.job_list.rows.get(entry.request_id)
        if old is not None:
            old.entry = entry
        else:
            self.job_list.add(entry, self.clock.monotonic())
        self.entries[entry.request_id] = entry

    def _progress_callback(self, entry: JobEntry) -> Callable[[Progress], None]:
        def on_progress(progress: Progress) -> None:
            apply_progress(entry, progress)

        return on_progress

    @work(group="jobs", exit_on_error=False)
    async def _send(self, entry: JobEntry, request: JobRequest) -> None:
        metadata = {"client_version": client_version(), **(request.metadata or {})}
        try:
            client = await self._client()
            handle = await client.submit(
                request.action,
                request.payload,
                on_progress=self._progress_callback(entry),
                request_id=entry.request_id,
                metadata=metadata,
            )
        except JobsError as error:
            fail(entry, error)
        else:
            await self._follow(entry, handle)
        self.post_message(self.JobEnded(entry))

    @work(group="jobs", exit_on_error=False)
    async def _reattach_worker(self, entry: JobEntry) -> None:
        try:
            client = await self._client()
            handle = await client.subscribe(
                entry.request_id, on_progress=self._progress_callback(entry)
            )
        except JobsError as error:
            fail(entry, error, lost=error.code == NOT_FOUND)
        else:
            await self._follow(entry, handle)
        self.post_message(self.JobEnded(entry))

    async def _client(self) -> JobsClient:
        """The client; waits while it is still making its first connection."""
        if not self._ready.is_set() and self.connection != "connecting":
            raise JobsError(
                CONNECTION_CLOSED, f"not connected to {self.endpoint} (retrying in the background)"
            )
        await self._ready.wait()
        assert self.client is not None
        return self.client

    async def _follow(self, entry: JobEntry, handle: JobHandle) -> None:
        """From accepted to finished: the handle's status, progress and final result."""
        self.handles[entry.request_id] = handle
        entry.estimated_duration = handle.estimated_duration
        entry.status = "running" if handle.status == "running" else "queued"
        if handle.last_progress is not None:
            apply_progress(entry, handle.last_progress)
        entry.dirty = True
        if not handle.done:
            self.post_message(self.JobAccepted(entry))
        try:
            result = await handle.result()
        except JobsError as error:
            fail(entry, error, cancelled=error.code == CANCELLED)
        else:
            entry.data = result.result.data
            entry.result_metadata = dict(result.result.metadata or {})
            entry.status = "succeeded"
            entry.percentage = 100.0
        finally:
            self.handles.pop(entry.request_id, None)
        entry.finished_at = self.clock.monotonic()
        entry.dirty = True

    def _reattach(self, request_id: str, job: RememberedJob) -> None:
        if request_id in self.entries:
            return
        try:
            submitted = datetime.fromisoformat(job.submitted_at.replace("Z", "+00:00"))
            age = max((self.clock.now() - submitted).total_seconds(), 0.0)
        except ValueError:
            age = 0.0
        entry = JobEntry(
            request_id,
            job.action,
            job.label,
            self.clock.monotonic() - age,
            status="queued",
            reattached=True,
        )
        self._add(entry)
        self._reattach_worker(entry)

    @on(JobAccepted)
    def _accepted(self, event: JobAccepted) -> None:
        entry = event.entry
        if entry.finished or entry.reattached or self.endpoint is None:
            return
        remembered = RememberedJob(
            endpoint=self.endpoint,
            action=entry.action,
            label=entry.label,
            submitted_at=iso_z(self.clock.now()),
        )
        if not self.store.remember_job(entry.request_id, remembered):
            self.toast(str(self.store.problem), title="UI state", severity="warning")

    @on(JobEnded)
    def _ended(self, event: JobEnded) -> None:
        entry = event.entry
        if entry.finished_at is None:
            entry.finished_at = self.clock.monotonic()
        if entry.error_code != CONNECTION_CLOSED:
            # Lost track is not finished: the job may still run, and a restart re-attaches.
            self.store.forget_job(entry.request_id)
        entry.dirty = True
        name = f"{entry.request_id} {entry.action}"
        if entry.status == "succeeded":
            self.toast(f"{name} done: {entry.phase()}", title="Job finished")
        elif entry.status == "cancelled":
            self.toast(f"{name} cancelled.", title="Job cancelled", severity="warning")
        else:
            self.toast(
                error_text(entry.error_code, entry.error_message, entry.error_details),
                title=f"{name} · {entry.error_code}",
                severity="error",
            )
        self._redraw()

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        """A bug or an unexpected answer: a toast, never a traceback."""
        error = self.toast_worker_error(event)
        if error is None:
            return
        if event.worker.group == "jobs-client":
            self.connection = "failed"
            self._report_health("error", f"{type(error).__name__}: {error}")
        for entry in self.entries.values():
            if not entry.finished and entry.request_id not in self.handles:
                entry.dirty = True

    # -- actions on jobs ----------------------------------------------------------

    def _selected(self, what: str) -> JobEntry | None:
        entry = self.job_list.selected
        if entry is None:
            self.toast(f"No job to {what} — submit one first (s).", severity="warning")
        return entry

    def action_cancel_job(self) -> None:
        entry = self._selected("cancel")
        if entry is None or not self.writable("Cancel job"):
            return
        if entry.finished:
            self.toast(f"{entry.request_id} has already finished.", severity="warning")
            return
        self._send_cancel(entry)

    @work(group="jobs-cancel", exit_on_error=False)
    async def _send_cancel(self, entry: JobEntry) -> None:
        try:
            client = await self._client()
            await client.cancel(entry.request_id)
        except JobsError as error:
            self.toast(
                error_text(error.code, error.message, error.details),
                title=f"Cancel {entry.request_id}",
                severity="error",
            )

    def action_open_result(self) -> None:
        entry = self._selected("open")
        if entry is None:
            return
        location = result_location(entry.data)
        if location is None:
            self.toast(f"{entry.request_id} has no result URL or path (yet).", severity="warning")
            return
        self.open_location(location)

    def action_copy_location(self) -> None:
        entry = self._selected("copy")
        location = result_location(entry.data) if entry else None
        if entry is not None and location is None:
            self.toast(f"{entry.request_id} has no result URL or path (yet).", severity="warning")
        elif location is not None:
            self.copy(location, "Result location")

    def open_location(self, location: str) -> None:
        command = self.opener()
        if command is None:
            self.copy(location, "No desktop to open it on — copied instead")
            return
        self._launch(command, location)

    @work(group="jobs-open", exit_on_error=False)
    async def _launch(self, command: list[str], location: str) -> None:
        process = await asyncio.create_subprocess_exec(
            *command,
            location,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        if await process.wait() == 0:
            self.toast(location, title="Opened")
        else:
            self.copy(location, f"{command[0]} failed — copied instead")

    def copy(self, text: str, title: str) -> None:
        self.app.copy_to_clipboard(text)
        self.toast(text, title=title)

    def action_raw(self) -> None:
        self.form.toggle_raw()

    def action_new(self) -> None:
        self.query_one("#job-action", Select).focus()

    def action_clear_finished(self) -> None:
        removed = self.job_list.remove_finished()
        for request_id in [rid for rid, e in self.entries.items() if e.finished]:
            del self.entries[request_id]
        self.toast(f"Cleared {removed} finished job(s).", title="Jobs")
        self._redraw()

    @on(JobList.Opened)
    def _open_result(self, event: JobList.Opened) -> None:
        self.app.push_screen(
            JobResultScreen(event.entry, on_open=self.open_location, on_copy=self.copy)
        )

    # -- drawing -------------------------------------------------------------------

    def _redraw(self) -> None:
        now = self.clock.monotonic()
        self.job_list.refresh_rows(now)
        running = sum(1 for e in self.entries.values() if not e.finished)
        done = len(self.entries) - running
        state = {
            "connected": "connected",
            "reconnecting": "reconnecting…",
            "connecting": "connecting…",
            "closed": "disconnected",
        }.get(self.connection, self.connection)
        title = f"Jobs ─ {running} running · {done} finished ─ {state}"
        if title != self._title:
            self._title = title
            panel = self.query_one("#jobs-panel")
            panel.border_title = title
            panel.set_class(self.connection in ("reconnecting", "failed"), "-reconnecting")


def apply_progress(entry: JobEntry, progress: Progress) -> None:
    """Called per progress message: plain assignments, drawn by the next redraw tick."""
    entry.percentage = max(0.0, min(100.0, progress.percentage))
    entry.message = progress.message
    entry.current_step = progress.current_step
    entry.records_processed = progress.records_processed
    entry.records_total = progress.records_total
    if not entry.finished:
        entry.status = "running"
    entry.dirty = True


def fail(entry: JobEntry, error: JobsError, *, lost: bool = False, cancelled: bool = False) -> None:
    if cancelled:
        entry.status = "cancelled"
    else:
        entry.status = "lost" if lost else "failed"
    entry.error_code = error.code
    entry.error_message = error.message
    entry.error_details = error.details
    entry.dirty = True
