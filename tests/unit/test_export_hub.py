"""The SSE fan-out on fakeredis: framing, bounded queues, one tail per stream, handover.

Sessions are read here through `LiveSession.frames()` directly; the same paths
over HTTP and a real Redis are in tests/integration/test_export_sse.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import Any

import fakeredis
import orjson
import pytest

from backends.common.clock import ManualClock
from backends.export.hub import (
    HEARTBEAT,
    LiveChunk,
    LiveSession,
    StreamHub,
    Subscription,
    SubscriptionClosed,
    sse_event,
)
from backends.export.models import CreateApiKeyRequest, CreateStreamRequest
from backends.export.service import ExportService, Principal
from backends.export.store import Entry, ExportStore
from backends.settings import ExportSettings


def parse_frames(raw: bytes) -> list[dict[str, Any]]:
    """Events of well-formed SSE bytes (what our server writes); comments as `comment`."""
    events = []
    for block in raw.decode().split("\n\n"):
        if not block:
            continue
        event: dict[str, Any] = {"data": []}
        for line in block.split("\n"):
            name, _, value = line.partition(": ")
            if name == "":
                event["comment"] = value
            elif name == "data":
                event["data"].append(value)
            else:
                event[name] = value
        event["data"] = "\n".join(event["data"])
        events.append(event)
    return events


def entries(*specs: tuple[int, bool]) -> list[Entry]:
    return [Entry(f"{ms}-0".encode(), test, orjson.dumps({"n": ms})) for ms, test in specs]


def test_sse_event_framing() -> None:
    assert (
        sse_event(b"message", b'{"a":1}', b"5-1") == b'event: message\nid: 5-1\ndata: {"a":1}\n\n'
    )
    multi = sse_event(b"error", b"line one\nline two\r\nthree")
    assert multi == b"event: error\ndata: line one\ndata: line two\ndata: three\n\n"
    assert parse_frames(multi)[0]["data"] == "line one\nline two\nthree"
    assert HEARTBEAT == b": heartbeat\n\n"


def test_live_chunk_filters_by_position_and_test_flag() -> None:
    chunk = LiveChunk(entries((1, False), (2, True), (3, False)), journal=False)
    ids = lambda raw: [e["id"] for e in parse_frames(raw)]  # noqa: E731
    assert ids(chunk.after((0, 0), include_test=True)) == ["1-0", "2-0", "3-0"]
    assert ids(chunk.after((0, 0), include_test=False)) == ["1-0", "3-0"]
    assert ids(chunk.after((1, 0), include_test=True)) == ["2-0", "3-0"]
    assert ids(chunk.after((2, 0), include_test=False)) == ["3-0"]
    assert chunk.after((3, 0), include_test=True) == b""
    data = orjson.loads(parse_frames(chunk.frames)[0]["data"])
    assert data == {"cursor": "1-0", "n": 1}


async def test_subscription_bound_closes_a_slow_consumer() -> None:
    subscription = Subscription("k", (0, 0), max_pending=3)
    assert subscription.offer(LiveChunk(entries((1, False), (2, False)), journal=False))
    assert not subscription.offer(LiveChunk(entries((3, False), (4, False)), journal=False))
    assert subscription.closed
    with pytest.raises(SubscriptionClosed) as closed:
        await subscription.next(1)
    assert closed.value.code == "SLOW_CONSUMER"
    idle = Subscription("k", (0, 0), max_pending=3)
    assert await idle.next(0.01) is None


class Harness:
    def __init__(self, **settings: Any) -> None:
        redis = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
        self.store = ExportStore(redis)
        self.hub = StreamHub(self.store, max_pending=settings.pop("max_pending", 10_000))
        self.service = ExportService(
            self.store,
            ExportSettings(**settings),
            clock=ManualClock(datetime.now(UTC)),
            hub=self.hub,
        )

    async def setup(self) -> tuple[str, Principal]:
        record = await self.service.create_stream(CreateStreamRequest(name="s"))
        key = await self.service.create_api_key(CreateApiKeyRequest(name="k"))
        principal = await self.service.authenticate(f"{key.api_key_id}:{key.api_key_secret}")
        return record.consumer_key, principal


async def collect(session: LiveSession, until: int, out: list[dict[str, Any]]) -> None:
    """Gather message dicts (batch and live) until `until` of them arrived."""
    frames: AsyncGenerator[bytes, None] = session.frames()
    try:
        async for raw in frames:
            for event in parse_frames(raw):
                if event.get("event") == "batch":
                    out.extend(orjson.loads(event["data"]))
                elif event.get("event") == "message":
                    out.append(orjson.loads(event["data"]))
            if len(out) >= until:
                return
    finally:
        await frames.aclose()
        session.close()


async def test_handover_under_load_loses_and_duplicates_nothing() -> None:
    harness = Harness(replay_batch_size=7)
    ck, principal = await harness.setup()
    total = 600
    await harness.service.publish_many(ck, [{"n": i} for i in range(100)])
    stop = asyncio.Event()

    async def produce() -> None:
        n = 100
        while n < total:
            await harness.service.publish_many(ck, [{"n": n + i} for i in range(5)])
            n += 5
            await asyncio.sleep(0)
        stop.set()

    producer = asyncio.create_task(produce())
    results: list[list[dict[str, Any]]] = []
    tasks = []
    for _ in range(8):  # clients joining at different moments of the publishing
        session = await harness.service.open_subscription(principal, ck, cursor="0")
        results.append([])
        tasks.append(asyncio.create_task(collect(session, total, results[-1])))
        await asyncio.sleep(0.005)
    async with asyncio.timeout(20):
        await asyncio.gather(producer, *tasks)
    for got in results:
        assert [m["n"] for m in got] == list(range(total))
        assert len({m["cursor"] for m in got}) == total
    assert harness.hub.subscribers(ck) == 0


async def test_one_tail_per_stream_and_it_stops_with_the_last_client() -> None:
    harness = Harness()
    ck, principal = await harness.setup()
    sessions = [await harness.service.open_subscription(principal, ck) for _ in range(5)]
    tails = [t for t in asyncio.all_tasks() if t.get_name().startswith("export-tail-")]
    assert len(tails) == 1 and harness.hub.subscribers(ck) == 5
    for session in sessions:
        session.close()
        session.close()  # idempotent
    await asyncio.sleep(0.01)
    assert tails[0].done() and harness.hub.subscribers(ck) == 0


async def test_session_events_heartbeat_and_state_check() -> None:
    harness = Harness(heartbeat_seconds=0.1)
    ck, principal = await harness.setup()
    cursors = await harness.service.publish_many(ck, [{"n": i} for i in range(3)])
    session = await harness.service.open_subscription(principal, ck, cursor=cursors[0])
    frames: AsyncGenerator[bytes, None] = session.frames()
    try:
        [connected] = parse_frames(await anext(frames))
        info = orjson.loads(connected["data"])
        assert connected["event"] == "connected" and "id" not in connected
        assert info == {
            "stream": "s",
            "consumer_key": ck,
            "data_type": "identifier",
            "cursor": cursors[0],
            "last_cursor": cursors[2],
            "heartbeat_seconds": 0.1,
        }
        [batch] = parse_frames(await anext(frames))
        assert batch["event"] == "batch" and batch["id"] == cursors[2]
        assert [m["n"] for m in orjson.loads(batch["data"])] == [1, 2]
        assert await anext(frames) == HEARTBEAT
        [new] = await harness.service.publish_many(ck, [{"n": 3}])
        [live] = parse_frames(await anext(frames))
        assert (live["event"], live["id"], orjson.loads(live["data"])["n"]) == ("message", new, 3)
        await harness.service.set_active(ck, False)
        [error] = parse_frames(await anext(frames))
        assert error["event"] == "error"
        assert orjson.loads(error["data"]) == {
            "error": "Stream is inactive",
            "code": "STREAM_INACTIVE",
        }
        with pytest.raises(StopAsyncIteration):
            await anext(frames)
    finally:
        await frames.aclose()
        session.close()


async def test_slow_subscriber_is_dropped_while_others_continue() -> None:
    harness = Harness(max_pending=50)
    ck, principal = await harness.setup()
    slow = await harness.service.open_subscription(principal, ck)
    fast = await harness.service.open_subscription(principal, ck)
    got: list[dict[str, Any]] = []
    reader = asyncio.create_task(collect(fast, 200, got))
    for i in range(0, 200, 10):
        await harness.service.publish_many(ck, [{"n": i + j} for j in range(10)])
        await asyncio.sleep(0.01)
    async with asyncio.timeout(10):
        await reader
    assert [m["n"] for m in got] == list(range(200))
    frames: AsyncGenerator[bytes, None] = slow.frames()
    try:
        events = [parse_frames(raw)[0] async for raw in frames]
    finally:
        slow.close()
    assert events[0]["event"] == "connected" and events[-1]["event"] == "error"
    assert orjson.loads(events[-1]["data"])["code"] == "SLOW_CONSUMER"


async def test_hub_close_ends_sessions() -> None:
    harness = Harness()
    ck, principal = await harness.setup()
    session = await harness.service.open_subscription(principal, ck)
    frames: AsyncGenerator[bytes, None] = session.frames()
    await anext(frames)
    await harness.service.aclose()
    [error] = parse_frames(await anext(frames))
    assert orjson.loads(error["data"])["code"] == "SHUTDOWN"
    with contextlib.suppress(StopAsyncIteration):
        await anext(frames)
    session.close()
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("export-tail-")]
