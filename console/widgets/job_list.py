"""The jobs list: one row per job with a progress bar, the server's phase message, elapsed and ETA.

Progress callbacks only update a `JobEntry` and mark it dirty (O(1), no widget
touched); the owner's timer calls `JobList.refresh_rows` ~10 times a second, which
redraws only the rows whose text changed. Times come from the injected clock, so
a snapshot shows the same elapsed and ETA every run.

ETA (the spec is silent): elapsed * (100 - p) / p once the server has reported some
progress; before that, the server's `estimated_duration` minus elapsed; else `—`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import ProgressBar, Static

from console.widgets import formatting as fmt

JobStatus = Literal["sending", "queued", "running", "succeeded", "failed", "cancelled", "lost"]
FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "cancelled", "lost"})
STATUS_WORD: dict[str, str] = {
    "sending": "sending",
    "queued": "queued",
    "running": "",
    "succeeded": "done",
    "failed": "failed",
    "cancelled": "cancelled",
    "lost": "gone",
}


def clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def size_text(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


@dataclass
class JobEntry:
    """Everything the list shows about one job; updated by workers, drawn by the timer."""

    request_id: str
    action: str
    label: str
    started_at: float
    """Monotonic seconds (injected clock) when the job was submitted."""
    status: JobStatus = "sending"
    percentage: float = 0.0
    message: str = ""
    current_step: str | None = None
    records_processed: int | None = None
    records_total: int | None = None
    estimated_duration: float | None = None
    finished_at: float | None = None
    data: Any = None
    result_metadata: dict[str, Any] = field(default_factory=dict)
    error_code: str | None = None
    error_message: str | None = None
    error_details: dict[str, Any] | None = None
    reattached: bool = False
    dirty: bool = True

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def elapsed(self, now: float) -> float:
        return max((self.finished_at if self.finished_at is not None else now) - self.started_at, 0)

    def eta(self, now: float) -> float | None:
        if self.finished:
            return None
        elapsed = self.elapsed(now)
        if 0 < self.percentage < 100:
            return elapsed * (100 - self.percentage) / self.percentage
        if self.estimated_duration is not None:
            return max(self.estimated_duration - elapsed, 0)
        return None

    def headline(self) -> str:
        short = clip(self.request_id, 12)
        return f"{short:<12} {clip(f'{self.action} {self.label}'.strip(), 24):<24}"

    def status_text(self) -> str:
        if self.status == "running" or (self.status == "queued" and self.percentage > 0):
            return f"{self.percentage:5.1f} %".replace(".0 %", " %")
        return STATUS_WORD[self.status]

    def phase(self) -> str:
        """The second line's left part: the server's phase message, or the outcome."""
        if self.status == "succeeded":
            return " · ".join(result_summary(self.action, self.data))
        if self.status in ("failed", "lost"):
            return f"{self.error_code or 'ERROR'} {self.error_message or ''}".strip()
        if self.status == "cancelled":
            return f"cancelled at {self.percentage:.0f} %"
        if self.reattached and not self.message:
            return "re-attached — waiting for progress…"
        parts = [self.message or "waiting for the server…"]
        if self.records_processed is not None:
            total = f"/{fmt.count(self.records_total)}" if self.records_total else ""
            parts.append(f"{fmt.count(self.records_processed)}{total} records")
        return " · ".join(parts)

    def times(self, now: float) -> str:
        """Elapsed, and the ETA while the job runs: the right part, never clipped."""
        elapsed = fmt.mmss(self.elapsed(now))
        if self.finished:
            return elapsed
        eta = self.eta(now)
        return f"{elapsed} · ETA {fmt.mmss(eta) if eta is not None else '—'}"


def result_summary(action: str, data: Any) -> list[str]:
    """The few figures worth a glance; everything else is in the result view (enter)."""
    if not isinstance(data, dict):
        return ["✓"]
    parts: list[str] = []
    summary = data.get("summary")
    if isinstance(summary, dict):
        metrics = summary.get("metrics")
        if isinstance(metrics, dict) and (headline := headline_metric(metrics)):
            parts.append(headline)
        if isinstance(summary.get("total_records"), int):
            parts.append(f"{fmt.count(summary['total_records'])} records")
    if isinstance(data.get("records"), int):
        parts.append(f"{fmt.count(data['records'])} records")
    if isinstance(data.get("size_bytes"), int):
        parts.append(size_text(data["size_bytes"]))
    if action == "health" and isinstance(data.get("status"), str):
        parts.append(f"✓ {data['status']} {data.get('version', '')}".strip())
    if data.get("url") or data.get("output_location"):
        parts.append("result ↗")
    return parts or ["✓"]


HEADLINE_METRICS = ("f1_score", "accuracy", "r2", "silhouette", "anomaly_rate")
"""The one figure per pipeline worth the list's space; the result view shows them all."""


def headline_metric(metrics: dict[str, Any]) -> str | None:
    numeric = {
        name: value
        for name, value in metrics.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }
    name = next((n for n in HEADLINE_METRICS if n in numeric), next(iter(numeric), None))
    if name is None:
        return None
    value = numeric[name]
    return f"{name} {fmt.count(value) if isinstance(value, int) else f'{value:.3f}'}"


