"""End-to-end retail streaming rate: generator -> RetailService -> sink, per sink.

For each sink (memory, Kafka, Redis) a RetailService streams flat out
(emit_interval_ms=0) and the rate is events delivered / wall time from start to a
drained stop. For Kafka the same run also times a bare aiokafka producer sending
the same kind of serialised events (fire-and-forget `send()`, same acks, linger_ms
and batch size, all delivery futures awaited at the end) and prints the ratio,
which is the cost of the generator, the service and the sink over the client.

Real servers: STREAMOPS_TEST_KAFKA (bootstrap) and STREAMOPS_TEST_REDIS (URL) if
set, else started here with tests/services.py (`make services` provisions Kafka).
Every run stops after --seconds or --max-events, whichever comes first.

    .venv/bin/python bench/retail.py [--seconds 5] [--max-events 2000000]
        [--only memory,kafka,redis] [--burst 5000] [--batch 1000] [--in-flight 8]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import os
import random
import sys
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from backends.common.clock import SystemClock
from backends.retail.disruptions import DisruptionManager
from backends.retail.generator import RetailGenerator
from backends.retail.models import StartRequest
from backends.retail.service import RetailService
from backends.retail.world import World
from backends.settings import KafkaSettings, RedisSettings, RetailSettings, Settings

ROOT = Path(__file__).resolve().parents[1]
SEED = 42
PARTITIONS = 4
POLL_SECONDS = 0.02


@dataclass
class Run:
    label: str
    sent: int
    failed: int
    bytes_sent: int
    seconds: float
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        mb_s = self.bytes_sent / self.seconds / 1e6 if self.seconds else 0.0
        return (
            f"{self.label:34s} {self.sent:>11,d} {self.seconds:>8.2f} "
            f"{self.rate:>12,.0f} {mb_s:>8.1f} {self.failed:>8,d}"
            + (f"  {self.errors}" if self.errors else "")
        )


def _services() -> ModuleType:
    """tests/services.py: the tests package is not installed, so import it from the checkout."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("tests.services")


@contextlib.contextmanager
def _server(kind: str) -> Iterator[str]:
    """The address of a real Kafka broker or Redis server: from the env, else started here."""
    env = {"kafka": "STREAMOPS_TEST_KAFKA", "redis": "STREAMOPS_TEST_REDIS"}[kind]
    if existing := os.environ.get(env):
        yield existing
        return
    services = _services()
    if kind == "kafka":
        server = services.start_kafka()
        address = server.bootstrap
    else:
        server = services.start_redis()
        address = server.url
    try:
        yield address
    finally:
        server.stop()


async def _stream(label: str, settings: Settings, args: argparse.Namespace) -> Run:
    service = RetailService(settings, clock=SystemClock(), seed=SEED)
    started = time.perf_counter()
    await service.start(StartRequest(emit_interval_ms=0, burst=args.burst))
    deadline = started + args.seconds
    # The service signals nothing when n events are generated: poll its counters.
    while (
        time.perf_counter() < deadline and service.statistics().events_generated < args.max_events
    ):
        await asyncio.sleep(POLL_SECONDS)
    await service.stop()
    seconds = time.perf_counter() - started
    stats = service.statistics()
    return Run(
        label,
        stats.events_sent_successfully,
        stats.events_failed,
        stats.bytes_sent,
        seconds,
        stats.error_counts,
    )


def _records(count: int) -> list[tuple[bytes | None, bytes]]:
    """`count` generated events as (key, value) bytes, as the Kafka sink writes them."""
    rng = random.Random(SEED)
    world = World.build(rng)
    clock = SystemClock()
    generator = RetailGenerator(
        world=world,
        clock=clock,
        rng=rng,
        disruptions=DisruptionManager(world=world, clock=clock, rng=rng),
    )
    records: list[tuple[bytes | None, bytes]] = []
    while len(records) < count:
        for event in generator.generate(min(10_000, count - len(records))):
            key = event.get("partition_key")
            records.append((key.encode() if key else None, orjson.dumps(event)))
    return records


