"""The Kafka validation source against a real broker: exact bounds, columns, formats,
bad messages, commits, sampling, errors and consumer-group scale-out."""

from __future__ import annotations

import asyncio
import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import fastavro
import orjson
import polars as pl
import pytest
from aiokafka import AIOKafkaProducer

from backends import validation as th
from backends.validation import (
    DeserializationError,
    KafkaConnectionError,
    KafkaDataSource,
    KafkaDataSourceConfig,
    KafkaDataSourceError,
    from_kafka,
    open_source,
)
from tests.services import free_port

Record = tuple[int, bytes | None, bytes | None, list[tuple[str, bytes]]]


async def produce(bootstrap: str, topic: str, records: list[Record]) -> None:
    """(partition, key, value, headers) in order, each to its partition."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value, key=key, partition=p, headers=headers or None)
            for p, key, value, headers in records
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def event(i: int, **extra: Any) -> bytes:
    return orjson.dumps({"user_id": i, "action": "login", "payload": {"total": i * 1.5}} | extra)


async def fill(bootstrap: str, topic: str, counts: dict[int, int]) -> None:
    records: list[Record] = []
    for partition, count in counts.items():
        records += [(partition, f"k{partition}-{i}".encode(), event(i), []) for i in range(count)]
    await produce(bootstrap, topic, records)


def config(bootstrap: str, topic: str, **fields: Any) -> KafkaDataSourceConfig:
    return KafkaDataSourceConfig(bootstrap_servers=bootstrap, topic=topic, **fields)


async def consume(source: KafkaDataSource, **kwargs: Any) -> list[th.Batch]:
    async with source:
        return [batch async for batch in source.batches(**kwargs)]


def pairs(batches: list[th.Batch]) -> list[tuple[int, int]]:
    return [
        (p, o)
        for batch in batches
        for p, o in zip(batch.partitions.to_list(), batch.offsets.to_list(), strict=True)
    ]


async def test_stops_exactly_at_max_messages(kafka_bootstrap: str, kafka_topic: str) -> None:
    await fill(kafka_bootstrap, kafka_topic, {0: 300, 1: 300, 2: 300, 3: 300})
    source = KafkaDataSource(config(kafka_bootstrap, kafka_topic, max_messages=250, group_id=None))
    progress: list[tuple[int, int | None]] = []
    batches = await consume(source, batch_size=64, on_progress=lambda *a: progress.append(a))
    assert sum(b.frame.height for b in batches) == 250 == source.stats.messages
    assert [b.frame.height for b in batches] == [64, 64, 64, 58]
    assert len(set(pairs(batches))) == 250
    assert source.stats.stopped_by == "max_messages"
    assert progress[-1] == (250, 250)
    assert sum(p.messages for p in source.stats.partitions.values()) == 250


@pytest.mark.parametrize("fast_fetch", [True, False], ids=["batch-records", "consumer-records"])
async def test_each_partition_stops_at_its_snapshotted_end(
    kafka_bootstrap: str, kafka_topic: str, fast_fetch: bool
) -> None:
    await fill(kafka_bootstrap, kafka_topic, {0: 40, 2: 25, 3: 7})  # partition 1 stays empty
    source = KafkaDataSource(
        config(kafka_bootstrap, kafka_topic, max_messages=None, group_id=None, consume_timeout=60)
    )
    source.fast_fetch = fast_fetch
    batches = await consume(source, batch_size=1000)
    assert source.stats.stopped_by == "end"  # not the 60 s idle timeout
    by_partition = {p: s.messages for p, s in source.stats.partitions.items()}
    assert by_partition == {0: 40, 2: 25, 3: 7}
    assert sorted(pairs(batches)) == sorted(
        [(0, o) for o in range(40)] + [(2, o) for o in range(25)] + [(3, o) for o in range(7)]
    )
    assert source.stats.partitions[0].first_offset == 0
    assert source.stats.partitions[0].last_offset == 39


async def test_messages_after_the_snapshot_are_not_read(
    kafka_bootstrap: str, kafka_topic: str
) -> None:
    await fill(kafka_bootstrap, kafka_topic, {0: 10})
    source = KafkaDataSource(config(kafka_bootstrap, kafka_topic, max_messages=None, group_id=None))
    async with source:
        batches = source.batches(batch_size=5)
        first = await anext(batches)
        await fill(kafka_bootstrap, kafka_topic, {0: 10, 1: 10})  # after the run started
        rest = [batch async for batch in batches]
    assert first.frame.height + sum(b.frame.height for b in rest) == 10


async def test_partition_and_offset_range(kafka_bootstrap: str, kafka_topic: str) -> None:
    await fill(kafka_bootstrap, kafka_topic, {0: 30, 2: 30})
    source = KafkaDataSource(
        config(
            kafka_bootstrap,
            kafka_topic,
            partition=2,
            start_offset=5,
            end_offset=15,
            group_id=None,
            include_metadata=True,
        )
    )
    batches = await consume(source)
    assert pairs(batches) == [(2, o) for o in range(5, 15)]
    frame = pl.concat([b.frame for b in batches])
    assert frame["user_id"].to_list() == list(range(5, 15))
    assert frame["_kafka_partition"].unique().to_list() == [2]


async def test_metadata_key_and_header_columns(kafka_bootstrap: str, kafka_topic: str) -> None:
    await produce(
        kafka_bootstrap,
        kafka_topic,
        [
            (1, b"store_1", event(1), [("trace", b"t-1"), ("source", b"pos")]),
            (1, None, event(2), []),
        ],
    )
    source = KafkaDataSource(
        config(
            kafka_bootstrap,
            kafka_topic,
            include_metadata=True,
            include_headers=True,
            metadata_prefix="_kafka_",
            group_id=None,
        )
    )
    async with source:
        frame = (await source.to_polars_lazyframe_async()).collect()
    assert frame.columns == [
        "user_id",
        "action",
        "payload",
        "_kafka_key",
        "_kafka_headers",
        "_kafka_topic",
        "_kafka_partition",
        "_kafka_offset",
        "_kafka_timestamp",
    ]
    rows = frame.sort("_kafka_offset").to_dicts()
    assert rows[0]["_kafka_key"] == "store_1" and rows[1]["_kafka_key"] is None
    assert rows[0]["_kafka_headers"] == [
        {"key": "trace", "value": "t-1"},
        {"key": "source", "value": "pos"},
    ]
    assert rows[1]["_kafka_headers"] == []
    assert {r["_kafka_topic"] for r in rows} == {kafka_topic}
    assert [r["_kafka_offset"] for r in rows] == [0, 1]
    assert frame.schema["_kafka_timestamp"] == pl.Datetime("ms", "UTC")
    assert rows[0]["payload"] == {"total": 1.5}


async def test_malformed_messages_are_skipped_with_their_offsets(
    kafka_bootstrap: str, kafka_topic: str
) -> None:
    values = [event(0), b"{not json", event(2), b"[1, 2]", None, event(5), b'{"x": 1}']
    await produce(kafka_bootstrap, kafka_topic, [(3, b"k", v, []) for v in values])
    source = KafkaDataSource(config(kafka_bootstrap, kafka_topic, group_id=None))
    batches = await consume(source)
    assert [(s.partition, s.offset) for s in source.stats.skipped] == [(3, 1), (3, 3), (3, 4)]
    assert "invalid JSON" in source.stats.skipped[0].reason
    assert "not a JSON object" in source.stats.skipped[1].reason
    assert source.stats.messages == 7
    assert pairs(batches) == [(3, 0), (3, 2), (3, 5), (3, 6)]
    frame = batches[0].frame
    assert frame["user_id"].to_list() == [0, 2, 5, None]
    assert frame["x"].to_list() == [None, None, None, 1]


async def test_strict_mode_raises_with_the_offset(kafka_bootstrap: str, kafka_topic: str) -> None:
    await produce(kafka_bootstrap, kafka_topic, [(0, None, v, []) for v in (event(0), b"oops")])
    source = KafkaDataSource(config(kafka_bootstrap, kafka_topic, strict=True, group_id=None))
    with pytest.raises(DeserializationError) as raised:
        await consume(source)
    assert raised.value.offset == 1 and raised.value.partition == 0


AVRO_SCHEMA = {
    "type": "record",
    "name": "UserEvent",
    "fields": [{"name": "user_id", "type": "int"}, {"name": "action", "type": "string"}],
}


def avro(record: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(AVRO_SCHEMA), record)
    return out.getvalue()


async def test_avro_with_a_given_schema(kafka_bootstrap: str, kafka_topic: str) -> None:
    values = [avro({"user_id": i, "action": "buy"}) for i in range(5)]
    await produce(kafka_bootstrap, kafka_topic, [(0, None, v, []) for v in values])
    source = KafkaDataSource(
        config(
            kafka_bootstrap,
            kafka_topic,
            deserializer_type="avro",
            avro_schema=AVRO_SCHEMA,
            group_id=None,
        )
    )
    async with source:
        frame = await source.to_polars_async()
    assert frame["user_id"].to_list() == list(range(5))
    assert frame.schema["user_id"] == pl.Int64 and frame["action"].unique().to_list() == ["buy"]


class _Registry(BaseHTTPRequestHandler):
    schemas: dict[int, str] = {}
    hits: list[str] = []

    def do_GET(self) -> None:  # the Schema Registry's GET /schemas/ids/{id}
        self.hits.append(self.path)
        schema_id = (
            int(self.path.rsplit("/", 1)[-1]) if self.path.startswith("/schemas/ids/") else -1
        )
        if schema_id not in self.schemas:
            body, status = b'{"error_code":40403,"message":"Schema not found"}', 404
        else:
            body, status = json.dumps({"schema": self.schemas[schema_id]}).encode(), 200
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def registry() -> Iterator[str]:
    _Registry.schemas = {7: json.dumps(AVRO_SCHEMA)}
    _Registry.hits = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def wire(schema_id: int, record: dict[str, Any]) -> bytes:
    return b"\x00" + schema_id.to_bytes(4, "big") + avro(record)


async def test_confluent_avro_from_a_schema_registry(
    kafka_bootstrap: str, kafka_topic: str, registry: str
) -> None:
    values = [wire(7, {"user_id": i, "action": "view"}) for i in range(4)]
    values.append(wire(99, {"user_id": 9, "action": "lost"}))  # id unknown to the registry
    values.append(b"plain bytes")  # not the wire format
    await produce(kafka_bootstrap, kafka_topic, [(1, None, v, []) for v in values])
    source = KafkaDataSource(
        config(
            kafka_bootstrap,
            kafka_topic,
            deserializer_type="confluent_avro",
            schema_registry_url=registry,
            group_id=None,
        )
    )
    async with source:
        frame = await source.to_polars_async()
    assert frame["user_id"].to_list() == [0, 1, 2, 3]
    assert [(s.offset, "not found" in s.reason) for s in source.stats.skipped] == [
        (4, True),
        (5, False),
    ]
    assert sorted(_Registry.hits) == ["/schemas/ids/7", "/schemas/ids/99"]  # cached per id


async def test_confluent_avro_with_a_given_schema(kafka_bootstrap: str, kafka_topic: str) -> None:
    await produce(
        kafka_bootstrap, kafka_topic, [(0, None, wire(3, {"user_id": 1, "action": "a"}), [])]
    )
    source = KafkaDataSource(
        config(
            kafka_bootstrap,
            kafka_topic,
            deserializer_type="confluent_avro",
            avro_schema=json.dumps(AVRO_SCHEMA),
            group_id=None,
        )
    )
    async with source:
        assert (await source.to_polars_async()).to_dicts() == [
            {"user_id": 1, "action": "a", "_kafka_key": None}
        ]


async def test_commits_processed_offsets_and_resumes(
    kafka_bootstrap: str, kafka_topic: str
) -> None:
    await fill(kafka_bootstrap, kafka_topic, {0: 20, 1: 20})
    group = f"{kafka_topic}-group"
    first = KafkaDataSource(config(kafka_bootstrap, kafka_topic, group_id=group, max_messages=25))
    async with first:
        batches = [b async for b in first.batches(batch_size=10)]
        committed = await first.get_committed_offsets_async()
    seen = pairs(batches)
    expected = {p: max(o for q, o in seen if q == p) + 1 for p in {q for q, _ in seen}}
    assert committed == expected and sum(expected.values()) == 25
    second = KafkaDataSource(
        config(kafka_bootstrap, kafka_topic, group_id=group, max_messages=None)
    )
    rest = await consume(second)
    assert len(seen) + len(pairs(rest)) == 40
    assert not set(seen) & set(pairs(rest))
    async with second:
        assert await second.get_committed_offsets_async() == {0: 20, 1: 20}


async def test_scale_out_two_members_split_the_partitions(
    kafka_bootstrap: str, kafka_topic: str
) -> None:
    await fill(kafka_bootstrap, kafka_topic, {0: 500, 1: 400, 2: 300, 3: 200})
    group = f"{kafka_topic}-workers"

    def member() -> Any:
        return open_source(
            f"kafka://{kafka_bootstrap}/{kafka_topic}",
            group_id=group,
            use_group_assignment=True,
            consume_timeout=20,
        )

    async def run(source: Any) -> list[tuple[int, int]]:
        async with source:
            return pairs([b async for b in source.batches(batch_size=100)])

    a, b = member(), member()
    seen_a, seen_b = await asyncio.gather(run(a), run(b))
    assert len(seen_a) + len(seen_b) == 1400 == a.stats.messages + b.stats.messages
    assert not set(seen_a) & set(seen_b)
    assert set(seen_a) | set(seen_b) == {
        (p, o) for p, n in {0: 500, 1: 400, 2: 300, 3: 200}.items() for o in range(n)
    }
    assert set(a.stats.assigned_partitions) | set(b.stats.assigned_partitions) == {0, 1, 2, 3}
    assert {p for p, _ in seen_a} <= set(a.stats.assigned_partitions)


async def test_scale_out_a_member_joining_mid_run_rebalances_exactly(
    kafka_bootstrap: str, kafka_topic: str
) -> None:
    counts = {0: 600, 1: 600, 2: 600, 3: 600}
    await fill(kafka_bootstrap, kafka_topic, counts)
    group = f"{kafka_topic}-late"
    sources = [
        open_source(
            f"kafka://{kafka_bootstrap}/{kafka_topic}",
            group_id=group,
            use_group_assignment=True,
            consume_timeout=20,
        )
        for _ in range(2)
    ]
    first_batch = asyncio.Event()

    async def slow_first() -> list[tuple[int, int]]:
        seen: list[th.Batch] = []
        async with sources[0]:
            async for batch in sources[0].batches(batch_size=50):
                seen.append(batch)
                first_batch.set()
                await asyncio.sleep(0.1)  # a slow validator: the rebalance lands mid-run
        return pairs(seen)

    async def late_second() -> list[tuple[int, int]]:
        await first_batch.wait()
        async with sources[1]:
            return pairs([b async for b in sources[1].batches(batch_size=50)])

    seen_a, seen_b = await asyncio.gather(slow_first(), late_second())
    assert not set(seen_a) & set(seen_b)
    assert len(seen_a) + len(seen_b) == 2400
    assert set(seen_a) | set(seen_b) == {(p, o) for p, n in counts.items() for o in range(n)}
    assert sources[1].stats.messages > 0  # the late member really took partitions over


async def test_sampling_reads_from_the_beginning(kafka_bootstrap: str, kafka_topic: str) -> None:
    await fill(kafka_bootstrap, kafka_topic, {0: 50})
    source = KafkaDataSource(config(kafka_bootstrap, kafka_topic, group_id=None))
    async with source:
        sampled = await source.sample_async(n=7)
        schema = await source.get_schema_async()
    async with sampled:
        frame = (await sampled.to_polars_lazyframe_async()).collect()
    assert frame.height == 7 and frame["user_id"].to_list() == list(range(7))
    assert schema["user_id"] == pl.Int64 and isinstance(schema["payload"], pl.Struct)


async def test_topic_info_and_offsets(kafka_bootstrap: str, kafka_topic: str) -> None:
    await fill(kafka_bootstrap, kafka_topic, {0: 3, 3: 5})
    source = KafkaDataSource(config(kafka_bootstrap, kafka_topic))
    async with source:
        info = await source._get_topic_info()
        offsets = await source.get_topic_offsets_async()
    assert info == {"topic": kafka_topic, "partitions": [0, 1, 2, 3], "partition_count": 4}
    assert offsets["offsets"] == {0: (0, 3), 1: (0, 0), 2: (0, 0), 3: (0, 5)}


async def test_unreachable_broker_fails_within_the_timeout() -> None:
    bootstrap = f"127.0.0.1:{free_port()}"
    source = KafkaDataSource(
        KafkaDataSourceConfig(bootstrap_servers=bootstrap, topic="t", connect_timeout=3)
    )
    with pytest.raises(KafkaConnectionError) as raised:
        async with asyncio.timeout(15):
            await consume(source)
    assert raised.value.bootstrap_servers == bootstrap
    assert f"cannot connect to Kafka at {bootstrap}" in str(raised.value)


async def test_unknown_topic_is_a_clear_error(kafka_bootstrap: str) -> None:
    source = KafkaDataSource(config(kafka_bootstrap, "no-such-topic-validation"))
    with pytest.raises(KafkaDataSourceError, match="not found"):
        await consume(source)


# -- the spec's samples, import lines changed ------------------------------------------


async def test_spec_samples(kafka_bootstrap: str, kafka_topic: str) -> None:
    await fill(kafka_bootstrap, kafka_topic, {0: 30, 1: 30, 2: 30})

    config = KafkaDataSourceConfig(
        bootstrap_servers=kafka_bootstrap,
        topic=kafka_topic,
        max_messages=10000,
    )
    source = KafkaDataSource(config)
    async with source:
        schema = await source.get_schema_async()
        lf = await source.to_polars_lazyframe_async()
    assert "user_id" in schema and lf.collect().height == 90

    source = KafkaDataSource.from_connection_string(
        f"kafka://{kafka_bootstrap}/{kafka_topic}", max_messages=5000, group_id=None
    )
    async with source:
        assert (await source.to_polars_lazyframe_async()).collect().height == 90
    multi = KafkaDataSource.from_connection_string(
        f"kafka://broker1:9092,broker2:9092/{kafka_topic}"
    )
    assert multi.config.bootstrap_servers == "broker1:9092,broker2:9092"

    source = KafkaDataSource(config.model_copy(update={"group_id": None}))
    async with source:
        seen = 0
        async for batch in source.iter_messages_async(batch_size=20, max_messages=50):
            assert len(batch) <= 20
            for msg in batch:
                assert msg["action"] == "login"
                seen += 1
    assert seen == 50

    source = KafkaDataSource(config)
    async with source:
        committed = await source.get_committed_offsets_async()
        await source.commit_offsets_async()
    assert committed == {0: 30, 1: 30, 2: 30}  # the first sample committed per batch

    source = await from_kafka(bootstrap_servers=kafka_bootstrap, topic=kafka_topic, max_messages=10)
    async with source:
        lf = await source.to_polars_lazyframe_async()
    assert lf.collect().height == 0  # the default group already read the topic

    try:
        source = KafkaDataSource(
            KafkaDataSourceConfig(
                bootstrap_servers=f"127.0.0.1:{free_port()}", topic="t", connect_timeout=2
            )
        )
        async with source:
            lf = await source.to_polars_lazyframe_async()
        raise AssertionError("unreachable broker accepted")
    except KafkaConnectionError as e:
        assert e.bootstrap_servers.startswith("127.0.0.1:")
    except DeserializationError as e:
        raise AssertionError(e.offset) from e
    except KafkaDataSourceError as e:
        raise AssertionError(e) from e


def test_confluent_factory_configures_sasl_ssl() -> None:
    source = KafkaDataSource.from_confluent(
        bootstrap_servers="pkc-xxxxx.us-east-1.aws.confluent.cloud:9092",
        topic="my-topic",
        api_key="ABCDEFGHIJKLMNOP",
        api_secret="secret123",
        max_messages=10000,
    )
    kwargs = source.client_kwargs()
    assert kwargs["security_protocol"] == "SASL_SSL" and kwargs["sasl_mechanism"] == "PLAIN"
    assert kwargs["sasl_plain_username"] == "ABCDEFGHIJKLMNOP"
    assert kwargs["ssl_context"] is not None
