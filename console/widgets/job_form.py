"""The New-job form of the Jobs tab: one form per built-in action, plus raw JSON for any action.

The form checks what it can before anything is sent (dates, date order, filter and
option syntax, a source for the chosen source type) and shows every problem at
once, inline and as a toast, so a typo costs no round trip. The raw JSON mode is
deliberately checked only for JSON syntax and shape (`{"action": ..., "payload":
{...}}`): it is the way to send anything at all — another action, a payload the
forms cannot express, a deliberately bad one — and the server's own validation
answers it, shown as a toast with the server's code and message.

Choices where the spec is silent:
- The report period defaults to the current month so far by the injected clock
  (the retail events the report summarises are recent ones).
- Filters and options are typed as `key=value` pairs separated by commas; option
  values that read as JSON (numbers, `true`, `null`) are sent as such. The built
  payload is then checked with the server's own payload models
  (`backends.jobs.models`), so the form never accepts what the server rejects.
- Switching to raw JSON starts from the current form's request, so a form is the
  quickest way to a template.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, ClassVar

import orjson
from pydantic import BaseModel, ValidationError
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.validation import Function
from textual.widgets import (
    Button,
    Checkbox,
    ContentSwitcher,
    Input,
    Label,
    Select,
    Static,
    TextArea,
)

from backends.jobs.models import (
    OUTPUT_FORMATS,
    PIPELINES,
    REPORT_FORMATS,
    REPORT_TYPES,
    GenerateReportPayload,
    ProcessDataPayload,
)

ACTIONS: tuple[str, ...] = ("generate_report", "process_data", "health")
SOURCE_TYPES: tuple[str, ...] = ("file", "query", "stream")
SOURCE_FIELD: dict[str, str] = {"file": "path", "query": "query", "stream": "stream_id"}
SOURCE_HINT: dict[str, str] = {
    "file": "input.csv (in the jobs data folder)",
    "query": "SELECT * FROM events WHERE …",
    "stream": "retail",
}
MAX_RAW_BYTES = 1024 * 1024
"""The spec's payload limit; larger text is refused here rather than by a closed connection."""


@dataclass(frozen=True)
class JobRequest:
    """What the form asks for; `label` is the one detail the jobs list shows next to the action."""

    action: str
    payload: dict[str, Any]
    metadata: dict[str, Any] | None = None
    request_id: str | None = None
    label: str = ""


@dataclass
class Checked:
    """A request, or the reasons there is none."""

    request: JobRequest | None = None
    errors: list[str] = field(default_factory=list)


# -- parsing, free of widgets so it is easy to test ------------------------------------


def is_date(text: str) -> bool:
    try:
        date.fromisoformat(text.strip())
    except ValueError:
        return False
    return len(text.strip()) == 10


def parse_pairs(text: str, what: str, *, typed: bool) -> dict[str, Any]:
    """`a=1, b=x` → {"a": 1, "b": "x"} (values typed as JSON when `typed`). Raises ValueError."""
    pairs: dict[str, Any] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, sep, value = (s.strip() for s in part.partition("="))
        if not sep or not key:
            raise ValueError(f"{what}: key=value pairs separated by commas, e.g. {_EXAMPLE[what]}")
        pairs[key] = _typed(value) if typed else value
    return pairs


_EXAMPLE = {"filters": "category=sales", "options": "max_iterations=100"}


def _typed(value: str) -> Any:
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return value


def _pairs_valid(what: str, typed: bool) -> Callable[[str], bool]:
    def check(text: str) -> bool:
        try:
            parse_pairs(text, what, typed=typed)
        except ValueError:
            return False
        return True

    return check


def model_errors(model: type[BaseModel], payload: dict[str, Any]) -> list[str]:
    """What the server's own payload model says, so form and server never disagree."""
    try:
        model.model_validate(payload)
    except ValidationError as exc:
        return [
            f"{'.'.join(str(p) for p in error['loc']) or 'payload'}: "
            f"{error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors(include_url=False)
        ]
    return []


