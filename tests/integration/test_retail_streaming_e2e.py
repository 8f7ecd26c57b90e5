"""The whole path: the retail API streams into a real Kafka broker and a real Redis,
and what arrived there equals what `/stream/statistics` says was sent."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator

import httpx
import orjson
import pytest
import redis
from aiokafka import AIOKafkaConsumer

from backends.runtime import BackendHost
from backends.settings import KafkaSettings, RedisSettings, Settings
from tests.support import assert_accounted, wait_for


def stream_some(url: str, minimum: int) -> dict:
    with httpx.Client(base_url=url, timeout=30) as api:
        assert api.post("/stream/test").json()["success"] is True
        started = api.post("/stream/start", json={"emit_interval_ms": 10, "burst": 250})
        assert started.status_code == 200, started.text
        wait_for(
            lambda: api.get("/stream/statistics").json()["events_sent_successfully"] >= minimum,
            timeout=60,
        )
        assert api.post("/stream/stop").status_code == 200
        stats = api.get("/stream/statistics").json()
        assert api.get("/stream/health").json()["status"] == "healthy"
    assert_accounted(stats)
    assert stats["events_in_flight"] == 0 and stats["events_failed"] == 0
    return stats


@pytest.fixture
def kafka_host(kafka_bootstrap: str, kafka_topic: str) -> Iterator[BackendHost]:
    settings = Settings(kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap, topic=kafka_topic))
    settings.retail.sink = "kafka"
    with BackendHost(settings) as host:
        yield host


async def read_topic(
    bootstrap: str, topic: str, expected: int
) -> list[tuple[int, bytes | None, bytes]]:
    """Everything in the topic: read until `expected` arrived, then make sure no more come."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    records: list[tuple[int, bytes | None, bytes]] = []
    try:
        async with asyncio.timeout(60):
            while len(records) < expected:
                for tp, messages in (await consumer.getmany(timeout_ms=500)).items():
                    records += [(tp.partition, m.key, m.value) for m in messages]
        for tp, messages in (await consumer.getmany(timeout_ms=1000)).items():
            records += [(tp.partition, m.key, m.value) for m in messages]
        return records
    finally:
        await consumer.stop()


def test_kafka_topic_holds_exactly_what_statistics_report(
    kafka_host: BackendHost, kafka_bootstrap: str, kafka_topic: str
) -> None:
    assert kafka_host.endpoints.retail
    stats = stream_some(kafka_host.endpoints.retail, 5000)
    records = asyncio.run(
        read_topic(kafka_bootstrap, kafka_topic, stats["events_sent_successfully"])
    )
    assert len(records) == stats["events_sent_successfully"]
    envelopes = [orjson.loads(value) for _, _, value in records]
    assert Counter(e["event_type"] for e in envelopes) == Counter(stats["event_type_counts"])
    assert sum(len(value) for _, _, value in records) == stats["bytes_sent"]
    partitions_of_key: dict[bytes, set[int]] = {}
    for (partition, key, _), envelope in zip(records, envelopes, strict=True):
        assert key == envelope["partition_key"].encode()
        partitions_of_key.setdefault(key, set()).add(partition)
    assert all(len(parts) == 1 for parts in partitions_of_key.values())
    assert len({p for parts in partitions_of_key.values() for p in parts}) == 4


def test_redis_stream_holds_exactly_what_statistics_report(redis_url: str) -> None:
    settings = Settings(redis=RedisSettings(url=redis_url, retail_stream="e2e-retail"))
    settings.retail.sink = "redis"
    client = redis.Redis.from_url(redis_url)
    client.delete("e2e-retail")
    try:
        with BackendHost(settings) as host:
            assert host.endpoints.retail
            stats = stream_some(host.endpoints.retail, 3000)
        entries = client.xrange("e2e-retail")
        assert len(entries) == stats["events_sent_successfully"]
        types = Counter(orjson.loads(fields[b"data"])["event_type"] for _, fields in entries)
        assert types == Counter(stats["event_type_counts"])
    finally:
        client.delete("e2e-retail")
        client.close()
