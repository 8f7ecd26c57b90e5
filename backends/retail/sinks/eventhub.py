"""The `eventhub` sink: envelopes to Azure Event Hubs through the official async SDK.

Each batch is grouped by `partition_key` (Event Hubs maps one key to one
partition; events without a key go round-robin) and packed into the SDK's own
`EventDataBatch`es, so the byte limit is the one the hub reports for the link:
a batch is sent when it holds `max_batch_size` events or when `add()` says it is
full (ValueError); an event too large for an empty batch fails alone as
`message_too_large`. The event body is the envelope as JSON (orjson);
`bytes_sent` counts the delivered bodies.

Retries are ours, not the SDK's (`retry_total=0`), so `retry_attempts` means
what the spec says: each `create_batch`/`send_batch` is retried that many times
with exponential backoff when the failure is transient (timeouts, connection
errors, throttling). When the hub is unreachable after that, the rest of the
batch fails at once instead of timing out once per partition key.

`open()` fetches the hub's properties, so bad credentials or an unreachable
namespace are reported at start rather than as the first failed batches.

The hub name is the connection string's `EntityPath` when it has one (a key
scoped to an entity can only send there), else `eventhub.eventhub_name`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import orjson
from azure.eventhub import EventData, EventDataBatch, parse_connection_string
from azure.eventhub import exceptions as eherr
from azure.eventhub.aio import EventHubProducerClient

from backends.retail.sinks.base import (
    Event,
    SendResult,
    Sink,
    SinkNotConfigured,
    SinkTestResult,
    timed_probe,
)
from backends.settings import EventHubSettings

_log = logging.getLogger(__name__)

_T = TypeVar("_T")
_RETRYABLE = frozenset({"connection_timeout", "connection_error", "throttling"})
_MAX_BACKOFF_SECONDS = 30.0


class Producer(Protocol):
    """The part of `EventHubProducerClient` the sink uses (tests fake it at this edge)."""

    async def create_batch(self, *, partition_key: str | None = None) -> EventDataBatch: ...

    async def send_batch(self, event_data_batch: EventDataBatch) -> None: ...

    async def get_eventhub_properties(self) -> dict[str, Any]: ...

    async def close(self) -> None: ...


ProducerFactory = Callable[[str, str], Producer]


def _sdk_producer(connection_string: str, eventhub_name: str) -> Producer:
    return EventHubProducerClient.from_connection_string(
        connection_string, eventhub_name=eventhub_name, retry_total=0
    )


def classify(exc: BaseException) -> tuple[str, bool]:
    """Error kind for the statistics, and whether it means the hub is unreachable."""
    condition = (getattr(exc, "error", None) or "").lower()
    if isinstance(exc, eherr.AuthenticationError):
        return "authentication", True
    if "server-busy" in condition or "resource-limit-exceeded" in condition:
        return "throttling", False  # ServerBusy, or a quota (QuotaExceeded)
    if "message-size-exceeded" in condition:
        return "message_too_large", False
    if isinstance(exc, eherr.OperationTimeoutError | TimeoutError):
        return "connection_timeout", True
    if isinstance(exc, eherr.ConnectError | eherr.ConnectionLostError | OSError):
        return "connection_error", True
    if isinstance(exc, eherr.ClientClosedError):
        return "connection_error", False
    if isinstance(exc, eherr.EventDataError | TypeError):  # orjson.JSONEncodeError too
        return "serialization", False
    return "unknown", False


class _AbortBatch(Exception):
    """The hub failed in a way that dooms the rest of the batch."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


