"""`KafkaDataSource`: bounded, exact consumption of a Kafka topic into polars frames.

The API is kafka-validation.md's (names, signatures, return shapes); `batches()` is
the engine under all of it (and the `ValidationSource` interface of sources.py).

How a run is bounded, exactly:
- at start the end offset of every partition is snapshotted; each partition stops
  at its own end (or `end_offset`, exclusive), is paused there, and the run ends
  when every partition is done; a partition with nothing to read is done at once;
- `max_messages` counts every message consumed (decoded or skipped), across
  partitions; the run never hands out one more;
- `consume_timeout` seconds without a new message end the run (stopped_by "timeout").
Start positions: `start_offset`, else the group's committed offset (when `group_id`
is set), else `auto_offset_reset`. With a `group_id` the processed offset + 1 of
each partition is committed once per batch, after the caller took the batch.

Scale-out (`use_group_assignment=True`): the consumer subscribes as a member of
`group_id` and the group coordinator assigns partitions. On a rebalance the
revoked partitions' processed offsets are committed and their buffered, not yet
handed out records are dropped, so the next owner resumes exactly there: the
members' counts add up to the topic's. `stats.assigned_partitions` lists every
partition this member was given.

Speed: `getmany` with large fetches, the batch-granular fetch path of
`_fastfetch.py` (no per-record `ConsumerRecord`), columns built from lists, and
JSON decoded per batch by polars' native JSON reader (deserializers.py) in threads,
up to DECODE_DEPTH batches while the next records are fetched (polars releases the
GIL). Counts, processed offsets and commits follow the order batches are handed out.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, Self
from urllib.parse import parse_qsl, unquote, urlsplit

import polars as pl
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka import errors as kafka_errors
from aiokafka.helpers import create_ssl_context

from backends.common.clock import Clock, SystemClock
from backends.validation import _fastfetch
from backends.validation.assemble import assemble
from backends.validation.base import Batch, ConsumptionStats, ProgressCallback
from backends.validation.config import KafkaDataSourceConfig
from backends.validation.deserializers import build_deserializer, decode_keys
from backends.validation.errors import (
    KafkaConnectionError,
    KafkaDataSourceError,
    SourceError,
)

log = logging.getLogger(__name__)
Span = tuple[int, int, int, int]  # partition, first offset, last offset, messages

DECODE_DEPTH = 2  # batches decoding in threads while the next records are fetched
POLL_SECONDS = 0.5  # longest single wait in getmany: bounds how late a timeout is seen
MAX_CHUNKS = 1_000_000  # getmany's max_records counts record batches on the fast path


def _connection_message(config: KafkaDataSourceConfig, exc: BaseException | None) -> str:
    detail = f": {exc}" if exc is not None and str(exc) else ""
    return (
        f"cannot connect to Kafka at {config.bootstrap_servers} "
        f"within {config.connect_timeout:g} s{detail}"
    )


class _Run:
    """Mutable state of one `batches()` run, shared with the rebalance listener."""

    def __init__(self, ends: dict[int, int]) -> None:
        self.ends = ends  # partition -> end offset snapshotted at start
        self.remaining: dict[int, int] = {}  # partition -> stop offset (exclusive)
        self.buffer: list[tuple[int, list[Any]]] = []
        self.buffered = 0
        self.planned = 0  # messages between start and stop positions, summed
        self.assigned = asyncio.Event()
        self.rebalancing = False

    def drop(self, partitions: set[int]) -> None:
        kept = [(p, chunk) for p, chunk in self.buffer if p not in partitions]
        self.buffer = kept
        self.buffered = sum(len(chunk) for _, chunk in kept)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, source: KafkaDataSource, run: _Run) -> None:
        self._source = source
        self._run = run

    def rebind(self, run: _Run) -> None:
        self._run = run

    async def on_partitions_revoked(self, revoked: Any) -> None:
        run = self._run
        run.rebalancing = True
        partitions = {tp.partition for tp in revoked if tp.topic == self._source.config.topic}
        for partition in partitions:
            run.remaining.pop(partition, None)
        run.drop(partitions)
        await self._source._commit(partitions, tolerate=True)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        run = self._run
        tps = [tp for tp in assigned if tp.topic == self._source.config.topic]
        await self._source._position(tps, run)
        stats = self._source.stats
        stats.assigned_partitions = sorted(
            set(stats.assigned_partitions) | {tp.partition for tp in tps}
        )
        run.rebalancing = False
        run.assigned.set()


class KafkaDataSource:
    """A bounded Kafka topic as polars data; use as `async with KafkaDataSource(config):`."""

    fast_fetch = True  # per-batch records (_fastfetch.py); False reads ConsumerRecords

    def __init__(self, config: KafkaDataSourceConfig, *, clock: Clock | None = None) -> None:
        self.config = config
        self._clock = clock or SystemClock()
        self._deserializer = build_deserializer(config)
        self._consumer: AIOKafkaConsumer | None = None
        self._fast = False
        self._listener: _Rebalance | None = None
        self._processed: dict[int, int] = {}  # partition -> next offset (processed + 1)
        self._uncommitted: set[int] = set()
        self._frame: pl.DataFrame | None = None
        self._topic_partitions: list[int] = []
        self.stats = ConsumptionStats(source=self.describe())

    # -- construction ----------------------------------------------------------------

    @classmethod
    def from_connection_string(cls, connection_string: str, **options: Any) -> KafkaDataSource:
        """`kafka://[user:password@]b1:9092,b2:9092/topic[?field=value&...]`; options win."""
        return cls(parse_connection_string(connection_string, **options))

    @classmethod
    def from_confluent(
        cls,
        bootstrap_servers: str,
        topic: str,
        api_key: str,
        api_secret: str,
        **options: Any,
    ) -> KafkaDataSource:
        """Confluent Cloud: SASL_SSL with PLAIN, the API key and secret as credentials."""
        fields: dict[str, Any] = {
            "bootstrap_servers": bootstrap_servers,
            "topic": topic,
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "PLAIN",
            "sasl_username": api_key,
            "sasl_password": api_secret,
        }
        return cls(KafkaDataSourceConfig(**(fields | options)))

    def describe(self) -> str:
        return f"kafka://{self.config.bootstrap_servers}/{self.config.topic}"

    # -- connection ------------------------------------------------------------------

    def client_kwargs(self) -> dict[str, Any]:
        """aiokafka consumer settings: security passed through, large fetches, no auto-commit."""
        c = self.config
        kwargs: dict[str, Any] = {
            "bootstrap_servers": c.bootstrap_servers,
            "client_id": c.client_id,
            "group_id": c.group_id,
            "enable_auto_commit": False,
            "auto_offset_reset": c.auto_offset_reset,
            "isolation_level": "read_uncommitted",
            "fetch_max_bytes": c.fetch_max_bytes,
            "max_partition_fetch_bytes": c.max_partition_fetch_bytes,
            "fetch_max_wait_ms": 100,
            "max_poll_records": MAX_CHUNKS,
            # a member joining a scale-out run is noticed within a second, not three
            "heartbeat_interval_ms": 1000,
            "request_timeout_ms": max(int(c.connect_timeout * 1000), 5000),
            "security_protocol": c.security_protocol,
        }
        if c.sasl_mechanism is not None:
            kwargs |= {
                "sasl_mechanism": c.sasl_mechanism,
                "sasl_plain_username": c.sasl_username,
                "sasl_plain_password": c.sasl_password,
            }
        if c.security_protocol in ("SSL", "SASL_SSL"):
            kwargs["ssl_context"] = self.ssl_context()
        return kwargs

    def ssl_context(self) -> ssl.SSLContext:
        c = self.config
        return create_ssl_context(
            cafile=c.ssl_cafile,
            certfile=c.ssl_certfile,
            keyfile=c.ssl_keyfile,
            password=c.ssl_password,
        )

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def connect(self) -> None:
        if self._consumer is not None:
            return
        config = self.config
        consumer = AIOKafkaConsumer(**self.client_kwargs())
        try:
            async with asyncio.timeout(config.connect_timeout):
                await consumer.start()
                cluster = await consumer._client.fetch_all_metadata()
        except (TimeoutError, OSError, kafka_errors.KafkaError) as exc:
            await _stop_quietly(consumer)
            if isinstance(exc, kafka_errors.TopicAuthorizationFailedError):
                raise KafkaDataSourceError(f"not authorized: {exc}") from exc
            raise KafkaConnectionError(
                _connection_message(config, exc), bootstrap_servers=config.bootstrap_servers
            ) from exc
        except BaseException:
            await _stop_quietly(consumer)
            raise
        self._topic_partitions = sorted(cluster.partitions_for_topic(config.topic) or ())
        if config.topic not in cluster.topics() or not self._topic_partitions:
            await _stop_quietly(consumer)
            raise KafkaDataSourceError(
                f"topic {config.topic!r} not found on {config.bootstrap_servers}"
            )
        self._fast = self.fast_fetch and _fastfetch.install(consumer)
        self._consumer = consumer

    async def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await _stop_quietly(consumer)

    def _require(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise SourceError("the source is not open: use `async with source:`")
        return self._consumer

    # -- topic information -------------------------------------------------------------

    def _all_partitions(self) -> list[int]:
        """The topic's partitions, from the metadata fetched at connect."""
        self._require()
        return list(self._topic_partitions)

    def _partitions(self) -> list[int]:
        available = self._all_partitions()
        selected = self.config.selected_partitions()
        if selected is None:
            return available
        unknown = sorted(set(selected) - set(available))
        if unknown:
            raise KafkaDataSourceError(
                f"topic {self.config.topic!r} has no partition {unknown} (has {available})"
            )
        return selected

    async def _get_topic_info(self) -> dict[str, Any]:
        partitions = self._all_partitions()
        return {
            "topic": self.config.topic,
            "partitions": partitions,
            "partition_count": len(partitions),
        }

    get_topic_info = _get_topic_info

    async def get_topic_offsets_async(self) -> dict[str, Any]:
        """`{'topic': ..., 'offsets': {partition: (beginning, end)}}` (end exclusive)."""
        tps = self._tps(self._partitions())
        begin, end = await self._offsets(tps)
        return {
            "topic": self.config.topic,
            "offsets": {tp.partition: (begin[tp], end[tp]) for tp in tps},
        }

    def _tps(self, partitions: list[int]) -> list[TopicPartition]:
        return [TopicPartition(self.config.topic, p) for p in partitions]

    async def _offsets(
        self, tps: list[TopicPartition]
    ) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
        consumer = self._require()
        try:
            return await consumer.beginning_offsets(tps), await consumer.end_offsets(tps)
        except kafka_errors.KafkaError as exc:
            raise KafkaDataSourceError(f"cannot read offsets: {exc}") from exc

    # -- offsets and commits -------------------------------------------------------------

    async def commit_offsets_async(self) -> dict[int, int]:
        """Commit processed offset + 1 of every partition read; returns what was committed."""
        if not self.config.group_id:
            raise KafkaDataSourceError("committing offsets needs a group_id")
        self._uncommitted |= set(self._processed)
        return await self._commit(set(self._processed))

    async def get_committed_offsets_async(self) -> dict[int, int]:
        """`{partition: committed offset}` of the group, for partitions that have one."""
        if not self.config.group_id:
            raise KafkaDataSourceError("committed offsets need a group_id")
        consumer = self._require()
        committed: dict[int, int] = {}
        for tp in self._tps(self._partitions()):
            try:
                offset = await consumer.committed(tp)
            except kafka_errors.KafkaError as exc:
                raise KafkaDataSourceError(f"cannot read committed offsets: {exc}") from exc
            if offset is not None:
                committed[tp.partition] = offset
        return committed

    async def _commit(self, partitions: set[int], *, tolerate: bool = False) -> dict[int, int]:
        """Commit processed offset + 1 of `partitions` that this consumer still holds.

        A partition revoked in a rebalance was committed by the listener as it left.
        """
        consumer = self._consumer
        if not self.config.group_id or consumer is None:
            return {}
        assigned = {tp.partition for tp in consumer.assignment() if tp.topic == self.config.topic}
        wanted = {p: self._processed[p] for p in partitions & self._uncommitted & assigned}
        if not wanted:
            return {}
        offsets = {TopicPartition(self.config.topic, p): o for p, o in wanted.items()}
        try:
            await consumer.commit(offsets)
        except (kafka_errors.CommitFailedError, kafka_errors.IllegalStateError) as exc:
            log.warning("commit of %s skipped after a rebalance: %s", wanted, exc)
            return {}
        except kafka_errors.KafkaError as exc:
            if not tolerate:
                raise KafkaDataSourceError(f"commit failed: {exc}") from exc
            log.warning("commit of %s failed: %s", wanted, exc)
            return {}
        self._uncommitted -= set(wanted)
        return wanted

    # -- consumption -------------------------------------------------------------------

    async def _start_of(self, tp: TopicPartition, begin: int, stop: int) -> int:
        c = self.config
        if c.start_offset is not None:
            start = c.start_offset
        else:
            committed = await self._require().committed(tp) if c.group_id else None
            if committed is not None:
                start = committed
            else:
                start = begin if c.auto_offset_reset == "earliest" else stop
        return max(start, begin)

    async def _position(self, tps: list[TopicPartition], run: _Run) -> None:
        """Seek `tps` to their start; pause the ones with nothing left before their stop."""
        consumer = self._require()
        if not tps:
            return
        missing = [tp for tp in tps if tp.partition not in run.ends]
        if missing:
            run.ends |= {tp.partition: o for tp, o in (await consumer.end_offsets(missing)).items()}
        begins = await consumer.beginning_offsets(tps)
        end_offset = self.config.end_offset
        for tp in tps:
            stop = run.ends[tp.partition]
            if end_offset is not None:
                stop = min(stop, end_offset)
            start = await self._start_of(tp, begins[tp], stop)
            if start >= stop:
                run.remaining.pop(tp.partition, None)
                consumer.pause(tp)
                continue
            consumer.seek(tp, start)
            consumer.resume(tp)
            run.remaining[tp.partition] = stop
            run.planned += stop - start

    async def _plan(self, run: _Run) -> None:
        consumer = self._require()
        if self.config.use_group_assignment:
            if self._listener is None:
                self._listener = _Rebalance(self, run)
                consumer.subscribe([self.config.topic], listener=self._listener)
            else:  # a later run of the same member: the assignment stays, positions move on
                self._listener.rebind(run)
                await self._position(list(consumer.assignment()), run)
                run.assigned.set()
            return
        tps = self._tps(self._partitions())
        consumer.assign(tps)
        self.stats.assigned_partitions = [tp.partition for tp in tps]
        await self._position(tps, run)
        run.assigned.set()

    async def batches(
        self,
        *,
        max_messages: int | None = None,
        batch_size: int = 10_000,
        on_progress: ProgressCallback | None = None,
    ) -> AsyncIterator[Batch]:
        """Decoded batches of at most `batch_size` messages, bounded as the module says."""
        consumer = self._require()
        config = self.config
        clock = self._clock
        limit = max_messages if max_messages is not None else config.max_messages
        batch_size = max(1, batch_size)
        stats = self.stats = ConsumptionStats(source=self.describe(), started_at=clock.monotonic())
        run = _Run({})
        # Decoding runs in threads (polars releases the GIL) while the next records are
        # fetched, up to DECODE_DEPTH batches ahead; in group mode none, since a revoked
        # partition's records must never be handed out after its offsets were committed.
        depth = 0 if config.use_group_assignment else DECODE_DEPTH
        pending: deque[tuple[asyncio.Future[Batch], list[Span]]] = deque()
        consumed = 0

        def handed(spans: list[Span]) -> int:
            count = self._hand_over(spans)
            if on_progress is not None:
                on_progress(consumed + count, self._progress_target(run, limit))
            return count

        try:
            if config.use_group_assignment:
                tps = self._tps(self._all_partitions())
                run.ends = {tp.partition: o for tp, o in (await consumer.end_offsets(tps)).items()}
            await self._plan(run)
            last_data = clock.monotonic()
            stopped_by = "end"
            while True:
                in_flight = sum(span[3] for _, spans in pending for span in spans)
                if limit is not None and consumed + run.buffered + in_flight >= limit:
                    stopped_by = "max_messages"
                    break
                if run.assigned.is_set() and not run.rebalancing and not run.remaining:
                    break
                idle = config.consume_timeout - (clock.monotonic() - last_data)
                if idle <= 0:
                    stopped_by = "timeout"
                    break
                data = await consumer.getmany(
                    timeout_ms=int(min(idle, POLL_SECONDS) * 1000), max_records=MAX_CHUNKS
                )
                if data:
                    last_data = clock.monotonic()
                    room = None if limit is None else limit - consumed - in_flight
                    self._take(run, data, room)
                await self._finish_drained(run)
                while run.buffered >= batch_size:
                    pending.append(self._start_decode(run, batch_size))
                    while len(pending) > depth:
                        future, spans = pending.popleft()
                        batch = await future
                        consumed += handed(spans)
                        yield batch
                        await self._commit_after_batch()
            while run.buffered:
                pending.append(self._start_decode(run, batch_size))
            while pending:
                future, spans = pending.popleft()
                batch = await future
                consumed += handed(spans)
                yield batch
                await self._commit_after_batch()
            stats.stopped_by = stopped_by
        except kafka_errors.KafkaError as exc:
            raise KafkaDataSourceError(f"consuming {config.topic!r} failed: {exc}") from exc
        finally:
            for future, _ in pending:
                future.cancel()
            stats.finished_at = clock.monotonic()

    @staticmethod
    def _progress_target(run: _Run, limit: int | None) -> int | None:
        """The most this run will consume, as far as is known now."""
        if not run.assigned.is_set():
            return limit
        return run.planned if limit is None else min(limit, run.planned)

    def _take(self, run: _Run, data: dict[TopicPartition, list[Any]], room: int | None) -> None:
        """Buffer fetched records up to each partition's stop and the message limit."""
        if room is not None:
            room -= run.buffered
        for tp, items in data.items():
            partition = tp.partition
            stop = run.remaining.get(partition)
            if stop is None or tp.topic != self.config.topic:
                continue
            chunks = items if self._fast else [items]
            for chunk in chunks:
                if room is not None and room <= 0:
                    return
                done = chunk[-1].offset >= stop - 1
                if chunk[-1].offset >= stop:
                    chunk = [record for record in chunk if record.offset < stop]
                if room is not None and len(chunk) > room:
                    chunk = chunk[:room]
                    done = False
                if chunk:
                    run.buffer.append((partition, chunk))
                    run.buffered += len(chunk)
                    if room is not None:
                        room -= len(chunk)
                if done:
                    self._done(run, partition)
                    break

    def _done(self, run: _Run, partition: int) -> None:
        run.remaining.pop(partition, None)
        self._require().pause(TopicPartition(self.config.topic, partition))

    async def _finish_drained(self, run: _Run) -> None:
        """Partitions whose position reached the stop without a record at stop - 1
        (control records, compaction) are done too."""
        consumer = self._require()
        for partition, stop in list(run.remaining.items()):
            tp = TopicPartition(self.config.topic, partition)
            if tp in consumer.assignment() and await consumer.position(tp) >= stop:
                self._done(run, partition)

    def _start_decode(self, run: _Run, size: int) -> tuple[asyncio.Future[Batch], list[Span]]:
        """Take up to `size` buffered records and start decoding them into a Batch."""
        pieces: list[tuple[int, list[Any]]] = []
        taken = 0
        while run.buffer and taken < size:
            partition, chunk = run.buffer[0]
            want = size - taken
            if len(chunk) > want:
                pieces.append((partition, chunk[:want]))
                run.buffer[0] = (partition, chunk[want:])
                taken += want
            else:
                pieces.append(run.buffer.pop(0))
                taken += len(chunk)
        run.buffered -= taken
        spans = [(p, chunk[0].offset, chunk[-1].offset, len(chunk)) for p, chunk in pieces]
        return asyncio.ensure_future(self._decode(pieces)), spans

    def _hand_over(self, spans: list[Span]) -> int:
        """Account a batch as it is handed to the caller: counts, processed offsets."""
        for partition, first, last, count in spans:
            self.stats.count(partition, first, last, count)
            self._processed[partition] = last + 1
            self._uncommitted.add(partition)
        return sum(span[3] for span in spans)

    async def _decode(self, pieces: list[tuple[int, list[Any]]]) -> Batch:
        config = self.config
        stats = self.stats
        values = [record.value for _, chunk in pieces for record in chunk]
        offsets = [record.offset for _, chunk in pieces for record in chunk]
        partitions: list[int] = []
        for partition, chunk in pieces:
            partitions += [partition] * len(chunk)
        prefix = config.metadata_prefix

        def extra(kept: list[int] | None) -> list[pl.Series]:
            columns: list[pl.Series] = []
            if config.include_key:
                keys = [record.key for _, chunk in pieces for record in chunk]
                columns.append(decode_keys(keys, config.key_deserializer, f"{prefix}key"))
            if config.include_headers:
                columns.append(_headers(pieces, f"{prefix}headers"))
            if config.include_metadata:
                count = len(offsets)
                stamps = [record.timestamp for _, chunk in pieces for record in chunk]
                columns += [
                    pl.Series(f"{prefix}topic", [config.topic], pl.String).extend_constant(
                        config.topic, count - 1
                    )
                    if count
                    else pl.Series(f"{prefix}topic", [], pl.String),
                    pl.Series(f"{prefix}partition", partitions, pl.Int32),
                    pl.Series(f"{prefix}offset", offsets, pl.Int64),
                    pl.Series(f"{prefix}timestamp", stamps, pl.Int64)
                    .cast(pl.Datetime("ms"))
                    .dt.replace_time_zone("UTC"),
                ]
            if kept is not None:
                columns = [column.gather(kept) for column in columns]
            return columns

        return await assemble(
            self._deserializer,
            values,
            partitions,
            offsets,
            strict=config.strict,
            stats=stats,
            extra=extra,
        )

    async def _commit_after_batch(self) -> None:
        if self.config.group_id and (self.config.commit_per_batch or self._listener is not None):
            await self._commit(set(self._uncommitted))

    # -- the spec's convenience API ---------------------------------------------------

    async def to_polars_lazyframe_async(self) -> pl.LazyFrame:
        """All messages of the bounded run as one LazyFrame (consumed once, then cached)."""
        if self._frame is None:
            frames = [batch.frame async for batch in self.batches(batch_size=20_000)]
            self._frame = concat_frames(frames)
        return self._frame.lazy()

    async def to_polars_async(self) -> pl.DataFrame:
        return (await self.to_polars_lazyframe_async()).collect()

    async def iter_messages_async(
        self, batch_size: int = 1000, max_messages: int | None = None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Lists of `batch_size` decoded messages (dicts, metadata columns included)."""
        pending: list[dict[str, Any]] = []
        async for batch in self.batches(
            max_messages=max_messages, batch_size=max(batch_size, 1000)
        ):
            pending.extend(batch.frame.to_dicts())
            while len(pending) >= batch_size:
                yield pending[:batch_size]
                del pending[:batch_size]
        if pending:
            yield pending

    async def get_schema_async(self) -> pl.Schema:
        """Schema of the data: of the consumed frame, else of `schema_sample_size` messages."""
        if self._frame is not None:
            return self._frame.schema
        sample = await self.sample_async(self.config.schema_sample_size)
        async with sample:
            frame = await sample.to_polars_async()
        return frame.schema

    async def sample_async(self, n: int = 1000) -> KafkaDataSource:
        """A new (unopened) source reading at most `n` messages from the beginning.

        Kafka cannot sample at random; the sample uses no group, so it neither starts
        at committed offsets nor commits.
        """
        config = self.config.model_copy(
            update={
                "max_messages": n,
                "group_id": None,
                "use_group_assignment": False,
                "auto_offset_reset": "earliest",
            }
        )
        return KafkaDataSource(
            KafkaDataSourceConfig.model_validate(config.model_dump()), clock=self._clock
        )


def _headers(pieces: list[tuple[int, list[Any]]], name: str) -> pl.Series:
    rows = [
        [
            {"key": key, "value": value.decode("utf-8", "replace") if value is not None else None}
            for key, value in record.headers
        ]
        for _, chunk in pieces
        for record in chunk
    ]
    dtype = pl.List(pl.Struct({"key": pl.String, "value": pl.String}))
    return pl.Series(name, rows, dtype=dtype)


def concat_frames(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """Batches may infer different schemas (new fields, wider types): relax and align."""
    frames = [frame for frame in frames if frame.width]
    if not frames:
        return pl.DataFrame()
    if len(frames) == 1:
        return frames[0]
    return pl.concat(frames, how="diagonal_relaxed")


async def _stop_quietly(consumer: AIOKafkaConsumer) -> None:
    try:
        await consumer.stop()
    except Exception:  # stopping a half-started consumer may fail; nothing to save
        log.debug("consumer stop failed", exc_info=True)


def parse_connection_string(connection_string: str, **options: Any) -> KafkaDataSourceConfig:
    """`kafka://[user:pass@]b1:9092,b2:9092/topic?field=value` into a config."""
    parts = urlsplit(connection_string)
    if parts.scheme != "kafka":
        raise ValueError(f"not a kafka:// connection string: {connection_string!r}")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    topic = unquote(parts.path.lstrip("/"))
    if not hosts or not topic:
        raise ValueError(f"expected kafka://host:port[,host:port]/topic, got {connection_string!r}")
    fields: dict[str, Any] = {"bootstrap_servers": hosts, "topic": topic}
    if userinfo:
        user, _, password = userinfo.partition(":")
        fields |= {"sasl_username": unquote(user), "sasl_password": unquote(password)}
    for key, value in parse_qsl(parts.query):
        fields[key] = [int(p) for p in value.split(",") if p] if key == "partitions" else value
    return KafkaDataSourceConfig(**(fields | options))


async def from_kafka(
    bootstrap_servers: str = "localhost:9092", topic: str | None = None, **options: Any
) -> KafkaDataSource:
    """The spec's module-level factory: a (not yet opened) `KafkaDataSource`."""
    if not topic:
        raise ValueError("from_kafka needs a topic")
    return KafkaDataSource(
        KafkaDataSourceConfig(bootstrap_servers=bootstrap_servers, topic=topic, **options)
    )
