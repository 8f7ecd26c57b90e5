"""Where reports and `query` / `stream` pipelines read retail events from.

- `EventCapture`: the in-process capture of the embedded retail service (a tap on
  `RetailService`: the memory sink keeps nothing, so the capture is what
  "reading the memory sink" means), bounded to `capture_limit` newest events;
- `RedisEventSource`: the retail Redis Stream (`redis.retail_stream`), read with
  XRANGE in chunks;
- `KafkaEventSource`: the retail topic from the beginning up to the end offsets
  seen when the read starts.

`jobs.event_source = "auto"` picks Kafka or Redis when the retail sink is that one
and it is configured, else the capture. Every source reads in batches and reports
its running count, so a report's first phase shows real numbers.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

import orjson

from backends.settings import Settings

Event = dict[str, Any]
OnBatch = Callable[[int], Awaitable[None]]
_CHUNK = 5000


class EventSource(Protocol):
    name: str

    async def read(self, on_batch: OnBatch | None = None, limit: int | None = None) -> list[Event]:
        """All retail events the source holds (oldest first), at most `limit` newest."""
        ...


class EventCapture:
    """A bounded copy of the events the embedded retail service generates."""

    name = "memory"

    def __init__(self, limit: int) -> None:
        self._events: deque[Event] = deque(maxlen=limit)

    def __call__(self, events: Iterable[Event]) -> None:
        self._events.extend(events)

    def __len__(self) -> int:
        return len(self._events)

    async def read(self, on_batch: OnBatch | None = None, limit: int | None = None) -> list[Event]:
        events = list(self._events)
        if limit is not None:
            events = events[-limit:]
        if on_batch is not None:
            await on_batch(len(events))
        return events


class RedisEventSource:
    name = "redis"

    def __init__(self, url: str, stream: str) -> None:
        self._url = url
        self._stream = stream

    async def read(self, on_batch: OnBatch | None = None, limit: int | None = None) -> list[Event]:
        import redis.asyncio as aioredis

        client = aioredis.from_url(self._url)
        events: list[Event] = []
        try:
            start = "-"
            while True:
                entries = await client.xrange(self._stream, min=start, count=_CHUNK)
                for entry_id, fields in entries:
                    data = fields.get(b"data")
                    if data:
                        events.append(orjson.loads(data))
                    start = "(" + entry_id.decode()
                if on_batch is not None:
                    await on_batch(len(events))
                if len(entries) < _CHUNK:
                    break
        finally:
            await client.aclose()
        return events[-limit:] if limit is not None else events


class KafkaEventSource:
    name = "kafka"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def read(self, on_batch: OnBatch | None = None, limit: int | None = None) -> list[Event]:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        kafka = self._settings.kafka
        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap_servers,
            client_id=f"{kafka.client_id}-jobs",
            enable_auto_commit=False,
            security_protocol=kafka.security_protocol,
            sasl_mechanism=kafka.sasl_mechanism or "PLAIN",
            sasl_plain_username=kafka.sasl_username,
            sasl_plain_password=kafka.sasl_password,
        )
        await consumer.start()
        events: list[Event] = []
        try:
            # A consumer with no subscription keeps no topic metadata: fetch it outright.
            cluster = await consumer._client.fetch_all_metadata()
            partitions = cluster.partitions_for_topic(kafka.topic) or set()
            assigned = [TopicPartition(kafka.topic, p) for p in sorted(partitions)]
            if not assigned:
                return []
            consumer.assign(assigned)
            await consumer.seek_to_beginning(*assigned)
            ends = await consumer.end_offsets(assigned)
            remaining = {tp for tp in assigned if ends[tp] > await consumer.position(tp)}
            while remaining:
                batches = await consumer.getmany(*remaining, timeout_ms=1000, max_records=_CHUNK)
                for tp, records in batches.items():
                    for record in records:
                        if record.offset < ends[tp] and record.value is not None:
                            events.append(orjson.loads(record.value))
                    if await consumer.position(tp) >= ends[tp]:
                        remaining.discard(tp)
                if on_batch is not None:
                    await on_batch(len(events))
        finally:
            await consumer.stop()
        events.sort(key=lambda e: e.get("ingest_timestamp", ""))
        return events[-limit:] if limit is not None else events


def select_source(settings: Settings, capture: EventCapture) -> EventSource:
    choice = settings.jobs.event_source
    sink = settings.retail.sink
    if choice == "kafka" or (
        choice == "auto" and sink == "kafka" and settings.kafka.bootstrap_servers
    ):
        if not settings.kafka.bootstrap_servers:
            raise ValueError("jobs.event_source = 'kafka' needs kafka.bootstrap_servers")
        return KafkaEventSource(settings)
    if choice == "redis" or (choice == "auto" and sink == "redis" and settings.redis.url):
        if not settings.redis.url:
            raise ValueError("jobs.event_source = 'redis' needs redis.url")
        return RedisEventSource(settings.redis.url, settings.redis.retail_stream)
    return capture
