"""Settings of every backend, as plain pydantic models.

`console/config.py` fills them from TOML and `STREAMOPS_*` variables; the
backends receive them as objects, so tests build them directly.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SinkKind = Literal["memory", "kafka", "redis", "eventhub"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KafkaSettings(_Section):
    """A Kafka cluster; none configured means no Kafka (its parts say how to set it)."""

    bootstrap_servers: str | None = None
    topic: str = "retail-events"
    topic_partitions: int = Field(4, ge=1, le=1000)
    client_id: str = "streamops"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    acks: Literal["all", "1", "0"] = "1"
    linger_ms: int = Field(5, ge=0, le=60_000)
    max_batch_bytes: int = Field(1_048_576, ge=1024)
    compression_type: Literal["gzip", "snappy", "lz4", "zstd"] | None = None
    request_timeout_ms: int = Field(10_000, ge=100)


class RedisSettings(_Section):
    """A Redis server; none configured means the embedded in-process fakeredis."""

    url: str | None = None
    retail_stream: str = "retail-events"
    retail_maxlen: int = Field(100_000, ge=1)


class EventHubSettings(_Section):
    connection_string: str | None = None
    eventhub_name: str | None = "retail-events"


class RetailSettings(_Section):
    url: str | None = Field(None, description="Remote retail API base URL; unset = embedded.")
    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535)
    seed: int = 42
    sink: SinkKind = "memory"
    emit_interval_ms: int = Field(500, ge=0)
    burst: int = Field(100, ge=1, le=100_000)
    max_batch_size: int = Field(256, ge=1, le=100_000)
    batch_timeout_ms: int = Field(1000, ge=0)
    retry_attempts: int = Field(3, ge=0, le=100)
    circuit_breaker_enabled: bool = True
    circuit_breaker_failure_threshold: int = Field(5, ge=1)
    circuit_breaker_reset_seconds: float = Field(30.0, gt=0)
    monitoring_interval: int = Field(5, ge=1)
    max_in_flight_batches: int = Field(8, ge=1, le=1024)
    recent_events_buffer: int = Field(100, ge=1, le=10_000)
    memory_sink_retention: int = Field(20_000, ge=0, le=5_000_000)


class ExportSettings(_Section):
    """Export streams (Redis Streams behind a polling + SSE API)."""

    url: str | None = Field(None, description="Remote export API base URL; unset = embedded.")
    api_key_id: str | None = None
    api_key_secret: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535)
    seed: int = 42
    admin_key: str | None = None
    feed_rate: float = Field(50.0, ge=0, le=100_000)
    feed_test_share: float = Field(0.05, ge=0, le=1)
    max_length: int = Field(100_000, ge=1)
    max_age_seconds: int | None = Field(None, ge=1)
    heartbeat_seconds: float = Field(15.0, gt=0)
    send_timeout_seconds: float = Field(5.0, gt=0)
    replay_batch_size: int = Field(500, ge=1, le=1000)
    rate_limit_per_minute: int = Field(600, ge=1)


class RealtimeSettings(_Section):
    """Realtime streams (Socket.IO + REST); scale-out across processes through [redis] url."""

    url: str | None = Field(None, description="Remote realtime base URL; unset = embedded.")
    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535)
    seed: int = 42
    demo_session_id: str | None = Field("your-session-id", pattern=r"^[A-Za-z0-9_.-]{1,128}$")
    token_lifetime_seconds: int = Field(3600, ge=10, le=7 * 86400)
    token_refresh_margin_seconds: int = Field(300, ge=1)
    session_lifetime_seconds: int = Field(86400, ge=10)
    connections_per_session: int = Field(5, ge=1)
    connection_window_seconds: int = Field(300, ge=1)
    stream_events_per_minute: int = Field(100, ge=1)
    stream_requests_per_minute: int = Field(50, ge=1)
    subscriptions_per_minute: int = Field(10, ge=1)
    api_requests_per_minute: int = Field(600, ge=1)
    rate_limit_warning_ratio: float = Field(0.1, ge=0, le=1)
    page_delay_ms: int = Field(100, ge=0, le=60_000)
    mailbox_size: int = Field(2000, ge=0, le=10_000_000)
    arrival_interval_seconds: float = Field(5.0, gt=0)
    inactive_stream_ttl_seconds: int = Field(3600, ge=1)
    maintenance_interval_seconds: float = Field(1.0, gt=0, le=60)
    redis_prefix: str = "streamops:realtime"


class JobsSettings(_Section):
    """WebSocket job server (websocket-jobs.md): JWT auth, limits, report and pipeline folders."""

    url: str | None = Field(None, description="Remote jobs WebSocket URL; unset = embedded.")
    token: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535)
    path: str = Field("/production", pattern=r"^/[A-Za-z0-9_./-]*$")
    public_url: str | None = None
    algorithms: list[Literal["HS256", "HS384", "HS512", "RS256", "ES256"]] = Field(
        default_factory=lambda: ["HS256"], min_length=1
    )
    secret: str | None = None
    public_key: str | None = None
    issuer: str | None = "streamops"
    leeway_seconds: float = Field(30.0, ge=0, le=3600)
    default_permissions: list[str] = Field(default_factory=lambda: ["read", "write"])
    demo_sub: str = "demo-user"
    demo_tenant: str = "demo-tenant"
    demo_token_lifetime_seconds: int = Field(86400, ge=60)
    messages_per_second: int = Field(100, ge=1)
    max_concurrent_requests: int = Field(10, ge=1)
    max_payload_bytes: int = Field(1_048_576, ge=1024)
    connections_per_minute: int = Field(100, ge=1)
    job_timeout_seconds: float = Field(600.0, gt=0)
    result_ttl_seconds: float = Field(3600.0, gt=0)
    report_ttl_seconds: float = Field(604_800.0, gt=0)
    progress_interval_ms: int = Field(100, ge=0, le=60_000)
    outbox_limit: int = Field(1000, ge=10)
    data_dir: str | None = None
    output_dir: str | None = None
    event_source: Literal["auto", "memory", "kafka", "redis"] = "auto"
    capture_limit: int = Field(50_000, ge=0)
    seed: int = 42


class UISettings(_Section):
    theme: str = "textual-dark"
    refresh_ms: int = Field(500, ge=50, le=10_000)
    read_only: bool = False


class Settings(_Section):
    retail: RetailSettings = Field(default_factory=RetailSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    eventhub: EventHubSettings = Field(default_factory=EventHubSettings)
    export: ExportSettings = Field(default_factory=ExportSettings)
    realtime: RealtimeSettings = Field(default_factory=RealtimeSettings)
    jobs: JobsSettings = Field(default_factory=JobsSettings)
    ui: UISettings = Field(default_factory=UISettings)
