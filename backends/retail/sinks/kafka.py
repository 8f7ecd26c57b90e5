"""The `kafka` sink: envelopes as JSON values on a multi-partition topic, keyed by partition_key.

Records: key = `partition_key` (utf-8), value = the envelope serialised with
orjson. `bytes_sent` counts the delivered values.

Partitions are the ones the Java client and aiokafka's `DefaultPartitioner`
choose: a keyed record goes to murmur2(key) & 0x7fffffff mod the number of
partitions (memoised per key, since keys repeat: stores, customers' ad ids); an
unkeyed one goes to a partition that stays the same for one `send()` call and
moves on at the next (sticky, like the Java client's), so unkeyed events make
few, full batches.

Throughput comes from building the record batches here instead of one
`producer.send()` per event (its per-message coroutine, checks and future held
us near 25k events/s). `send()` serialises its events and appends them to one
filling `producer.create_batch()` builder per partition, shared by every call in
flight; a full builder queues and a new one starts. One submitter task per
partition hands the partition's batches to `send_batch()`, closed so they leave
without waiting out `linger_ms`, one at a time: aiokafka keeps at most one
undrained batch per partition, and while the submitter waits for it the calls
in flight keep filling the next batch, so batches grow with the load up to
`max_batch_bytes` (one submitter also keeps aiokafka's drain wait, whose timeout
budget concurrent waiters exhaust together, from failing batches under load).
Each call remembers how many of its events, and how many value bytes, went into
each batch, and accounts them when that batch's delivery settles: a batch the
broker rejects fails exactly its events, with the classified kind. A record
bigger than `max_request_size` fails alone as `message_too_large` before it is
batched, as `producer.send()` would refuse it. A cancelled `send()` leaves its
events in their batches; they are still delivered, just not accounted by it.
`close()` lets the submitters finish before stopping the producer, which flushes.

`open()` connects and raises when it cannot (`SinkNotConfigured` without
`kafka.bootstrap_servers`, aiokafka's error when the cluster is unreachable).
After that `send()` never raises for the cluster: if the producer is not
connected it tries again, and an unreachable cluster fails the batch as
`connection_error` / `connection_timeout` with `connection_failure=True`, so the
service's statistics and circuit breaker see it. Batches in flight share one
connection attempt, and once the cluster is known unreachable the rest of a
`send()` fails at once instead of waiting out one timeout per record batch.

`open()` creates the topic with `topic_partitions` if it is missing, with a
replication factor of min(3, brokers) (aiokafka cannot ask for the broker
default), and returns once the producer knows the topic's partitions, so a
topic just created is usable (and described) when it returns.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict, deque
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka import errors as kerr
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.helpers import create_ssl_context
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from backends.retail.sinks.base import (
    Event,
    SendResult,
    Sink,
    SinkNotConfigured,
    SinkTestResult,
    timed_probe,
)
from backends.settings import KafkaSettings

_log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 1_048_576  # aiokafka's default max_request_size, set explicitly
_SIZE_CHECK_FROM = MAX_REQUEST_BYTES - 4096
_PLACED_KEYS = 65_536  # memoised key partitions; cleared when full
_PARTITIONER = DefaultPartitioner()
_record_size = DefaultRecordBatchBuilder.estimate_size_in_bytes

_TIMEOUTS = (kerr.KafkaTimeoutError, kerr.RequestTimedOutError, asyncio.TimeoutError)
_UNREACHABLE = (
    kerr.KafkaConnectionError,
    kerr.NodeNotReadyError,
    kerr.NoBrokersAvailable,
    kerr.BrokerNotAvailableError,
    kerr.LeaderNotAvailableError,
    kerr.NotLeaderForPartitionError,
    kerr.KafkaUnavailableError,
    kerr.ProducerClosed,
    OSError,
)
_AUTH = (
    kerr.AuthenticationFailedError,
    kerr.AuthenticationMethodNotSupported,
    kerr.UnsupportedSaslMechanismError,
    kerr.IllegalSaslStateError,
    kerr.TopicAuthorizationFailedError,
    kerr.ClusterAuthorizationFailedError,
)
_TOO_LARGE = (
    kerr.MessageSizeTooLargeError,
    kerr.RecordTooLargeError,
    kerr.RecordListTooLargeError,
)


def classify(exc: BaseException) -> tuple[str, bool]:
    """Error kind for the statistics, and whether it means the cluster is unreachable."""
    if isinstance(exc, _TIMEOUTS):
        return "connection_timeout", True
    if isinstance(exc, _AUTH):
        return "authentication", True
    if isinstance(exc, _UNREACHABLE):
        return "connection_error", True
    if isinstance(exc, _TOO_LARGE):
        return "message_too_large", False
    if isinstance(exc, kerr.QuotaViolationError):
        return "throttling", False
    if isinstance(exc, TypeError):  # orjson.JSONEncodeError is a TypeError
        return "serialization", False
    return "unknown", False


class _Batch:
    """A record batch filling for one partition, shared by the `send()` calls with events in it.

    `submitted` resolves to the delivery future that `send_batch()` returned, or to
    the error that kept the batch from being submitted.
    """

    __slots__ = ("builder", "partition", "submitted")

    def __init__(self, builder: BatchBuilder, partition: int) -> None:
        self.builder = builder
        self.partition = partition
        self.submitted: asyncio.Future[asyncio.Future[Any]] = (
            asyncio.get_running_loop().create_future()
        )


class _Share:
    """One `send()` call's events in one batch: what it accounts when the batch settles."""

    __slots__ = ("batch", "count", "value_bytes")

    def __init__(self, batch: _Batch) -> None:
        self.batch = batch
        self.count = 0
        self.value_bytes = 0


