"""Request and response bodies of the retail streaming API, field for field as the spec.

Shared by the server (`api.py`), the typed client (`client.py`) and the console.
Response models allow extra fields so our client keeps working against a real
service that adds some.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SinkKind = Literal["memory", "kafka", "redis", "eventhub"]
DisruptionType = Literal["dc_outage", "inventory_shortage", "truck_breakdown", "weather_delay"]
DISRUPTION_TYPES: tuple[str, ...] = (
    "dc_outage",
    "inventory_shortage",
    "truck_breakdown",
    "weather_delay",
)


class _Response(BaseModel):
    model_config = ConfigDict(extra="allow")


class StartRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    emit_interval_ms: int = Field(500, ge=0, le=3_600_000)
    burst: int = Field(100, ge=1, le=100_000)
    duration_minutes: int | None = Field(None, ge=1, le=7 * 24 * 60)
    event_types: list[str] | None = None


class StartResponse(_Response):
    success: bool
    message: str
    operation_id: str
    started_at: str


class StopResponse(_Response):
    success: bool
    message: str
    operation_id: str


class StatusResponse(_Response):
    is_streaming: bool
    status: Literal["running", "stopped", "error"]
    uptime_seconds: float
    events_sent: int
    events_per_second: float
    last_event_time: str | None = None


class StatisticsResponse(_Response):
    events_generated: int = 0
    events_sent_successfully: int = 0
    events_failed: int = 0
    batches_sent: int = 0
    total_streaming_time: float = 0.0
    events_per_second: float = 0.0
    bytes_sent: int = 0
    last_event_time: str | None = None
    event_type_counts: dict[str, int] = Field(default_factory=dict)
    error_counts: dict[str, int] = Field(default_factory=dict)
    connection_failures: int = 0
    circuit_breaker_trips: int = 0
    events_in_flight: int = 0


class RecentEventsResponse(_Response):
    events: list[dict[str, Any]]
    count: int
    timestamp: str


class HealthResponse(_Response):
    status: Literal["healthy", "degraded", "unhealthy"]
    timestamp: str
    checks: dict[str, dict[str, Any]]


class RealtimeConfig(_Response):
    emit_interval_ms: int
    burst: int
    azure_connection_string: str | None = None
    max_batch_size: int
    batch_timeout_ms: int
    retry_attempts: int
    circuit_breaker_enabled: bool
    monitoring_interval: int
    sink: SinkKind = "memory"


class ConfigResponse(_Response):
    realtime: RealtimeConfig
    stream: dict[str, Any]
    available_event_types: list[str]


class ConfigUpdate(BaseModel):
    """`PUT /stream/config`; `sink` is our extension to pick where events go."""

    model_config = ConfigDict(extra="forbid")

    emit_interval_ms: int | None = Field(None, ge=0, le=3_600_000)
    burst: int | None = Field(None, ge=1, le=100_000)
    max_batch_size: int | None = Field(None, ge=1, le=100_000)
    batch_timeout_ms: int | None = Field(None, ge=0, le=600_000)
    retry_attempts: int | None = Field(None, ge=0, le=100)
    circuit_breaker_enabled: bool | None = None
    monitoring_interval: int | None = Field(None, ge=1, le=3600)
    sink: SinkKind | None = None


class SuccessResponse(_Response):
    success: bool
    message: str


class SinkTestResponse(_Response):
    success: bool
    message: str
    response_time_ms: float
    details: dict[str, Any] = Field(default_factory=dict)


class EventTypesResponse(_Response):
    event_types: list[str]
    count: int
    description: str


class DisruptionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    disruption_type: str
    target_id: int
    severity: float
    duration_minutes: int = Field(ge=1, le=7 * 24 * 60)
    product_ids: list[int] | None = None


class DisruptionCreated(_Response):
    success: bool
    disruption_id: str
    message: str
    active_until: str


class DisruptionInfo(_Response):
    disruption_id: str
    type: str
    target_id: int
    severity: float
    created_at: str
    active_until: str
    time_remaining_minutes: float
    events_affected: int
    status: str
    product_ids: list[int] | None = None


class DisruptionList(_Response):
    disruptions: list[DisruptionInfo]
    count: int
    timestamp: str


class OperationResponse(_Response):
    success: bool
    message: str
    operation_id: str
