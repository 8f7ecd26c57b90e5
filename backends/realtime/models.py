"""Payloads of the realtime streaming API and its Socket.IO events, field for field as the spec.

Shared by the server (`api.py`), the typed client (`client.py`) and the console.
Every REST answer is the spec's envelope: `{"success": true, "data": ...}` or
`{"success": false, "error": {"code", "message", "details"}}`. Response models
allow extra fields so our client keeps working against a real service that adds some.
Timestamps are epoch seconds (floats), as in the spec's examples.

Additions to the spec, all optional for its users: `data.stream_id` on `data_update`
and `rate_limit_warning` events (which stream it concerns), `filters`, `real_time`
and `rate_limit_per_minute` in a stream's configuration, a failed stream's `error`,
session listing, and counters beside `active_connections`.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

Provider = Literal["google", "microsoft"]
StreamState = Literal["active", "completed", "stopped", "error"]

STREAM_TYPES: tuple[str, ...] = (
    "gmail_messages",
    "gmail_threads",
    "calendar_events",
    "outlook_messages",
    "outlook_events",
    "contacts",
    "files",
)
PROVIDER_STREAM_TYPES: dict[str, tuple[str, ...]] = {
    "google": ("gmail_messages", "gmail_threads", "calendar_events", "contacts", "files"),
    "microsoft": ("outlook_messages", "outlook_events", "contacts", "files"),
}

# Error codes of the spec, plus RATE_LIMIT_EXCEEDED (its rate-limit section) and
# INVALID_REQUEST / NOT_FOUND for malformed requests outside the stream API.
STREAM_NOT_FOUND = "STREAM_NOT_FOUND"
STREAM_ALREADY_ACTIVE = "STREAM_ALREADY_ACTIVE"
STREAM_RATE_LIMITED = "STREAM_RATE_LIMITED"
STREAM_CONFIG_ERROR = "STREAM_CONFIG_ERROR"
SESSION_NOT_FOUND = "SESSION_NOT_FOUND"
TOKEN_EXPIRED = "TOKEN_EXPIRED"
RATE_LIMIT_EXCEEDED = "RATE_LIMIT_EXCEEDED"
INVALID_REQUEST = "INVALID_REQUEST"
NOT_FOUND = "NOT_FOUND"

T = TypeVar("T")


class _Response(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorInfo(_Response):
    code: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorResponse(_Response):
    success: Literal[False] = False
    error: ErrorInfo


class ApiResponse(BaseModel, Generic[T]):
    success: Literal[True] = True
    data: T


# -- sessions and providers ------------------------------------------------


class SessionCreate(_Request):
    """`POST /api/sessions`: stands in for an OAuth authorisation with a provider."""

    provider: Provider = "google"
    agent_id: str | None = Field(None, min_length=1, max_length=128)
    expires_in: int | None = Field(None, ge=10, le=7 * 86400, description="Token lifetime (s).")
    session_lifetime: int | None = Field(
        None, ge=10, le=365 * 86400, description="How long the token can be refreshed (s)."
    )


class SessionInfo(_Response):
    session_id: str
    provider: Provider
    agent_id: str | None = None
    created_at: float
    expires_at: float
    expires_in: int
    session_expires_at: float | None = None
    status: Literal["active", "expired"]
    stream_types: list[str]


class SessionList(_Response):
    sessions: list[SessionInfo]
    total_count: int


class ProviderInfo(_Response):
    provider: Provider
    display_name: str
    stream_types: list[str]


class StreamTypeInfo(_Response):
    stream_type: str
    data_type: str
    providers: list[Provider]
    filters: list[str]


class ProvidersResponse(_Response):
    providers: list[ProviderInfo]
    stream_types: list[StreamTypeInfo]


# -- streams ---------------------------------------------------------------


class StreamStartRequest(_Request):
    session_id: str = Field(min_length=1, max_length=128)
    stream_type: str
    batch_size: int = Field(100, ge=1, le=1000)
    max_results: int = Field(1000, ge=1, le=10_000_000)
    filters: dict[str, Any] = Field(default_factory=dict)
    real_time: bool = False
    rate_limit_per_minute: int | None = Field(None, ge=1, le=100_000_000)


class StreamConfiguration(_Response):
    batch_size: int
    max_results: int
    real_time: bool
    rate_limit_per_minute: int
    filters: dict[str, Any] = Field(default_factory=dict)


class StreamStarted(_Response):
    stream_id: str
    session_id: str
    stream_type: str
    provider: Provider
    configuration: StreamConfiguration


class StreamStatusConfiguration(_Response):
    stream_type: str
    session_id: str
    provider: Provider
    batch_size: int
    max_results: int
    real_time: bool
    rate_limit_per_minute: int
    filters: dict[str, Any] = Field(default_factory=dict)


class StreamStatus(_Response):
    stream_id: str
    status: StreamState
    items_streamed: int
    started_at: float
    last_activity: float
    configuration: StreamStatusConfiguration
    error: ErrorInfo | None = None


class StreamStopped(_Response):
    stream_id: str
    status: StreamState


class StreamSummary(_Response):
    stream_type: str
    session_id: str
    provider: Provider
    started_at: float
    items_streamed: int
    status: StreamState
    last_activity: float


class WebsocketStatistics(_Response):
    active_connections: int
    total_connections: int = 0
    refused_connections: int = 0
    events_emitted: int = 0


class StreamList(_Response):
    streams: dict[str, StreamSummary]
    total_count: int
    websocket_statistics: WebsocketStatistics


# -- Socket.IO events --------------------------------------------------------


class SubscribeRequest(_Request):
    """`subscribe_data` / `unsubscribe_data`; `session_id` defaults to the connection's."""

    session_id: str | None = None
    data_types: list[str] = Field(min_length=1, max_length=len(STREAM_TYPES))


class SubscriptionConfirmed(_Response):
    session_id: str
    data_types: list[str]


class DataUpdate(_Response):
    data_type: str
    payload: dict[str, Any]
    stream_id: str | None = None


class TokenRefresh(_Response):
    new_expires_at: float
    expires_in: int


class RateLimitWarning(_Response):
    remaining_quota: int
    reset_time: float
    warning_message: str
    stream_id: str | None = None


class _Event(_Response):
    session_id: str
    provider: str
    timestamp: float


class DataUpdateEvent(_Event):
    event_type: Literal["data_update"] = "data_update"
    data: DataUpdate


class TokenRefreshEvent(_Event):
    event_type: Literal["token_refresh"] = "token_refresh"
    data: TokenRefresh


class RateLimitWarningEvent(_Event):
    event_type: Literal["rate_limit_warning"] = "rate_limit_warning"
    data: RateLimitWarning


StreamEvent = Annotated[
    DataUpdateEvent | TokenRefreshEvent | RateLimitWarningEvent, Field(discriminator="event_type")
]
STREAM_EVENT: TypeAdapter[DataUpdateEvent | TokenRefreshEvent | RateLimitWarningEvent] = (
    TypeAdapter(StreamEvent)
)
