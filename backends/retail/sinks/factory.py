"""Build the sink a `retail.sink` kind names, from the backend settings.

The Kafka, Redis and Event Hubs modules are imported only when chosen: each
client library costs 0.2-0.4 s to import, which the memory default should not pay.
"""

from __future__ import annotations

from backends.retail.sinks.base import Sink
from backends.retail.sinks.memory import MemorySink
from backends.settings import Settings


def build_sink(kind: str, settings: Settings) -> Sink:
    if kind == "memory":
        return MemorySink()
    if kind == "kafka":
        from backends.retail.sinks.kafka import KafkaSink

        return KafkaSink(settings.kafka)
    if kind == "redis":
        from backends.retail.sinks.redis import RedisSink

        return RedisSink(settings.redis)
    if kind == "eventhub":
        from backends.retail.sinks.eventhub import EventHubSink

        return EventHubSink(
            settings.eventhub,
            max_batch_size=settings.retail.max_batch_size,
            retry_attempts=settings.retail.retry_attempts,
        )
    raise ValueError(f"unknown sink kind {kind!r}: expected memory, kafka, redis or eventhub")
