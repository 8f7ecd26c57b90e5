"""The non-Kafka validation sources for real: a Redis stream on redis-server, JSONL files,
and the retail memory sink over the retail HTTP API (`GET /api/stream/sink/events`)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import polars as pl
import pytest
import redis.asyncio as aioredis

from backends.runtime import BackendHost
from backends.settings import RetailSettings, Settings
from backends.validation import DeserializationError, SourceError, open_source
from backends.validation.base import Batch
from tests.support import wait_for


async def collect(source: object, **kwargs: object) -> list[Batch]:
    async with source:  # type: ignore[attr-defined]
        return [b async for b in source.batches(**kwargs)]  # type: ignore[attr-defined]


def rows(batches: list[Batch]) -> pl.DataFrame:
    return pl.concat([b.frame for b in batches], how="diagonal_relaxed")


# -- Redis stream -----------------------------------------------------------------------


async def test_redis_stream_pages_up_to_the_last_entry(
    redis_client: aioredis.Redis, redis_url: str
) -> None:
    stream = "validation-retail-events"
    for i in range(25):
        data = b"{broken" if i == 7 else orjson.dumps({"n": i, "payload": {"total": i}})
        await redis_client.xadd(stream, {"event_type": "x", "data": data})
    source = open_source(f"{redis_url}?stream={stream}", include_metadata=True)
    batches = await collect(source, batch_size=10)
    frame = rows(batches)
    assert frame["n"].to_list() == [i for i in range(25) if i != 7]
    assert [(s.partition, s.offset) for s in source.stats.skipped] == [(0, 7)]
    assert source.stats.messages == 25 and source.stats.stopped_by == "end"
    assert frame["_redis_id"].str.contains("-").all()
    assert [b.offsets.to_list()[0] for b in batches] == [0, 10, 20]


async def test_redis_stream_respects_max_messages(
    redis_client: aioredis.Redis, redis_url: str
) -> None:
    for i in range(30):
        await redis_client.xadd("validation-capped", {"data": orjson.dumps({"n": i})})
    source = open_source(f"{redis_url}?stream=validation-capped", max_messages=12)
    batches = await collect(source, batch_size=5)
    assert [b.frame.height for b in batches] == [5, 5, 2]
    assert source.stats.stopped_by == "max_messages"


async def test_redis_unreachable_is_a_source_error() -> None:
    with pytest.raises(SourceError, match="cannot connect to Redis"):
        await collect(open_source("redis://127.0.0.1:1/0?stream=x", consume_timeout=2))


# -- files ------------------------------------------------------------------------------


async def test_jsonl_file_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"a": 1}\n\n{"a": 2}\nnot json\n{"a": 3, "b": {"c": "x"}}\n')
    source = open_source(str(path), include_metadata=True)
    batches = await collect(source)
    frame = rows(batches)
    assert frame["a"].to_list() == [1, 2, 3]
    assert frame["_file_line"].to_list() == [1, 3, 5]
    assert [(s.offset, s.reason.startswith("invalid JSON")) for s in source.stats.skipped] == [
        (4, True)
    ]
    assert source.stats.messages == 4


async def test_json_array_file_and_strict_mode(tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    path.write_bytes(orjson.dumps([{"a": 1}, {"a": 2}, 3]))
    source = open_source(f"file:{path}")
    assert rows(await collect(source))["a"].to_list() == [1, 2]
    assert source.stats.skipped[0].offset == 2
    with pytest.raises(DeserializationError) as raised:
        await collect(open_source(f"file:{path}", strict=True))
    assert raised.value.offset == 2


async def test_missing_file_and_unknown_spec() -> None:
    with pytest.raises(SourceError, match="no such file"):
        await collect(open_source("file:/nonexistent/events.jsonl"))
    with pytest.raises(SourceError, match="unknown source"):
        open_source("ftp://somewhere")


# -- the retail memory sink over HTTP ---------------------------------------------------


@pytest.fixture
def retail_url() -> Iterator[str]:
    settings = Settings(retail=RetailSettings(memory_sink_retention=1000))
    with BackendHost(settings) as host:
        assert host.endpoints.retail
        yield host.endpoints.retail


def test_sink_events_endpoint_pages_as_ndjson(retail_url: str) -> None:
    with httpx.Client(base_url=retail_url, timeout=10) as api:
        empty = api.get("/stream/sink/events")
        assert empty.status_code == 200 and empty.content == b""
        assert empty.headers["X-Sink-Latest-Seq"] == "0"
        api.post("/stream/start", json={"emit_interval_ms": 10, "burst": 100})
        wait_for(
            lambda: int(api.get("/stream/sink/events?limit=1").headers["X-Sink-Latest-Seq"]) >= 300
        )
        api.post("/stream/stop")
        page = api.get("/stream/sink/events", params={"after": 10, "limit": 50})
        lines = page.content.splitlines()
        assert page.headers["content-type"].startswith("application/x-ndjson")
        assert len(lines) == 50 and page.headers["X-Sink-First-Seq"] == "11"
        assert all("event_type" in orjson.loads(line) for line in lines)
        latest = int(page.headers["X-Sink-Latest-Seq"])
        assert int(page.headers["X-Sink-Oldest-Seq"]) >= latest - 1100  # retention of ~1000
        tail = api.get("/stream/sink/events", params={"after": latest})
        assert tail.content == b"" and tail.headers["X-Sink-First-Seq"] == str(latest + 1)
        bad = api.get("/stream/sink/events", params={"limit": 0})
        assert bad.status_code == 400 and "limit" in bad.json()["detail"]


async def test_memory_source_reads_the_sink(retail_url: str) -> None:
    async with httpx.AsyncClient(base_url=retail_url, timeout=10) as api:
        await api.post("/stream/start", json={"emit_interval_ms": 10, "burst": 50})
        for _ in range(500):
            page = await api.get("/stream/sink/events", params={"limit": 1})
            if int(page.headers["X-Sink-Latest-Seq"]) >= 400:
                break
            await asyncio.sleep(0.02)
        await api.post("/stream/stop")
        latest = int((await api.get("/stream/sink/events?limit=1")).headers["X-Sink-Latest-Seq"])
        oldest = int((await api.get("/stream/sink/events?limit=1")).headers["X-Sink-Oldest-Seq"])
    source = open_source("memory", retail_url=retail_url, include_metadata=True)
    batches = await collect(source, batch_size=128)
    frame = rows(batches)
    assert source.stats.messages == latest - oldest + 1 == frame.height
    assert frame["_memory_seq"].to_list() == list(range(oldest, latest + 1))
    assert set(frame["event_type"].unique().to_list()) > {"customer_entered"}
    capped = open_source("memory", retail_url=retail_url, max_messages=30)
    assert sum(b.frame.height for b in await collect(capped, batch_size=8)) == 30
