"""Enter on a job: its outcome — where the result is, the headline figures, then everything as JSON.

Only the opened job is rendered as JSON (results can be large: `process_data`
returns a sample of rows). `o` and `y` call back into the Jobs tab, which owns
the system opener and the clipboard fallback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import orjson
from rich.json import JSON
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.markup import escape
from textual.screen import ModalScreen
from textual.widgets import Static

from console.widgets import formatting as fmt
from console.widgets.job_list import JobEntry, size_text


def result_location(data: Any) -> str | None:
    """The download URL of a report, the output location of a pipeline, or a local path."""
    if not isinstance(data, dict):
        return None
    for key in ("url", "output_url", "output_location", "path", "local_path"):
        value = data.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def facts(entry: JobEntry) -> list[tuple[str, str]]:
    """(label, value) lines shown above the JSON: what an operator looks for first."""
    rows: list[tuple[str, str]] = [
        ("request id", entry.request_id),
        ("action", entry.action),
        ("status", entry.status),
    ]
    data = entry.data if isinstance(entry.data, dict) else {}
    if location := result_location(data):
        rows.append(("location", location))
    summary = data.get("summary") if isinstance(data.get("summary"), dict) else {}
    records = data.get("records", summary.get("total_records"))
    if isinstance(records, int):
        rows.append(("records", fmt.count(records)))
    if isinstance(data.get("size_bytes"), int):
        rows.append(("size", f"{size_text(data['size_bytes'])} ({data['size_bytes']:,} bytes)"))
    for key in ("format", "generated_at", "expires_at", "status", "version", "timestamp"):
        if isinstance(data.get(key), str | int | float) and key != "status":
            rows.append((key.replace("_", " "), str(data[key])))
    for key in ("model_version", "pipeline", "processing_time"):
        if key in summary:
            rows.append((key.replace("_", " "), str(summary[key])))
    metadata = entry.result_metadata
    if isinstance(metadata.get("total_processing_time"), int | float):
        rows.append(("server time", f"{metadata['total_processing_time']:.3f} s"))
    elif isinstance(metadata.get("processing_time"), int | float):
        rows.append(("server time", f"{metadata['processing_time'] * 1000:.1f} ms"))
    if entry.error_code:
        rows.append(("error", f"{entry.error_code} {entry.error_message or ''}".strip()))
    return rows


class JobResultScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("escape,q", "dismiss", "Close", id="job-result.close", key_display="esc"),
        Binding("o", "open", "Open", id="job-result.open", tooltip="Open the URL/path, or copy it"),
        Binding("y", "copy", "Copy location", id="job-result.copy"),
        Binding("J", "copy_json", "Copy JSON", id="job-result.copy_json"),
    ]

    def __init__(
        self,
        entry: JobEntry,
        *,
        on_open: Callable[[str], object],
        on_copy: Callable[[str, str], object],
    ) -> None:
        super().__init__()
        self.entry = entry
        self._on_open = on_open
        self._on_copy = on_copy
        self.location = result_location(entry.data)

    def compose(self) -> ComposeResult:
        entry = self.entry
        with VerticalScroll(id="job-result") as scroll:
            scroll.border_title = escape(f"{entry.request_id} · {entry.action} · {entry.status}")
            scroll.border_subtitle = (
                "o open · y copy location · J copy JSON · esc closes"
                if self.location
                else "J copy JSON · esc closes"
            )
            width = max(len(label) for label, _ in facts(entry))
            lines = "\n".join(f"{label:<{width}}  {value}" for label, value in facts(entry))
            yield Static(lines, id="job-result-facts", markup=False)
            sections: list[tuple[str, Any]] = []
            data = entry.data if isinstance(entry.data, dict) else {}
            for key in ("stats", "metrics"):
                if isinstance(data.get(key), dict):
                    sections.append((key, data[key]))
            summary = data.get("summary")
            if isinstance(summary, dict) and isinstance(summary.get("metrics"), dict):
                sections.append(("metrics", summary["metrics"]))
            if entry.error_details:
                sections.append(("error details", entry.error_details))
            if entry.data is not None:
                sections.append(("result data", entry.data))
            for heading, value in sections:
                yield Static(heading, classes="job-result-heading", markup=False)
                yield Static(JSON.from_data(value, indent=2, sort_keys=False))

    def on_mount(self) -> None:
        self.query_one("#job-result", VerticalScroll).focus()

    def action_open(self) -> None:
        if self.location is None:
            self.notify("This job has no result location to open.", severity="warning")
            return
        self._on_open(self.location)

    def action_copy(self) -> None:
        if self.location is None:
            self.notify("This job has no result location to copy.", severity="warning")
            return
        self._on_copy(self.location, "Result location")

    def action_copy_json(self) -> None:
        body = {"data": self.entry.data, "metadata": self.entry.result_metadata}
        self._on_copy(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode(), "Result JSON")