async def _bare_producer(
    kafka: KafkaSettings, records: list[tuple[bytes | None, bytes]], in_flight: int
) -> Run:
    """At most `in_flight` undelivered records, as the service bounds its batches in flight."""
    assert kafka.bootstrap_servers is not None
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap_servers,
        acks="all" if kafka.acks == "all" else int(kafka.acks),
        linger_ms=kafka.linger_ms,
        max_batch_size=kafka.max_batch_bytes,
        compression_type=kafka.compression_type,
    )
    await producer.start()
    try:
        await producer.partitions_for(kafka.topic)  # metadata outside the timing
        started = time.perf_counter()
        window: deque[asyncio.Future[object]] = deque()
        for key, value in records:
            window.append(await producer.send(kafka.topic, value, key=key))
            if len(window) > in_flight:
                await window.popleft()
        for future in window:
            await future
        seconds = time.perf_counter() - started
    finally:
        await producer.stop()
    size = sum(len(value) for _, value in records)
    return Run("bare aiokafka producer", len(records), 0, size, seconds)


async def _create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()


async def _delete_topics(bootstrap: str, topics: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(topics)
    finally:
        await admin.close()


def _settings(args: argparse.Namespace, sink: str, **sections: object) -> Settings:
    retail = RetailSettings(
        sink=sink,
        seed=SEED,
        emit_interval_ms=0,
        burst=args.burst,
        max_batch_size=args.batch,
        max_in_flight_batches=args.in_flight,
    )
    return Settings(retail=retail, **sections)


async def _kafka(args: argparse.Namespace, bootstrap: str) -> list[Run]:
    token = uuid.uuid4().hex[:8]
    kafka = KafkaSettings(
        bootstrap_servers=bootstrap, topic=f"bench-retail-{token}", topic_partitions=PARTITIONS
    )
    bare = kafka.model_copy(update={"topic": f"bench-bare-{token}"})
    try:
        run = await _stream("generator -> kafka sink", _settings(args, "kafka", kafka=kafka), args)
        await _create_topic(bootstrap, bare.topic)
        baseline = await _bare_producer(
            bare, _records(max(run.sent, 10_000)), args.batch * args.in_flight
        )
    finally:
        await _delete_topics(bootstrap, [kafka.topic, bare.topic])
    return [run, baseline]


async def _redis(args: argparse.Namespace, url: str) -> Run:
    redis = RedisSettings(url=url, retail_stream=f"bench-retail-{uuid.uuid4().hex[:8]}")
    try:
        return await _stream("generator -> redis sink", _settings(args, "redis", redis=redis), args)
    finally:
        client = aioredis.from_url(url)
        await client.delete(redis.retail_stream)
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per run")
    parser.add_argument("--max-events", type=int, default=2_000_000, help="per run")
    parser.add_argument("--only", default="memory,kafka,redis")
    parser.add_argument("--burst", type=int, default=5_000)
    parser.add_argument("--batch", type=int, default=1_000, help="retail.max_batch_size")
    parser.add_argument("--in-flight", type=int, default=8, help="retail.max_in_flight_batches")
    args = parser.parse_args()
    only = {name.strip() for name in args.only.split(",")}
    print(
        f"burst {args.burst}, batch {args.batch}, in flight {args.in_flight}, "
        f"at most {args.seconds:g} s / {args.max_events:,d} events per run"
    )
    print(
        f"{'run':34s} {'events':>11s} {'seconds':>8s} {'events/s':>12s} {'MB/s':>8s} {'failed':>8s}"
    )
    if "memory" in only:
        print(
            asyncio.run(_stream("generator -> memory sink", _settings(args, "memory"), args)).line()
        )
    if "kafka" in only:
        with _server("kafka") as bootstrap:
            run, baseline = asyncio.run(_kafka(args, bootstrap))
        print(run.line())
        print(baseline.line())
        print(f"{'kafka sink / bare producer':34s} {run.rate / baseline.rate:>33.2f}")
    if "redis" in only:
        with _server("redis") as url:
            print(asyncio.run(_redis(args, url)).line())


if __name__ == "__main__":
    main()