def report_request(
    *,
    start: str,
    end: str,
    fmt: str,
    report_type: str,
    include_charts: bool,
    filters: str,
) -> Checked:
    errors: list[str] = []
    for name, value in (("start_date", start), ("end_date", end)):
        if not is_date(value):
            errors.append(f"{name}: a date as YYYY-MM-DD, e.g. 2024-01-31")
    if not errors and date.fromisoformat(end.strip()) < date.fromisoformat(start.strip()):
        errors.append("end_date: on or after start_date")
    try:
        parsed_filters = parse_pairs(filters, "filters", typed=False)
    except ValueError as exc:
        errors.append(str(exc))
        parsed_filters = {}
    if errors:
        return Checked(errors=errors)
    payload: dict[str, Any] = {
        "start_date": start.strip(),
        "end_date": end.strip(),
        "format": fmt,
        "report_type": report_type,
        "include_charts": include_charts,
    }
    if parsed_filters:
        payload["filters"] = parsed_filters
    if errors := model_errors(GenerateReportPayload, payload):
        return Checked(errors=errors)
    return Checked(JobRequest("generate_report", payload, label=fmt))


def process_request(
    *,
    pipeline: str,
    source_type: str,
    source: str,
    output_format: str,
    destination: str,
    options: str,
) -> Checked:
    errors: list[str] = []
    key = SOURCE_FIELD[source_type]
    if not source.strip():
        errors.append(f"data_source.{key}: required for a {source_type} source")
    try:
        parsed_options = parse_pairs(options, "options", typed=True)
    except ValueError as exc:
        errors.append(str(exc))
        parsed_options = {}
    if errors:
        return Checked(errors=errors)
    output: dict[str, Any] = {"format": output_format}
    if destination.strip():
        output["destination"] = destination.strip()
    payload: dict[str, Any] = {
        "pipeline": pipeline,
        "data_source": {"type": source_type, key: source.strip()},
        "output": output,
    }
    if parsed_options:
        payload["options"] = parsed_options
    if errors := model_errors(ProcessDataPayload, payload):
        return Checked(errors=errors)
    return Checked(JobRequest("process_data", payload, label=pipeline))


def raw_request(text: str) -> Checked:
    """A whole request message as JSON; `id`, `payload` and `metadata` are optional."""
    if len(text.encode()) > MAX_RAW_BYTES:
        return Checked(errors=["raw JSON: larger than the 1 MB the server accepts"])
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return Checked(errors=[f"raw JSON: line {exc.lineno} column {exc.colno}: {exc.msg}"])
    if not isinstance(data, dict):
        return Checked(errors=['raw JSON: an object like {"action": "health", "payload": {}}'])
    errors: list[str] = []
    action, payload = data.get("action"), data.get("payload", {})
    metadata, request_id = data.get("metadata"), data.get("id")
    if not isinstance(action, str) or not action.strip():
        errors.append('raw JSON: "action" must be a non-empty string')
    if not isinstance(payload, dict):
        errors.append('raw JSON: "payload" must be an object')
    if metadata is not None and not isinstance(metadata, dict):
        errors.append('raw JSON: "metadata" must be an object')
    if request_id is not None and (not isinstance(request_id, str) or not request_id.strip()):
        errors.append('raw JSON: "id" must be a non-empty string (or left out)')
    if errors:
        return Checked(errors=errors)
    return Checked(JobRequest(str(action), payload, metadata, request_id, label="raw"))


def raw_text(request: JobRequest | None, action: str) -> str:
    """The raw JSON template for a request (or an empty payload for `action`)."""
    body: dict[str, Any] = {"action": action, "payload": request.payload if request else {}}
    if request and request.metadata:
        body["metadata"] = request.metadata
    return orjson.dumps(body, option=orjson.OPT_INDENT_2).decode()


# -- the widget --------------------------------------------------------------------------


