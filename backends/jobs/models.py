"""Every message of websocket-jobs.md as a pydantic v2 model, plus the handler payloads.

Wire envelopes (`RequestMessage`, `ResponseMessage`, `ProgressMessage`,
`ResultMessage`, `ErrorMessage`) accept unknown fields so our client keeps working
against a server that adds some; the handler payloads forbid them, so a typo in a
request is a `VALIDATION_ERROR` rather than a silently ignored option.

Additions where the spec is silent (all optional on the wire):
- `subscribe` / `cancel` actions with `{"request_id": ...}` payloads; their `id` may
  be left out (the issue's example omits it) and then defaults to the target's id;
- a cancelled job ends with a `result` whose `success` is false and whose data is
  `{"status": "cancelled", ...}`: the spec's error table has no cancellation code;
- `generate_report.filters` accepts `category` (the event family: sales, inventory,
  customer, logistics, store, marketing), `event_type` and `store_id`, because the
  retail events carry no product category or region.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# -- error codes (the spec's table) ----------------------------------------------

VALIDATION_ERROR = "VALIDATION_ERROR"
NOT_FOUND = "NOT_FOUND"
UNAUTHORIZED = "UNAUTHORIZED"
INTERNAL_ERROR = "INTERNAL_ERROR"
TIMEOUT = "TIMEOUT"
RATE_LIMITED = "RATE_LIMITED"
INVALID_ACTION = "INVALID_ACTION"
ERROR_CODES: tuple[str, ...] = (
    VALIDATION_ERROR,
    NOT_FOUND,
    UNAUTHORIZED,
    INTERNAL_ERROR,
    TIMEOUT,
    RATE_LIMITED,
    INVALID_ACTION,
)
RETRYABLE_CODES = frozenset({INTERNAL_ERROR, TIMEOUT, RATE_LIMITED})
CANCELLED = "CANCELLED"  # client-side code of a job that ended by `cancel`

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})

REPORT_FORMATS = ("pdf", "csv", "excel")
REPORT_TYPES = ("monthly", "quarterly", "annual", "custom")
PIPELINES = ("classification", "regression", "clustering", "anomaly")
OUTPUT_FORMATS = ("json", "csv", "parquet")

EVENT_CATEGORIES: dict[str, str] = {
    "receipt_created": "sales",
    "receipt_line_added": "sales",
    "payment_processed": "sales",
    "promotion_applied": "sales",
    "inventory_updated": "inventory",
    "stockout_detected": "inventory",
    "reorder_triggered": "inventory",
    "customer_entered": "customer",
    "customer_zone_changed": "customer",
    "ble_ping_detected": "customer",
    "truck_arrived": "logistics",
    "truck_departed": "logistics",
    "store_opened": "store",
    "store_closed": "store",
    "ad_impression": "marketing",
}
CATEGORIES: tuple[str, ...] = tuple(dict.fromkeys(EVENT_CATEGORIES.values()))


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- requests ---------------------------------------------------------------------


class RequestMessage(_Wire):
    id: str = Field(min_length=1, max_length=256)
    action: str = Field(min_length=1, max_length=128)
    payload: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] | None = None


class SubscribePayload(_Payload):
    request_id: str = Field(min_length=1, max_length=256)


CancelPayload = SubscribePayload


# -- replies ----------------------------------------------------------------------


class SyncResponse(_Wire):
    request_id: str
    status: Literal["success"] = "success"
    data: Any = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class QueuedResponse(_Wire):
    request_id: str
    status: Literal["queued"] = "queued"
    message: str = "Request queued for processing"
    estimated_duration: float | None = None


class ResponseMessage(_Wire):
    type: Literal["response"] = "response"
    response: SyncResponse | QueuedResponse = Field(discriminator="status")


class ProgressMetadata(_Wire):
    current_step: str | None = None
    records_processed: int | None = None
    records_total: int | None = None


class ProgressBody(_Wire):
    request_id: str
    progress: float = Field(ge=0, le=100)
    message: str = ""
    metadata: ProgressMetadata = Field(default_factory=ProgressMetadata)
    timestamp: str


class ProgressMessage(_Wire):
    type: Literal["progress"] = "progress"
    progress: ProgressBody


class ResultBody(_Wire):
    request_id: str
    success: bool
    data: Any = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class ResultMessage(_Wire):
    type: Literal["result"] = "result"
    result: ResultBody


class ErrorBody(_Wire):
    request_id: str | None = None
    code: str
    message: str
    details: dict[str, Any] | None = None


class ErrorMessage(_Wire):
    type: Literal["error"] = "error"
    error: ErrorBody


ServerMessage = ResponseMessage | ProgressMessage | ResultMessage | ErrorMessage


# -- handler payloads and results -------------------------------------------------

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _parse_day(value: Any) -> date:
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not _DATE.match(value):
        raise ValueError("expected YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ValueError("expected YYYY-MM-DD (a real calendar date)") from exc


class ReportFilters(_Payload):
    category: (
        Literal["sales", "inventory", "customer", "logistics", "store", "marketing"] | None
    ) = None
    event_type: str | None = None
    store_id: int | None = None

    @field_validator("event_type")
    @classmethod
    def _known_type(cls, value: str | None) -> str | None:
        if value is not None and value not in EVENT_CATEGORIES:
            raise ValueError(f"expected one of {', '.join(EVENT_CATEGORIES)}")
        return value


class GenerateReportPayload(_Payload):
    start_date: date
    end_date: date
    format: Literal["pdf", "csv", "excel"]
    report_type: Literal["monthly", "quarterly", "annual", "custom"]
    include_charts: bool = False
    filters: ReportFilters = Field(default_factory=ReportFilters)

    @field_validator("start_date", "end_date", mode="before")
    @classmethod
    def _day(cls, value: Any) -> date:
        return _parse_day(value)

    @model_validator(mode="after")
    def _ordered(self) -> GenerateReportPayload:
        if self.end_date < self.start_date:
            raise ValueError("end_date must not be before start_date")
        return self


class ReportStats(_Wire):
    total_value: float
    categories_count: int
    event_types_count: int = 0
    rows: int = 0


class ReportResult(_Wire):
    url: str
    records: int
    size_bytes: int
    format: str
    generated_at: str
    expires_at: str
    stats: ReportStats


class DataSource(_Payload):
    type: Literal["file", "query", "stream"]
    path: str | None = None
    query: str | None = None
    stream_id: str | None = None

    @model_validator(mode="after")
    def _has_its_field(self) -> DataSource:
        needed = {"file": "path", "query": "query", "stream": "stream_id"}[self.type]
        if not getattr(self, needed):
            raise ValueError(f"data_source.{needed} is required when type is {self.type!r}")
        return self


class OutputSpec(_Payload):
    format: Literal["json", "csv", "parquet"] = "json"
    destination: str | None = None


class PipelineOptions(_Payload):
    """Options of every pipeline; each pipeline reads the ones that apply to it."""

    target: str | None = None
    features: list[str] | None = None
    confidence_threshold: float = Field(0.0, ge=0, le=1)
    max_iterations: int = Field(100, ge=1, le=100_000)
    test_size: float = Field(0.25, gt=0, lt=1)
    n_clusters: int = Field(3, ge=2, le=1000)
    contamination: float | Literal["auto"] = "auto"
    max_records: int = Field(1_000_000, ge=1)
    sample_size: int = Field(20, ge=0, le=1000)

    @field_validator("contamination")
    @classmethod
    def _share(cls, value: float | str) -> float | str:
        if isinstance(value, float | int) and not 0 < value <= 0.5:
            raise ValueError("expected a share in (0, 0.5] or 'auto'")
        return value


class ProcessDataPayload(_Payload):
    pipeline: Literal["classification", "regression", "clustering", "anomaly"]
    data_source: DataSource
    output: OutputSpec
    options: PipelineOptions = Field(default_factory=PipelineOptions)


class ProcessSummary(_Wire):
    total_records: int
    processing_time: float
    model_version: str
    pipeline: str
    metrics: dict[str, Any]


class ProcessResult(_Wire):
    summary: ProcessSummary
    data: list[dict[str, Any]] = []
    output_location: str
    output_url: str | None = None


class HealthData(_Wire):
    status: str
    timestamp: str
    version: str
