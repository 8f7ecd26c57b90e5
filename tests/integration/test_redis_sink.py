"""RedisSink against a real redis-server: entries are read back with XRANGE/XLEN."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from typing import Any

import fakeredis
import orjson
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from backends.retail.sinks.base import SendResult
from backends.retail.sinks.redis import RedisSink
from backends.settings import RedisSettings


def envelope(i: int, key: str | None = "store_1") -> dict[str, Any]:
    return {
        "event_type": "customer_entered" if i % 2 else "receipt_created",
        "payload": {"store_id": i % 50, "customer_count": 1},
        "trace_id": f"TR_{i:06d}",
        "ingest_timestamp": "2024-01-15T10:40:15.123Z",
        "schema_version": "1.0",
        "source": "retail-datagen",
        "correlation_id": None,
        "partition_key": key,
    }


def stream_name() -> str:
    return f"retail-test-{uuid.uuid4().hex[:8]}"


async def test_xadd_count_and_field_layout(redis_url: str, redis_client: aioredis.Redis) -> None:
    stream = stream_name()
    sink = RedisSink(RedisSettings(url=redis_url, retail_stream=stream))
    await sink.open()
    events = [envelope(i, key=f"store_{i % 3}" if i % 10 else None) for i in range(1_000)]
    try:
        results: list[SendResult] = await asyncio.gather(
            *(sink.send(events[i : i + 250]) for i in range(0, 1_000, 250))
        )
    finally:
        await sink.close()

    assert sum(r.sent for r in results) == 1_000
    assert not any(r.failed or r.errors or r.connection_failure for r in results)
    assert sum(r.bytes_sent for r in results) == sum(len(orjson.dumps(e)) for e in events)
    assert await redis_client.xlen(stream) == 1_000

    entries = await redis_client.xrange(stream)
    by_trace = {}
    for _entry_id, fields in entries:
        assert set(fields) == {b"event_type", b"partition_key", b"data"}
        data = orjson.loads(fields[b"data"])
        assert fields[b"event_type"].decode() == data["event_type"]
        assert fields[b"partition_key"].decode() == (data["partition_key"] or "")
        by_trace[data["trace_id"]] = data
    assert by_trace == {e["trace_id"]: e for e in events}
    # Batches may interleave, but within one batch stream order is send order.
    position = {trace: n for n, trace in enumerate(by_trace)}
    for start in range(0, 1_000, 250):
        ids = [position[e["trace_id"]] for e in events[start : start + 250]]
        assert ids == sorted(ids)


async def test_maxlen_trims_approximately(redis_url: str, redis_client: aioredis.Redis) -> None:
    stream = stream_name()
    sink = RedisSink(RedisSettings(url=redis_url, retail_stream=stream, retail_maxlen=1_000))
    await sink.open()
    try:
        for start in range(0, 10_000, 500):
            result = await sink.send([envelope(i) for i in range(start, start + 500)])
            assert result.sent == 500
    finally:
        await sink.close()

    length = await redis_client.xlen(stream)
    # `~` trims whole macro-nodes (100 entries by default): at least maxlen, a little more.
    assert 1_000 <= length < 1_200, length
    [(_, last)] = await redis_client.xrevrange(stream, count=1)
    assert orjson.loads(last[b"data"])["trace_id"] == "TR_009999"


async def test_per_command_errors_are_counted(redis_url: str, redis_client: aioredis.Redis) -> None:
    stream = stream_name()
    await redis_client.set(stream, "not a stream")  # every XADD answers WRONGTYPE
    sink = RedisSink(RedisSettings(url=redis_url, retail_stream=stream))
    await sink.open()
    try:
        result = await sink.send([envelope(i) for i in range(5)])
    finally:
        await sink.close()
    assert (result.sent, result.failed) == (0, 5)
    assert result.errors == {"unknown": 5}
    assert not result.connection_failure


async def test_unserialisable_events_fail_alone(redis_client: aioredis.Redis) -> None:
    stream = stream_name()
    sink = RedisSink(RedisSettings(retail_stream=stream, retail_maxlen=10), client=redis_client)
    bad = envelope(1) | {"payload": {"unserialisable": object()}}
    # The last event fails too: trimming then rides on the last XADD that is sent.
    result = await sink.send([envelope(0), bad, envelope(2), bad])
    assert (result.sent, result.failed) == (2, 2)
    assert result.errors == {"serialization": 2}
    assert not result.connection_failure
    assert await redis_client.xlen(stream) == 2


async def test_stalled_server_times_out_the_batch_and_recovers(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    """Writes paused: the batch fails within one socket_timeout, then the sink works again."""
    stream = stream_name()
    client = aioredis.from_url(redis_url, socket_timeout=0.5)
    sink = RedisSink(RedisSettings(retail_stream=stream), client=client)
    try:
        await sink.open()
        await redis_client.client_pause(3_000, all=False)  # WRITE commands wait
        started = time.perf_counter()
        stalled = await sink.send([envelope(i) for i in range(50)])
        elapsed = time.perf_counter() - started
        await redis_client.client_unpause()
        after = await sink.send([envelope(i) for i in range(50, 53)])
    finally:
        await redis_client.client_unpause()
        await client.aclose()
    assert (stalled.sent, stalled.failed) == (0, 50)
    assert stalled.errors == {"connection_timeout": 50}
    assert stalled.connection_failure
    assert elapsed < 2.0  # about one socket_timeout, not the whole pause
    assert (after.sent, after.failed) == (3, 0)


async def test_out_of_memory_is_throttling(redis_url: str, redis_client: aioredis.Redis) -> None:
    stream = stream_name()
    old = await redis_client.config_get("maxmemory", "maxmemory-policy")
    sink = RedisSink(RedisSettings(retail_stream=stream), client=redis_client)
    try:
        await redis_client.config_set("maxmemory-policy", "noeviction")
        await redis_client.config_set("maxmemory", 1)
        result = await sink.send([envelope(i) for i in range(3)])
    finally:
        for name, value in old.items():
            await redis_client.config_set(name, value)
    assert result.errors == {"throttling": 3}
    assert not result.connection_failure


async def test_unreachable_server_is_classified() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sink = RedisSink(RedisSettings(url=f"redis://:hunter2@127.0.0.1:{port}/0"))
    async with asyncio.timeout(20):
        with pytest.raises(RedisConnectionError):
            await sink.open()
        result = await sink.send([envelope(i) for i in range(40)])
        probe = await sink.test()
        await sink.close()

    assert (result.sent, result.failed, result.bytes_sent) == (0, 40, 0)
    assert result.errors == {"connection_error": 40}
    assert result.connection_failure
    assert not probe.success
    assert probe.details == {"exception_type": "ConnectionError"}
    assert "hunter2" not in str(sink.describe())
    assert sink.describe()["url"] == f"redis://:***@127.0.0.1:{port}/0"


async def test_injected_client_is_shared_not_closed(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    stream = stream_name()
    sink = RedisSink(RedisSettings(retail_stream=stream), client=redis_client)
    await sink.open()
    result = await sink.send([envelope(1)])
    probe = await sink.test()
    await sink.close()
    assert result.sent == 1
    assert probe.success
    assert probe.message == "Connection test successful"
    assert await redis_client.xlen(stream) == 1  # still usable after the sink closed


async def test_fakeredis_takes_the_same_path() -> None:
    """Layout, trimming on the last XADD and per-event errors, on the embedded fakeredis."""
    client = fakeredis.FakeAsyncRedis()
    sink = RedisSink(RedisSettings(retail_stream="fake-retail", retail_maxlen=1_000), client=client)
    result = await sink.send([envelope(i, key=None if i % 2 else "store_1") for i in range(25)])
    assert (result.sent, result.failed) == (25, 0)
    entries = await client.xrange("fake-retail")
    assert [orjson.loads(fields[b"data"])["trace_id"] for _, fields in entries] == [
        f"TR_{i:06d}" for i in range(25)
    ]
    assert entries[1][1][b"partition_key"] == b""
    assert entries[0][1][b"event_type"] == b"receipt_created"

    await client.set("fake-wrong", "not a stream")
    wrong = RedisSink(RedisSettings(retail_stream="fake-wrong"), client=client)
    result = await wrong.send([envelope(i) for i in range(3)])
    assert (result.sent, result.failed) == (0, 3)
    assert result.errors == {"unknown": 3}
    await client.aclose()


async def test_embedded_default_is_fakeredis() -> None:
    sink = RedisSink(RedisSettings(retail_maxlen=10))
    await sink.open()
    try:
        result = await sink.send([envelope(i) for i in range(25)])
        probe = await sink.test()
    finally:
        await sink.close()
    assert result.sent == 25
    assert probe.success
    assert sink.describe() == {
        "kind": "redis",
        "url": "embedded",
        "stream": "retail-events",
        "maxlen": 10,
    }
