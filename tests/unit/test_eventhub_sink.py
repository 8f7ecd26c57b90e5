"""EventHubSink against the SDK's own batches, with a fake client only at the network edge.

No Event Hub can be reached from here, so `FakeProducer` replaces
`azure.eventhub.aio.EventHubProducerClient`: its `create_batch` returns a real
`azure.eventhub.EventDataBatch`, built exactly as the SDK's `create_batch` does
(same constructor, async pyamqp transport, a given `max_size_in_bytes`), so byte
limits and `add()` raising ValueError when full are the SDK's; its `send_batch`
records the batch or raises exceptions made by the SDK's own AMQP-error
translation. One test also runs the real SDK client against a closed loopback
port (the Event Hubs emulator form of the connection string).
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import orjson
import pytest
from azure.eventhub import EventDataBatch
from azure.eventhub import exceptions as eherr
from azure.eventhub._pyamqp import error as amqp
from azure.eventhub._transport._pyamqp_transport import PyamqpTransport
from azure.eventhub.aio._transport._pyamqp_transport_async import PyamqpTransportAsync

from backends.retail.sinks.base import SinkNotConfigured
from backends.retail.sinks.eventhub import EventHubSink, classify
from backends.settings import EventHubSettings

CONN = (
    "Endpoint=sb://retail-analytics.servicebus.windows.net/;"
    "SharedAccessKeyName=send;SharedAccessKey=c2VjcmV0;EntityPath=retail-events"
)


def sdk_error(condition: bytes | amqp.ErrorCondition, description: str) -> Exception:
    """An exception as the SDK raises it for an AMQP link error with this condition."""
    return PyamqpTransport._create_eventhub_exception(
        amqp.AMQPLinkError(condition=condition, description=description)
    )


def server_busy() -> Exception:
    return sdk_error(
        b"com.microsoft:server-busy",
        "The request was terminated because the entity is being throttled. Error code : 50002.",
    )


def refused() -> Exception:
    return PyamqpTransport._create_eventhub_exception(
        amqp.AMQPConnectionError(
            amqp.ErrorCondition.SocketError,
            description="Failed to initiate the connection due to exception: Connection refused",
        )
    )


def unauthorized() -> Exception:
    return PyamqpTransport._create_eventhub_exception(
        amqp.AuthenticationException(
            amqp.ErrorCondition.UnauthorizedAccess, description="Unauthorized access."
        )
    )


class FakeProducer:
    def __init__(self, *, max_size_in_bytes: int = 1_048_576, failures: list[Exception] = ()):
        self.max_size_in_bytes = max_size_in_bytes
        self.failures = list(failures)
        self.sent: list[EventDataBatch] = []
        self.send_calls = 0
        self.closed = False
        self.properties_error: Exception | None = None

    async def create_batch(self, *, partition_key: str | None = None) -> EventDataBatch:
        return EventDataBatch(
            max_size_in_bytes=self.max_size_in_bytes,
            partition_key=partition_key,
            amqp_transport=PyamqpTransportAsync,
        )

    async def send_batch(self, event_data_batch: EventDataBatch) -> None:
        self.send_calls += 1
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(event_data_batch)

    async def get_eventhub_properties(self) -> dict[str, Any]:
        if self.properties_error is not None:
            raise self.properties_error
        return {"eventhub_name": "retail-events", "partition_ids": ["0", "1"]}

    async def close(self) -> None:
        self.closed = True


def envelope(i: int, key: str | None, payload_bytes: int = 50) -> dict[str, Any]:
    return {
        "event_type": "receipt_created",
        "payload": {"store_id": i, "note": "x" * payload_bytes},
        "trace_id": f"TR_{i}",
        "ingest_timestamp": "2024-01-15T10:40:15.123Z",
        "schema_version": "1.0",
        "source": "retail-datagen",
        "correlation_id": None,
        "partition_key": key,
    }


def contents(batch: EventDataBatch) -> list[dict[str, Any]]:
    return [orjson.loads(event.body_as_str()) for event in batch._internal_events]


def make_sink(
    producer: FakeProducer, *, max_batch_size: int = 256, retry_attempts: int = 3
) -> EventHubSink:
    return EventHubSink(
        EventHubSettings(connection_string=CONN),
        max_batch_size=max_batch_size,
        retry_attempts=retry_attempts,
        retry_backoff_seconds=0,
        producer_factory=lambda conn, hub: producer,
    )


async def test_batches_by_partition_key_within_max_batch_size() -> None:
    producer = FakeProducer()
    sink = make_sink(producer, max_batch_size=4)
    await sink.open()
    events = (
        [envelope(i, "store_1") for i in range(10)]
        + [envelope(i, "store_2") for i in range(10, 15)]
        + [envelope(i, None) for i in range(15, 18)]
    )
    result = await sink.send(events)

    assert (result.sent, result.failed, result.errors) == (18, 0, {})
    assert result.bytes_sent == sum(len(orjson.dumps(e)) for e in events)
    shape = [(b._partition_key, len(b)) for b in producer.sent]
    assert shape == [
        ("store_1", 4),
        ("store_1", 4),
        ("store_1", 2),
        ("store_2", 4),
        ("store_2", 1),
        (None, 3),
    ]
    for batch in producer.sent:
        assert all(e["partition_key"] == batch._partition_key for e in contents(batch))
    assert [e for b in producer.sent for e in contents(b)] == events


async def test_a_full_batch_in_bytes_is_sent_and_a_new_one_started() -> None:
    producer = FakeProducer(max_size_in_bytes=2_000)
    sink = make_sink(producer, max_batch_size=1_000)
    await sink.open()
    events = [envelope(i, "store_7", payload_bytes=300) for i in range(20)]
    result = await sink.send(events)

    assert (result.sent, result.failed) == (20, 0)
    assert len(producer.sent) > 1
    assert all(b.size_in_bytes <= 2_000 for b in producer.sent)
    assert all(len(b) > 1 for b in producer.sent[:-1])  # packed, not one event per batch
    assert [e for b in producer.sent for e in contents(b)] == events


async def test_an_event_too_large_for_an_empty_batch_fails_alone() -> None:
    producer = FakeProducer(max_size_in_bytes=2_000)
    sink = make_sink(producer)
    await sink.open()
    events = [envelope(0, "k"), envelope(1, "k", payload_bytes=5_000), envelope(2, "k")]
    result = await sink.send(events)

    assert (result.sent, result.failed) == (2, 1)
    assert result.errors == {"message_too_large": 1}
    assert not result.connection_failure
    assert [e["trace_id"] for b in producer.sent for e in contents(b)] == ["TR_0", "TR_2"]


async def test_transient_failures_are_retried() -> None:
    producer = FakeProducer(failures=[server_busy(), refused()])
    sink = make_sink(producer, retry_attempts=3)
    await sink.open()
    result = await sink.send([envelope(i, "k") for i in range(5)])

    assert (result.sent, result.failed, result.errors) == (5, 0, {})
    assert producer.send_calls == 3


async def test_exhausted_retries_fail_the_rest_of_the_batch_at_once() -> None:
    producer = FakeProducer(failures=[refused() for _ in range(10)])
    sink = make_sink(producer, max_batch_size=3, retry_attempts=2)
    await sink.open()
    events = [envelope(i, "a") for i in range(5)] + [envelope(i, "b") for i in range(4)]
    result = await sink.send(events)

    assert (result.sent, result.failed) == (0, 9)
    assert result.errors == {"connection_error": 9}
    assert result.connection_failure
    assert producer.send_calls == 3  # one batch, 1 + 2 retries; nothing else attempted


async def test_throttling_that_persists_is_counted_as_throttling() -> None:
    producer = FakeProducer(failures=[server_busy() for _ in range(4)])
    sink = make_sink(producer, retry_attempts=3)
    await sink.open()
    result = await sink.send([envelope(i, "k") for i in range(6)])

    assert result.errors == {"throttling": 6}
    assert result.failed == 6
    assert not result.connection_failure
    assert producer.send_calls == 4


async def test_non_transient_failures_are_not_retried_and_spare_other_batches() -> None:
    too_large = sdk_error(amqp.ErrorCondition.LinkMessageSizeExceeded, "message too large")
    producer = FakeProducer(failures=[too_large])
    sink = make_sink(producer, max_batch_size=2)
    await sink.open()
    result = await sink.send([envelope(i, "k") for i in range(6)])

    assert (result.sent, result.failed) == (4, 2)
    assert result.errors == {"message_too_large": 2}
    assert producer.send_calls == 3


async def test_authentication_failure_is_not_retried() -> None:
    producer = FakeProducer(failures=[unauthorized()])
    sink = make_sink(producer, retry_attempts=5)
    await sink.open()
    result = await sink.send([envelope(i, "k") for i in range(3)])

    assert result.errors == {"authentication": 3}
    assert result.connection_failure
    assert producer.send_calls == 1


async def test_unserialisable_event_is_a_serialization_failure() -> None:
    producer = FakeProducer()
    sink = make_sink(producer)
    await sink.open()
    bad = envelope(1, "k") | {"payload": {"when": object()}}
    result = await sink.send([envelope(0, "k"), bad])

    assert (result.sent, result.failed, result.errors) == (1, 1, {"serialization": 1})


@pytest.mark.parametrize(
    ("make_error", "kind", "unreachable"),
    [
        (server_busy, "throttling", False),
        (
            lambda: sdk_error(amqp.ErrorCondition.ResourceLimitExceeded, "quota"),
            "throttling",
            False,
        ),
        (refused, "connection_error", True),
        (unauthorized, "authentication", True),
        (lambda: sdk_error(amqp.ErrorCondition.LinkDetachForced, "idle"), "connection_error", True),
        (
            lambda: sdk_error(amqp.ErrorCondition.LinkMessageSizeExceeded, "big"),
            "message_too_large",
            False,
        ),
        (lambda: eherr.OperationTimeoutError("send timed out"), "connection_timeout", True),
        (lambda: eherr.EventDataError("bad event"), "serialization", False),
        (lambda: eherr.EventDataSendError("rejected"), "unknown", False),
    ],
)
def test_classification(make_error: Any, kind: str, unreachable: bool) -> None:
    assert classify(make_error()) == (kind, unreachable)


async def test_no_connection_string_is_not_configured() -> None:
    sink = EventHubSink(EventHubSettings(), max_batch_size=10, retry_attempts=0)
    with pytest.raises(SinkNotConfigured, match=r"eventhub\.connection_string"):
        await sink.open()
    assert sink.describe() == {"kind": "eventhub", "configured": False, "event_hub": None}
    result = await sink.test()
    assert not result.success
    assert result.details == {"exception_type": "SinkNotConfigured"}


async def test_hub_name_comes_from_entity_path_else_settings() -> None:
    seen: list[str] = []

    def factory(conn: str, hub: str) -> FakeProducer:
        seen.append(hub)
        return FakeProducer()

    no_entity = CONN.rsplit(";EntityPath", 1)[0]
    for conn in (CONN, no_entity):
        sink = EventHubSink(
            EventHubSettings(connection_string=conn, eventhub_name="from-settings"),
            max_batch_size=10,
            retry_attempts=0,
            producer_factory=factory,
        )
        await sink.open()
    assert seen == ["retail-events", "from-settings"]


async def test_connection_test_reports_namespace_and_hub() -> None:
    producer = FakeProducer()
    sink = make_sink(producer)
    result = await sink.test()

    assert result.success
    assert result.message == "Connection test successful"
    assert result.details == {"namespace": "retail-analytics", "event_hub": "retail-events"}
    assert result.response_time_ms >= 0
    assert producer.closed  # a throwaway client when the sink is not open
    assert sink.describe() == {
        "kind": "eventhub",
        "configured": True,
        "namespace": "retail-analytics",
        "event_hub": "retail-events",
    }


async def test_open_fetches_properties_and_raises_on_failure() -> None:
    producer = FakeProducer()
    producer.properties_error = unauthorized()
    sink = make_sink(producer)
    with pytest.raises(eherr.AuthenticationError):
        await sink.open()


async def test_connection_test_failure_names_the_exception() -> None:
    producer = FakeProducer()
    sink = make_sink(producer)
    await sink.open()
    producer.properties_error = unauthorized()
    result = await sink.test()

    assert not result.success
    assert result.message.startswith("Connection test failed: Unauthorized access.")
    assert result.details == {"exception_type": "AuthenticationError"}
    assert not producer.closed  # the sink's own client stays open


async def test_real_sdk_client_against_a_closed_port() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conn = (
        f"Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=k;SharedAccessKey=dg==;"
        "EntityPath=retail-events;UseDevelopmentEmulator=true"
    )
    sink = EventHubSink(
        EventHubSettings(connection_string=conn),
        max_batch_size=10,
        retry_attempts=1,
        retry_backoff_seconds=0,
    )
    try:
        async with asyncio.timeout(30):
            with pytest.raises(eherr.ConnectError):
                await sink.open()
            result = await sink.send([envelope(i, "k") for i in range(4)])
            probe = await sink.test()
    finally:
        await sink.close()

    assert (result.sent, result.failed) == (0, 4)
    assert result.errors == {"connection_error": 4}
    assert result.connection_failure
    assert not probe.success
    assert probe.details == {"exception_type": "ConnectError"}
