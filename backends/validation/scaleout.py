"""Where the members of a scaled-out validation meet: partial reports in, one report out.

Members of consumer group G each validate the partitions the coordinator gave them
and publish their partial `ValidationReport` to a merge store; a merge step (any
member with `expect=N`, or `streamops validate-merge`) collects N partial reports of
G and merges them (`report.merge`). Two stores, both existing infrastructure:

- `redis://host:port/db` — RPUSH to `streamops:validation:<G>`, a list that expires
  an hour after the last member published (a consumer group is per run anyway: a
  second run with the same group would resume from its committed offsets).
- `kafka://bootstrap/topic` — one record per partial report, key = G, on a topic
  (created with one partition if missing); the merge reads it from the beginning
  and keeps the newest report of each member id.

Each partial report is wrapped with the member id, so a member that publishes twice
is counted once.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Protocol
from urllib.parse import unquote, urlsplit

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from backends.common.clock import Clock, SystemClock
from backends.validation.report import ValidationReport, merge

KEY_PREFIX = "streamops:validation:"
KEY_TTL_SECONDS = 3600
POLL_SECONDS = 0.2


class MergeError(RuntimeError):
    """The merge store is unreachable, or not every member reported in time."""


class MergeStore(Protocol):
    async def publish(self, group: str, member: str, report: ValidationReport) -> None: ...

    async def collect(
        self, group: str, expect: int, wait_seconds: float
    ) -> list[ValidationReport]: ...


def _wrap(member: str, report: ValidationReport) -> bytes:
    return orjson.dumps({"member": member, "report": report.model_dump(mode="json")})


def _unwrap(raw: bytes) -> tuple[str, ValidationReport]:
    data = orjson.loads(raw)
    return data["member"], ValidationReport.model_validate(data["report"])


class RedisMergeStore:
    def __init__(self, url: str, *, clock: Clock | None = None) -> None:
        self._url = url
        self._clock = clock or SystemClock()

    async def publish(self, group: str, member: str, report: ValidationReport) -> None:
        client = aioredis.from_url(self._url)
        try:
            key = KEY_PREFIX + group
            async with client.pipeline(transaction=True) as pipe:
                pipe.rpush(key, _wrap(member, report))
                pipe.expire(key, KEY_TTL_SECONDS)
                await pipe.execute()
        except aioredis.RedisError as exc:
            raise MergeError(f"cannot publish to {self._url}: {exc}") from exc
        finally:
            await client.aclose()

    async def collect(self, group: str, expect: int, wait_seconds: float) -> list[ValidationReport]:
        client = aioredis.from_url(self._url)
        deadline = self._clock.monotonic() + wait_seconds
        try:
            while True:
                found = dict(_unwrap(raw) for raw in await client.lrange(KEY_PREFIX + group, 0, -1))
                if len(found) >= expect:
                    return list(found.values())
                if self._clock.monotonic() >= deadline:
                    raise MergeError(
                        f"{len(found)} of {expect} members of group {group!r} reported "
                        f"within {wait_seconds:g} s"
                    )
                await asyncio.sleep(POLL_SECONDS)
        except aioredis.RedisError as exc:
            raise MergeError(f"cannot read from {self._url}: {exc}") from exc
        finally:
            await client.aclose()


class KafkaMergeStore:
    def __init__(self, bootstrap: str, topic: str, *, clock: Clock | None = None) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._clock = clock or SystemClock()

    async def _ensure_topic(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap)
        await admin.start()
        try:
            if self._topic not in await admin.list_topics():
                with contextlib.suppress(TopicAlreadyExistsError):  # another member was first
                    await admin.create_topics([NewTopic(self._topic, 1, 1)])
        finally:
            await admin.close()

    async def publish(self, group: str, member: str, report: ValidationReport) -> None:
        try:
            await self._ensure_topic()
            producer = AIOKafkaProducer(
                bootstrap_servers=self._bootstrap, max_request_size=16 * 1024 * 1024
            )
            await producer.start()
            try:
                await producer.send_and_wait(self._topic, _wrap(member, report), key=group.encode())
            finally:
                await producer.stop()
        except KafkaError as exc:
            raise MergeError(f"cannot publish to kafka topic {self._topic}: {exc}") from exc

    async def collect(self, group: str, expect: int, wait_seconds: float) -> list[ValidationReport]:
        deadline = self._clock.monotonic() + wait_seconds
        found: dict[str, ValidationReport] = {}
        try:
            await self._ensure_topic()
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap,
                enable_auto_commit=False,
                auto_offset_reset="earliest",  # else a reset to "latest" may race the seek
                fetch_max_bytes=64 * 1024 * 1024,
                max_partition_fetch_bytes=16 * 1024 * 1024,
            )
            await consumer.start()
            try:
                tp = TopicPartition(self._topic, 0)
                consumer.assign([tp])
                await consumer.seek_to_beginning(tp)
                key = group.encode()
                while len(found) < expect:
                    if self._clock.monotonic() >= deadline:
                        raise MergeError(
                            f"{len(found)} of {expect} members of group {group!r} reported "
                            f"within {wait_seconds:g} s"
                        )
                    batches = await consumer.getmany(tp, timeout_ms=int(POLL_SECONDS * 1000))
                    for record in batches.get(tp, []):
                        if record.key == key and record.value is not None:
                            member, report = _unwrap(record.value)
                            found[member] = report
            finally:
                await consumer.stop()
        except KafkaError as exc:
            raise MergeError(f"cannot read kafka topic {self._topic}: {exc}") from exc
        return list(found.values())


def open_merge_store(url: str, *, clock: Clock | None = None) -> MergeStore:
    """`redis://host:port/db` or `kafka://b1:9092[,b2:9092]/topic`."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisMergeStore(url, clock=clock)
    if url.startswith("kafka://"):
        parts = urlsplit(url)
        topic = unquote(parts.path.strip("/"))
        if not parts.netloc or not topic:
            raise MergeError(f"a Kafka merge store is kafka://bootstrap/topic, got {url!r}")
        return KafkaMergeStore(parts.netloc, topic, clock=clock)
    raise MergeError(f"unknown merge store {url!r}: use redis://host:port/db or kafka://host/topic")


def new_member_id() -> str:
    return uuid.uuid4().hex[:12]


async def publish_and_merge(
    store: MergeStore,
    group: str,
    report: ValidationReport,
    *,
    expect: int | None,
    wait_seconds: float,
    member: str | None = None,
) -> ValidationReport | None:
    """Publish this member's report; with `expect`, wait for all and return the merge."""
    await store.publish(group, member or new_member_id(), report)
    if expect is None:
        return None
    return merge(await store.collect(group, expect, wait_seconds))
