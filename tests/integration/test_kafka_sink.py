"""KafkaSink against a real broker: what it writes is read back with a plain aiokafka consumer."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections import defaultdict
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError
from aiokafka.partitioner import DefaultPartitioner

from backends.retail.sinks.base import SendResult, SinkNotConfigured
from backends.retail.sinks.kafka import KafkaSink
from backends.settings import KafkaSettings
from tests import services
from tests.conftest import start_service

KEYS = ["store_1", "store_2", "store_3", "store_4", "store_5", "dc_9"]
# What the Java client picks on 4 partitions: `Utils.toPositive(Utils.murmur2(key)) % 4`,
# computed with kafka-clients 4.3.1.
JAVA_PARTITIONS = {
    "store_1": 0,
    "store_5": 3,
    "dc_9": 3,
    "AD_000123": 2,
    "customer-42": 1,
    "STORE_017": 2,
    "DC_003": 2,
    "TRUCK_0042": 3,
    "AD_984211": 0,
    "ünïcode-key": 1,
}


def envelope(i: int, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "event_type": "inventory_updated",
        "payload": payload or {"store_id": i % 50, "product_id": i, "quantity_delta": -1},
        "trace_id": f"TR_{i:06d}",
        "ingest_timestamp": "2024-01-15T10:40:15.123Z",
        "schema_version": "1.0",
        "source": "retail-datagen",
        "correlation_id": f"SESSION_{i % 7}",
        "partition_key": KEYS[i % len(KEYS)],
    }


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def consume(bootstrap: str, topic: str, expected: int) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        async with asyncio.timeout(60):
            while len(records) < expected:
                batches = await consumer.getmany(timeout_ms=500)
                for batch in batches.values():
                    records.extend(batch)
        # Nothing beyond what was sent.
        extra = await consumer.getmany(timeout_ms=500)
        records.extend(r for batch in extra.values() for r in batch)
    finally:
        await consumer.stop()
    return records


async def test_round_trip_keys_partitions_and_counts(
    kafka_bootstrap: str, kafka_topic: str
) -> None:
    sink = KafkaSink(
        KafkaSettings(bootstrap_servers=kafka_bootstrap, topic=kafka_topic, linger_ms=5)
    )
    await sink.open()
    events = [envelope(i) for i in range(5_000)]
    try:
        # Ten batches in flight at once, as the service keeps them.
        results: list[SendResult] = await asyncio.gather(
            *(sink.send(events[i : i + 500]) for i in range(0, len(events), 500))
        )
    finally:
        await sink.close()

    assert sum(r.sent for r in results) == 5_000
    assert sum(r.failed for r in results) == 0
    assert not any(r.errors or r.connection_failure for r in results)
    assert sum(r.bytes_sent for r in results) == sum(len(orjson.dumps(e)) for e in events)

    records = await consume(kafka_bootstrap, kafka_topic, len(events))
    assert len(records) == 5_000
    partitions_by_key: dict[str, set[int]] = defaultdict(set)
    received = {}
    for record in records:
        value = orjson.loads(record.value)
        assert record.key == value["partition_key"].encode()
        partitions_by_key[value["partition_key"]].add(record.partition)
        received[value["trace_id"]] = value
    assert all(len(p) == 1 for p in partitions_by_key.values()), partitions_by_key
    assert len({p for ps in partitions_by_key.values() for p in ps}) > 1  # keys spread
    partitioner, partitions = DefaultPartitioner(), [0, 1, 2, 3]
    assert partitions_by_key == {
        key: {partitioner(key.encode(), partitions, partitions)} for key in KEYS
    }
    assert received == {e["trace_id"]: e for e in events}


async def test_partitions_are_the_java_clients_and_tiny_batches_lose_nothing(
    kafka_bootstrap: str, kafka_topic: str
) -> None:
    """Keyed records land where the Java client and a plain `producer.send()` put them."""
    keys: list[str | None] = [*JAVA_PARTITIONS, None]
    events = [envelope(i) | {"partition_key": keys[i % len(keys)]} for i in range(1_100)]
    # The smallest batches allowed: full batches are sent and new ones started all the time.
    sink = KafkaSink(
        KafkaSettings(bootstrap_servers=kafka_bootstrap, topic=kafka_topic, max_batch_bytes=1024)
    )
    await sink.open()
    try:
        results = await asyncio.gather(
            *(sink.send(events[i : i + 100]) for i in range(0, len(events), 100))
        )
    finally:
        await sink.close()
    assert sum(r.sent for r in results) == len(events)
    assert not any(r.failed or r.errors for r in results)
    assert sum(r.bytes_sent for r in results) == sum(len(orjson.dumps(e)) for e in events)

    records = await consume(kafka_bootstrap, kafka_topic, len(events))
    assert sorted(orjson.loads(r.value)["trace_id"] for r in records) == sorted(
        e["trace_id"] for e in events
    )
    keyed: dict[str, set[int]] = defaultdict(set)
    unkeyed: set[int] = set()
    for record in records:
        if record.key is None:
            unkeyed.add(record.partition)
        else:
            keyed[record.key.decode()].add(record.partition)
    assert keyed == {key: {partition} for key, partition in JAVA_PARTITIONS.items()}
    assert len(unkeyed) > 1  # unkeyed events move on between send() calls

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for key, partition in JAVA_PARTITIONS.items():
            sent = await producer.send_and_wait(kafka_topic, b"probe", key=key.encode())
            assert sent.partition == partition, key
    finally:
        await producer.stop()


async def test_batch_rejected_by_the_broker_fails_its_events_only(kafka_bootstrap: str) -> None:
    """A topic taking 4 KiB per batch: one partition's batch is too big, the other's fits."""
    topic = f"test-sink-small-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    sink = KafkaSink(KafkaSettings(bootstrap_servers=kafka_bootstrap, topic=topic))
    try:
        await admin.create_topics(
            [NewTopic(topic, 4, 1, topic_configs={"max.message.bytes": "4096"})]
        )
        await sink.open()
        small = [envelope(i) | {"partition_key": "customer-42"} for i in range(3)]  # partition 1
        big = [envelope(i) | {"partition_key": "store_1"} for i in range(3, 43)]  # partition 0
        result = await sink.send(small + big)
    finally:
        await sink.close()
        await admin.delete_topics([topic])
        await admin.close()
    assert (result.sent, result.failed) == (3, 40)
    assert result.bytes_sent == sum(len(orjson.dumps(e)) for e in small)
    assert result.errors == {"message_too_large": 40}
    assert not result.connection_failure


async def test_open_creates_missing_topic_and_test_reports_it(kafka_bootstrap: str) -> None:
    topic = f"test-sink-created-{uuid.uuid4().hex[:8]}"
    settings = KafkaSettings(bootstrap_servers=kafka_bootstrap, topic=topic, topic_partitions=3)
    sink = KafkaSink(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await sink.open()
        [described] = await admin.describe_topics([topic])
        assert described["error_code"] == 0
        assert len(described["partitions"]) == 3
        result = await sink.send([envelope(i) for i in range(10)])
        assert (result.sent, result.failed) == (10, 0)

        probe = await sink.test()
        assert probe.success, probe
        assert probe.message == "Connection test successful"
        assert probe.details == {
            "bootstrap_servers": kafka_bootstrap,
            "topic": topic,
            "partitions": 3,
        }
        assert probe.response_time_ms > 0
        # A second open of the same topic (already there) is fine.
        again = KafkaSink(settings)
        await again.open()
        await again.close()
    finally:
        await sink.close()
        await admin.delete_topics([topic])
        await admin.close()


async def test_oversized_event_fails_alone(kafka_bootstrap: str, kafka_topic: str) -> None:
    sink = KafkaSink(KafkaSettings(bootstrap_servers=kafka_bootstrap, topic=kafka_topic))
    await sink.open()
    try:
        huge = envelope(1, payload={"blob": "x" * 1_100_000})
        result = await sink.send([envelope(0), huge, envelope(2)])
    finally:
        await sink.close()
    assert (result.sent, result.failed) == (2, 1)
    assert result.errors == {"message_too_large": 1}
    assert not result.connection_failure


async def test_unreachable_cluster_is_classified_without_raising_or_hanging() -> None:
    bootstrap = f"127.0.0.1:{closed_port()}"
    sink = KafkaSink(
        KafkaSettings(bootstrap_servers=bootstrap, topic="nowhere", request_timeout_ms=1_000)
    )
    async with asyncio.timeout(20):
        with pytest.raises(KafkaConnectionError):
            await sink.open()
        # Sending anyway (the broker may come back) fails each batch, classified.
        results = await asyncio.gather(
            *(sink.send([envelope(i) for i in range(100)]) for _ in range(3))
        )
        probe = await sink.test()
        await sink.close()

    for result in results:
        assert (result.sent, result.failed, result.bytes_sent) == (0, 100, 0)
        assert result.errors == {"connection_error": 100}
        assert result.connection_failure
    assert not probe.success
    assert probe.message.startswith("Connection test failed: ")
    assert probe.details == {"exception_type": "KafkaConnectionError"}
    assert sink.describe() == {"kind": "kafka", "bootstrap_servers": bootstrap, "topic": "nowhere"}


async def test_not_configured() -> None:
    sink = KafkaSink(KafkaSettings())
    with pytest.raises(SinkNotConfigured, match=r"kafka\.bootstrap_servers"):
        await sink.open()
    probe = await sink.test()
    assert not probe.success
    assert probe.details == {"exception_type": "SinkNotConfigured"}


async def test_broker_lost_after_start_fails_batches_as_timeouts() -> None:
    """A broker of its own (not the session's), stopped while the sink is connected."""
    server = await asyncio.to_thread(start_service, "Kafka", services.start_kafka)
    sink = KafkaSink(
        KafkaSettings(bootstrap_servers=server.bootstrap, topic="lost", request_timeout_ms=2_000)
    )
    try:
        await sink.open()
        before = await sink.send([envelope(i) for i in range(50)])
        await asyncio.to_thread(server.stop)
        async with asyncio.timeout(30):
            after = await sink.send([envelope(i) for i in range(50)])
    finally:
        await asyncio.to_thread(server.stop)
        await sink.close()

    assert (before.sent, before.failed) == (50, 0)
    assert (after.sent, after.failed) == (0, 50)
    assert after.connection_failure
    assert set(after.errors) <= {"connection_timeout", "connection_error"}, after.errors