class JobRow(Vertical):
    """Two lines: `id action label [bar] status`, then phase message · elapsed · ETA."""

    def __init__(self, entry: JobEntry) -> None:
        super().__init__(classes="job-row")
        self.entry = entry
        self._shown: tuple[str, str, str, str, float] | None = None
        self._title = Static(entry.headline(), classes="job-title", markup=False)
        self._bar = ProgressBar(total=100, show_eta=False, show_percentage=False)
        self._status = Static("", classes="job-status", markup=False)
        self._phase = Static("", classes="job-phase", markup=False)
        self._times = Static("", classes="job-times", markup=False)

    def compose(self) -> ComposeResult:
        with Horizontal(classes="job-line"):
            yield self._title
            yield self._bar
            yield self._status
        with Horizontal(classes="job-line"):
            yield self._phase
            yield self._times

    def redraw(self, now: float) -> None:
        """Touch only what changed; these widgets have fixed sizes, so no layout pass."""
        entry = self.entry
        shown = (
            entry.status,
            entry.status_text(),
            entry.phase(),
            entry.times(now),
            entry.percentage,
        )
        previous = self._shown or ("", "", "", "", -1.0)
        if shown == previous:
            return
        if shown[0] != previous[0]:
            for name in STATUS_WORD:
                self.set_class(name == shown[0], f"-{name}")
        for widget, new, old in zip(
            (self._status, self._phase, self._times), shown[1:4], previous[1:4], strict=True
        ):
            if new != old:
                widget.update(new, layout=False)
        bar = 100.0 if entry.status == "succeeded" else entry.percentage
        if self._bar.progress != bar:
            self._bar.update(progress=bar)
        self._shown = shown


class JobList(VerticalScroll, can_focus=True):
    """Newest job on top; a highlighted row that ↑↓ move, enter opens."""

    BINDINGS: ClassVar[list[Binding]] = [
        Binding("up,k", "move(-1)", "Up", id="jobs-list.up", show=False),
        Binding("down,j", "move(1)", "Down", id="jobs-list.down", show=False),
        Binding("home,g", "move_to(0)", "Newest", id="jobs-list.newest", show=False),
        Binding("end,G", "move_to(-1)", "Oldest", id="jobs-list.oldest", show=False),
        Binding(
            "enter",
            "open",
            "Result",
            id="jobs-list.open",
            tooltip="Show the selected job's result (URL/path, records, metrics)",
        ),
    ]

    class Opened(Message):
        def __init__(self, entry: JobEntry) -> None:
            super().__init__()
            self.entry = entry

    def __init__(self, *, id: str) -> None:
        super().__init__(id=id)
        self.rows: dict[str, JobRow] = {}
        self.cursor = 0
        self._empty = Static(
            "No jobs yet — fill the form and press s (or enter in a field); h runs a health check.",
            id="jobs-empty",
            markup=False,
        )

    def compose(self) -> ComposeResult:
        yield self._empty

    def set_empty_text(self, text: str) -> None:
        self._empty.update(text)

    @property
    def ordered(self) -> list[JobRow]:
        return [child for child in self.children if isinstance(child, JobRow)]

    @property
    def selected(self) -> JobEntry | None:
        rows = self.ordered
        return rows[self.cursor].entry if rows else None

    def add(self, entry: JobEntry, now: float) -> JobRow:
        row = JobRow(entry)
        rows = self.ordered
        self.rows[entry.request_id] = row
        if rows:
            self.mount(row, before=rows[0])
        else:
            self.mount(row)
        self._empty.display = False
        self.cursor = 0
        self.call_after_refresh(self._mark)
        row.call_after_refresh(row.redraw, now)
        return row

    def remove_finished(self) -> int:
        gone = [row for row in self.ordered if row.entry.finished]
        for row in gone:
            del self.rows[row.entry.request_id]
            row.remove()
        self.cursor = 0
        self._empty.display = len(self.rows) == 0
        self.call_after_refresh(self._mark)
        return len(gone)

    def refresh_rows(self, now: float) -> None:
        """Redraw dirty rows and, while a job runs, its clock-driven elapsed/ETA."""
        for row in self.rows.values():
            if row.entry.dirty or not row.entry.finished:
                row.entry.dirty = False
                row.redraw(now)

    def _mark(self) -> None:
        rows = self.ordered
        for n, row in enumerate(rows):
            row.set_class(n == self.cursor, "-selected")
        if rows:
            self.scroll_to_widget(rows[self.cursor], animate=False)

    def select(self, request_id: str) -> None:
        rows = self.ordered
        for n, row in enumerate(rows):
            if row.entry.request_id == request_id:
                self.cursor = n
        self._mark()

    def action_move(self, delta: int) -> None:
        rows = self.ordered
        if rows:
            self.cursor = max(0, min(len(rows) - 1, self.cursor + delta))
            self._mark()

    def action_move_to(self, index: int) -> None:
        rows = self.ordered
        if rows:
            self.cursor = index % len(rows)
            self._mark()

    def action_open(self) -> None:
        if (entry := self.selected) is not None:
            self.post_message(self.Opened(entry))