class JobForm(VerticalScroll):
    """Posts `Submitted` with a checked request; shows what to fix otherwise."""

    RAW = "raw"

    class Submitted(Message):
        def __init__(self, request: JobRequest) -> None:
            super().__init__()
            self.request = request

    class Rejected(Message):
        """The form has errors (already shown inline); the tab toasts them."""

        def __init__(self, errors: list[str]) -> None:
            super().__init__()
            self.errors = errors

    FIELD_IDS: ClassVar[tuple[str, ...]] = (
        "job-start",
        "job-end",
        "job-filters",
        "job-source",
        "job-destination",
        "job-options",
    )

    def __init__(self, *, today: date, read_only: bool, id: str) -> None:
        super().__init__(id=id)
        self._today = today
        self._read_only = read_only
        self.border_title = "New job"

    def compose(self) -> ComposeResult:
        with Horizontal(classes="field"):
            yield Label("action", classes="field-label")
            yield Select(
                [(name, name) for name in ACTIONS] + [("{…} raw JSON", self.RAW)],
                value="generate_report",
                allow_blank=False,
                compact=True,
                id="job-action",
            )
        with ContentSwitcher(initial="form-generate_report", id="job-forms"):
            with Vertical(id="form-generate_report", classes="job-fields"):
                yield from self._report_fields()
            with Vertical(id="form-process_data", classes="job-fields"):
                yield from self._process_fields()
            with Vertical(id="form-health", classes="job-fields"):
                yield Static(
                    "health needs no payload: the server answers at once with its status, "
                    "time and version.",
                    classes="job-note",
                )
            with Vertical(id=f"form-{self.RAW}", classes="job-fields"):
                yield Static(
                    'Any request: {"action", "payload", optional "id", "metadata"}. '
                    "Sent as typed; the server validates it.",
                    classes="job-note",
                )
                yield TextArea(
                    raw_text(None, "health"),
                    soft_wrap=True,
                    tab_behavior="indent",
                    compact=True,
                    id="job-raw",
                )
        yield Static("", id="job-errors", markup=False)
        yield Button(
            "Submit", id="job-submit", variant="primary", compact=True, disabled=self._read_only
        )

    def _report_fields(self) -> ComposeResult:
        date_check = Function(is_date, "a date as YYYY-MM-DD")
        with Horizontal(classes="field"):
            yield Label("start", classes="field-label")
            yield Input(
                self._today.replace(day=1).isoformat(),
                placeholder="YYYY-MM-DD",
                validators=[date_check],
                compact=True,
                id="job-start",
                classes="job-input",
            )
        with Horizontal(classes="field"):
            yield Label("end", classes="field-label")
            yield Input(
                self._today.isoformat(),
                placeholder="YYYY-MM-DD",
                validators=[date_check],
                compact=True,
                id="job-end",
                classes="job-input",
            )
        with Horizontal(classes="field"):
            yield Label("format", classes="field-label")
            yield self._select("job-format", REPORT_FORMATS, "pdf")
        with Horizontal(classes="field"):
            yield Label("type", classes="field-label")
            yield self._select("job-report-type", REPORT_TYPES, "monthly")
        yield Checkbox("include charts", True, compact=True, id="job-charts")
        with Horizontal(classes="field"):
            yield Label("filters", classes="field-label")
            yield Input(
                placeholder="category=sales, store_id=12",
                validators=[Function(_pairs_valid("filters", False), "key=value, …")],
                compact=True,
                id="job-filters",
                classes="job-input",
            )

    def _process_fields(self) -> ComposeResult:
        with Horizontal(classes="field"):
            yield Label("pipeline", classes="field-label")
            yield self._select("job-pipeline", PIPELINES, "anomaly")
        with Horizontal(classes="field"):
            yield Label("source", classes="field-label")
            yield self._select("job-source-type", SOURCE_TYPES, "stream")
        with Horizontal(classes="field"):
            yield Label("stream_id", classes="field-label", id="job-source-label")
            yield Input(
                "retail",
                placeholder=SOURCE_HINT["stream"],
                compact=True,
                id="job-source",
                classes="job-input",
            )
        with Horizontal(classes="field"):
            yield Label("output", classes="field-label")
            yield self._select("job-output", OUTPUT_FORMATS, "json")
        with Horizontal(classes="field"):
            yield Label("destination", classes="field-label")
            yield Input(
                placeholder="optional", compact=True, id="job-destination", classes="job-input"
            )
        with Horizontal(classes="field"):
            yield Label("options", classes="field-label")
            yield Input(
                placeholder="max_iterations=100, …",
                validators=[Function(_pairs_valid("options", True), "key=value, …")],
                compact=True,
                id="job-options",
                classes="job-input",
            )

    @staticmethod
    def _select(widget_id: str, values: tuple[str, ...], value: str) -> Select[str]:
        return Select(
            [(v, v) for v in values], value=value, allow_blank=False, compact=True, id=widget_id
        )

    # -- reading the form --------------------------------------------------------------

    @property
    def action(self) -> str:
        return str(self.query_one("#job-action", Select).value)

    def set_action(self, action: str) -> None:
        self.query_one("#job-action", Select).value = action

    def _value(self, widget_id: str) -> str:
        widget = self.query_one(f"#{widget_id}")
        if isinstance(widget, Input):
            return widget.value
        if isinstance(widget, Select):
            return str(widget.value)
        if isinstance(widget, TextArea):
            return widget.text
        raise TypeError(widget_id)

    def check(self, action: str | None = None) -> Checked:
        """The request of the form for `action` (default: the selected one)."""
        action = action or self.action
        if action == "generate_report":
            return report_request(
                start=self._value("job-start"),
                end=self._value("job-end"),
                fmt=self._value("job-format"),
                report_type=self._value("job-report-type"),
                include_charts=self.query_one("#job-charts", Checkbox).value,
                filters=self._value("job-filters"),
            )
        if action == "process_data":
            return process_request(
                pipeline=self._value("job-pipeline"),
                source_type=self._value("job-source-type"),
                source=self._value("job-source"),
                output_format=self._value("job-output"),
                destination=self._value("job-destination"),
                options=self._value("job-options"),
            )
        if action == "health":
            return Checked(JobRequest("health", {}))
        return raw_request(self._value("job-raw"))

    def show_errors(self, errors: list[str]) -> None:
        shown = self.query_one("#job-errors", Static)
        shown.update("\n".join(errors))
        shown.display = bool(errors)

    def submit(self) -> None:
        checked = self.check()
        self.show_errors(checked.errors)
        if checked.request is None:
            self.post_message(self.Rejected(checked.errors))
        else:
            self.post_message(self.Submitted(checked.request))

    def toggle_raw(self) -> None:
        """Raw JSON starts from the current form's request; back goes to the raw action's form."""
        if self.action == self.RAW:
            action = raw_request(self._value("job-raw")).request
            self.set_action(action.action if action and action.action in ACTIONS else ACTIONS[0])
        else:
            self.set_action(self.RAW)

    # -- events -----------------------------------------------------------------------

    @on(Select.Changed, "#job-action")
    def _action_changed(self, event: Select.Changed) -> None:
        event.stop()
        action = str(event.value)
        previous = self.query_one("#job-forms", ContentSwitcher).current
        if action == self.RAW and previous and previous != f"form-{self.RAW}":
            shown_action = previous.removeprefix("form-")
            self.query_one("#job-raw", TextArea).text = raw_text(
                self.check(shown_action).request, shown_action
            )
        self.query_one("#job-forms", ContentSwitcher).current = f"form-{action}"
        self.show_errors([])

    @on(Select.Changed, "#job-source-type")
    def _source_type_changed(self, event: Select.Changed) -> None:
        event.stop()
        kind = str(event.value)
        self.query_one("#job-source-label", Label).update(SOURCE_FIELD[kind])
        source = self.query_one("#job-source", Input)
        source.placeholder = SOURCE_HINT[kind]
        source.value = "retail" if kind == "stream" else ""

    @on(Input.Submitted, ".job-input")
    @on(Button.Pressed, "#job-submit")
    def _submit_pressed(self, event: Message) -> None:
        event.stop()
        self.submit()