class KafkaSink(Sink):
    kind = "kafka"

    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._starting: asyncio.Task[AIOKafkaProducer] | None = None
        self._partitions: list[int] = []
        self._placed: dict[str, tuple[bytes, int]] = {}
        self._sends = 0  # moves the sticky partition of unkeyed events
        self._filling: dict[int, _Batch] = {}
        self._full: defaultdict[int, deque[_Batch]] = defaultdict(deque)
        self._submitters: dict[int, asyncio.Task[None]] = {}

    async def open(self) -> None:
        await self._ready_producer()

    async def send(self, events: list[Event]) -> SendResult:
        result = SendResult()
        try:
            producer = await self._ready_producer()
            partitions = await producer.partitions_for(self._settings.topic)
        except SinkNotConfigured:
            raise
        except Exception as exc:
            _fail(result, len(events), exc)
            return result
        shares = self._append(producer, partitions, events, result)
        for partition in {share.batch.partition for share in shares}:
            if partition not in self._submitters:
                self._submitters[partition] = asyncio.create_task(self._submit(producer, partition))
        for share in shares:
            try:
                delivery = await share.batch.submitted
                await delivery
            except Exception as exc:
                _fail(result, share.count, exc)
            else:
                result.sent += share.count
                result.bytes_sent += share.value_bytes
        return result

    def _append(
        self,
        producer: AIOKafkaProducer,
        partitions: set[int],
        events: list[Event],
        result: SendResult,
    ) -> list[_Share]:
        """Append the events to their partitions' filling batches; unbatchable ones fail here.

        Synchronous, so no other call appends in between and each share counts
        exactly this call's records.
        """
        ordered = sorted(partitions)
        if ordered != self._partitions:
            self._partitions = ordered
            self._placed.clear()
        sticky = ordered[self._sends % len(ordered)]
        self._sends += 1
        placed = self._placed
        dumps = orjson.dumps
        mine: dict[int, _Share] = {}
        shares: list[_Share] = []
        for event in events:
            try:
                value = dumps(event)
            except TypeError as exc:
                _fail(result, 1, exc)
                continue
            key = event.get("partition_key")
            if key:
                place = placed.get(key)
                if place is None:
                    place = self._place(key, ordered)
                key_bytes, partition = place
            else:
                key_bytes, partition = None, sticky
            # Keys are short ids: only a value near the limit can make the record too large.
            if len(value) > _SIZE_CHECK_FROM and (
                _record_size(key_bytes, value, []) > MAX_REQUEST_BYTES
            ):
                result.fail(1, "message_too_large")
                continue
            share = mine.get(partition)
            if share is None:
                share = mine[partition] = _Share(self._filling_batch(producer, partition))
                shares.append(share)
            if share.batch.builder.append(timestamp=None, key=key_bytes, value=value) is None:
                # Full (append() closed it): it waits for its turn, the next one fills.
                self._full[partition].append(self._filling.pop(partition))
                share = mine[partition] = _Share(self._filling_batch(producer, partition))
                shares.append(share)
                # An empty batch takes any record, so this one cannot be refused.
                share.batch.builder.append(timestamp=None, key=key_bytes, value=value)
            share.count += 1
            share.value_bytes += len(value)
        return shares

    def _filling_batch(self, producer: AIOKafkaProducer, partition: int) -> _Batch:
        batch = self._filling.get(partition)
        if batch is None:
            batch = self._filling[partition] = _Batch(producer.create_batch(), partition)
        return batch

    def _place(self, key: str, partitions: list[int]) -> tuple[bytes, int]:
        """Key bytes and partition of a key, as aiokafka's and the Java client's partitioner."""
        if len(self._placed) >= _PLACED_KEYS:
            self._placed.clear()
        key_bytes = key.encode()
        place = self._placed[key] = (key_bytes, _PARTITIONER(key_bytes, partitions, partitions))
        return place

    def _next_batch(self, partition: int) -> _Batch | None:
        """The partition's oldest full batch, else its filling one (closed), else None."""
        full = self._full.get(partition)
        if full:
            return full.popleft()
        batch = self._filling.pop(partition, None)
        if batch is not None:
            batch.builder.close()  # closed batches leave at once, without linger_ms
        return batch

    async def _submit(self, producer: AIOKafkaProducer, partition: int) -> None:
        """Submit a partition's batches one at a time, until none is left.

        `send_batch()` waits while the partition's previous batch is still queued
        in the producer; meanwhile `send()` calls keep filling the next batch, so
        batches grow with the load. One submitter per partition, because
        aiokafka's wait for a queued batch shares one timeout between the
        retries of every concurrent waiter.
        """
        topic = self._settings.topic
        try:
            while (batch := self._next_batch(partition)) is not None:
                try:
                    delivery = await producer.send_batch(batch.builder, topic, partition=partition)
                except Exception as exc:
                    batch.submitted.set_exception(exc)
                    if classify(exc)[1]:  # unreachable: the waiting batches fail at once
                        while (waiting := self._next_batch(partition)) is not None:
                            waiting.submitted.set_exception(exc)
                else:
                    batch.submitted.set_result(delivery)
        finally:
            # In the same step as the last check, so a new batch always finds a submitter.
            del self._submitters[partition]

    async def close(self) -> None:
        # Batches still being submitted go out first; producer.stop() then flushes them.
        await asyncio.gather(*self._submitters.values(), return_exceptions=True)
        starting, self._starting = self._starting, None
        if starting is not None and not starting.done():
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def test(self) -> SinkTestResult:
        async def probe() -> dict[str, Any]:
            admin = AIOKafkaAdminClient(**self._client_kwargs())
            try:
                await admin.start()
                # All topics: asking for one by name would let the broker auto-create it.
                topics = await admin.describe_topics()
            finally:
                await admin.close()
            partitions = next(
                (len(t["partitions"]) for t in topics if t["topic"] == self._settings.topic), 0
            )
            return {
                "bootstrap_servers": self._settings.bootstrap_servers,
                "topic": self._settings.topic,
                "partitions": partitions,
            }

        return await timed_probe(probe)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "bootstrap_servers": self._settings.bootstrap_servers,
            "topic": self._settings.topic,
        }

    def _client_kwargs(self) -> dict[str, Any]:
        """Connection settings shared by the producer and the admin client."""
        s = self._settings
        if not s.bootstrap_servers:
            raise SinkNotConfigured(
                "Kafka is not configured: set kafka.bootstrap_servers "
                "(or STREAMOPS_KAFKA__BOOTSTRAP_SERVERS)"
            )
        kwargs: dict[str, Any] = {
            "bootstrap_servers": s.bootstrap_servers,
            "client_id": s.client_id,
            "request_timeout_ms": s.request_timeout_ms,
            "security_protocol": s.security_protocol,
        }
        if "SSL" in s.security_protocol:
            kwargs["ssl_context"] = create_ssl_context()
        if s.security_protocol.startswith("SASL"):
            kwargs["sasl_mechanism"] = s.sasl_mechanism or "PLAIN"
            kwargs["sasl_plain_username"] = s.sasl_username
            kwargs["sasl_plain_password"] = s.sasl_password
        return kwargs

    async def _ready_producer(self) -> AIOKafkaProducer:
        """The started producer; concurrent callers share one connection attempt."""
        if self._producer is not None:
            return self._producer
        if self._starting is None or self._starting.done():
            self._starting = asyncio.create_task(self._start_producer())
        return await asyncio.shield(self._starting)

    async def _start_producer(self) -> AIOKafkaProducer:
        s = self._settings
        kwargs = self._client_kwargs()
        await self._ensure_topic(kwargs)
        producer = AIOKafkaProducer(
            **kwargs,
            acks="all" if s.acks == "all" else int(s.acks),
            linger_ms=s.linger_ms,
            max_batch_size=s.max_batch_bytes,
            max_request_size=MAX_REQUEST_BYTES,
            compression_type=s.compression_type,
        )
        try:
            await producer.start()
            # The topic may be new: open() returns once its partitions are known.
            await producer.partitions_for(s.topic)
        except BaseException:
            await producer.stop()
            raise
        self._producer = producer
        return producer

    async def _ensure_topic(self, kwargs: dict[str, Any]) -> None:
        s = self._settings
        admin = AIOKafkaAdminClient(**kwargs)
        try:
            await admin.start()
            brokers = (await admin.describe_cluster())["brokers"]
            response = await admin.create_topics(
                [NewTopic(s.topic, s.topic_partitions, min(3, len(brokers)))]
            )
        finally:
            await admin.close()
        for topic_error in response.topic_errors:
            code = topic_error[1]
            if code not in (0, kerr.TopicAlreadyExistsError.errno):
                raise kerr.for_code(code)(f"cannot create topic {s.topic!r}: {topic_error}")


def _fail(result: SendResult, count: int, exc: BaseException) -> bool:
    """Account `count` failed events; True when the destination is unreachable."""
    return result.fail_with(count, exc, classify, _log)