class EventHubSink(Sink):
    kind = "eventhub"

    def __init__(
        self,
        settings: EventHubSettings,
        *,
        max_batch_size: int,
        retry_attempts: int,
        retry_backoff_seconds: float = 0.5,
        producer_factory: ProducerFactory | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self._settings = settings
        self._max_batch_size = max_batch_size
        self._retry_attempts = retry_attempts
        self._backoff = retry_backoff_seconds
        self._factory = producer_factory or _sdk_producer
        self._producer: Producer | None = None

    async def open(self) -> None:
        await self._ensure_producer().get_eventhub_properties()

    async def send(self, events: list[Event]) -> SendResult:
        producer = self._ensure_producer()
        result = SendResult()
        groups: dict[str | None, list[bytes]] = {}
        dumps = orjson.dumps
        for event in events:
            try:
                body = dumps(event)
            except TypeError as exc:
                _fail(result, 1, exc)
                continue
            groups.setdefault(event.get("partition_key"), []).append(body)
        try:
            for key, bodies in groups.items():
                await self._send_group(producer, key, bodies, result)
        except _AbortBatch as abort:
            _fail(result, len(events) - result.sent - result.failed, abort.cause)
        return result

    async def _send_group(
        self, producer: Producer, key: str | None, bodies: list[bytes], result: SendResult
    ) -> None:
        """Fill SDK batches for one partition key, sending each when full by count or bytes."""
        batch, size = await self._new_batch(producer, key), 0
        for body in bodies:
            if len(batch) >= self._max_batch_size or not _try_add(batch, body):
                if len(batch):
                    await self._flush(producer, batch, size, result)
                    batch, size = await self._new_batch(producer, key), 0
                if not _try_add(batch, body):
                    result.fail(1, "message_too_large")
                    continue
            size += len(body)
        if len(batch):
            await self._flush(producer, batch, size, result)

    async def _new_batch(self, producer: Producer, key: str | None) -> EventDataBatch:
        try:
            return await self._retrying(lambda: producer.create_batch(partition_key=key))
        except Exception as exc:
            raise _AbortBatch(exc) from exc

    async def _flush(
        self, producer: Producer, batch: EventDataBatch, size: int, result: SendResult
    ) -> None:
        try:
            await self._retrying(lambda: producer.send_batch(batch))
        except Exception as exc:
            kind, unreachable = classify(exc)
            if unreachable or kind in _RETRYABLE:
                raise _AbortBatch(exc) from exc
            _fail(result, len(batch), exc)
            return
        result.sent += len(batch)
        result.bytes_sent += size

    async def _retrying(self, operation: Callable[[], Awaitable[_T]]) -> _T:
        """Run `operation`, retrying transient failures `retry_attempts` times with backoff."""
        attempt = 0
        while True:
            try:
                return await operation()
            except Exception as exc:
                if classify(exc)[0] not in _RETRYABLE or attempt >= self._retry_attempts:
                    raise
            await asyncio.sleep(min(self._backoff * 2**attempt, _MAX_BACKOFF_SECONDS))
            attempt += 1

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.close()

    async def test(self) -> SinkTestResult:
        async def probe() -> dict[str, Any]:
            producer = self._producer or self._new_producer()
            try:
                await producer.get_eventhub_properties()
            finally:
                if producer is not self._producer:
                    await producer.close()
            return self._names()

        return await timed_probe(probe)

    def describe(self) -> dict[str, Any]:
        try:
            names = self._names()
        except SinkNotConfigured:
            return {"kind": self.kind, "configured": False, "event_hub": None}
        return {"kind": self.kind, "configured": True, **names}

    def _names(self) -> dict[str, str]:
        """`namespace` and `event_hub` from the connection string (and settings)."""
        conn = self._settings.connection_string
        if not conn:
            raise SinkNotConfigured(
                "Azure connection string not configured: set eventhub.connection_string "
                "(or STREAMOPS_EVENTHUB__CONNECTION_STRING)"
            )
        try:
            props = parse_connection_string(conn)
        except ValueError as exc:
            raise SinkNotConfigured(f"eventhub.connection_string is invalid: {exc}") from exc
        hub = props.eventhub_name or self._settings.eventhub_name
        if not hub:
            raise SinkNotConfigured(
                "No Event Hub name: add EntityPath to eventhub.connection_string "
                "or set eventhub.eventhub_name"
            )
        return {"namespace": props.fully_qualified_namespace.split(".", 1)[0], "event_hub": hub}

    def _ensure_producer(self) -> Producer:
        """The producer, created on first use; the SDK connects lazily on the first call."""
        if self._producer is None:
            self._producer = self._new_producer()
        return self._producer

    def _new_producer(self) -> Producer:
        hub = self._names()["event_hub"]
        assert self._settings.connection_string is not None  # checked by _names()
        return self._factory(self._settings.connection_string, hub)


def _try_add(batch: EventDataBatch, body: bytes) -> bool:
    """Add one event; False when the batch has no room left for it."""
    try:
        batch.add(EventData(body))
    except ValueError:
        return False
    return True


def _fail(result: SendResult, count: int, exc: BaseException) -> bool:
    """Account `count` failed events; True when the destination is unreachable."""
    return result.fail_with(count, exc, classify, _log)
