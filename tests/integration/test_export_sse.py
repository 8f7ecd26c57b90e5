"""SSE over real sockets on a real Redis: event order, ids, heartbeats, resume, fan-out.

Clients are httpx + httpx-sse (what our client uses), plus raw sockets where the
point is a client that misbehaves or a comment that SSE parsers hide. The server is
uvicorn in the test's loop over a fresh `ExportService` per test.
"""

from __future__ import annotations

import asyncio
import random
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from httpx_sse import ServerSentEvent, aconnect_sse

from backends.common.clock import ManualClock
from backends.common.server import RunningServer, start_server
from backends.export.api import create_app
from backends.export.hub import StreamHub
from backends.export.models import (
    ConnectedInfo,
    CreateApiKeyRequest,
    CreateStreamRequest,
    DataType,
)
from backends.export.service import ExportService
from backends.export.store import ExportStore
from backends.settings import ExportSettings


class Harness:
    def __init__(self, service: ExportService, server: RunningServer, key: str) -> None:
        self.service = service
        self.server = server
        self.key = key
        self.url = f"http://127.0.0.1:{server.port}/api"
        self.http = httpx.AsyncClient(
            base_url=self.url, headers={"X-API-Key": key}, timeout=httpx.Timeout(10, read=10)
        )

    async def stream(self, data_type: DataType = "identifier") -> str:
        name = f"s-{uuid.uuid4().hex[:8]}"
        request = CreateStreamRequest(name=name, data_type=data_type)
        record = await self.service.create_stream(request)
        return record.consumer_key

    async def publish(self, ck: str, start: int, count: int, **extra: Any) -> list[str]:
        return await self.service.publish_many(
            ck, [{"n": n, "is_test": False, **extra} for n in range(start, start + count)]
        )

    def subscribers(self, ck: str) -> int:
        return self.service.hub.subscribers(ck)


Factory = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def make(redis_client: aioredis.Redis) -> AsyncIterator[Factory]:
    running: list[Harness] = []

    async def factory(max_pending: int = 10_000, **settings: Any) -> Harness:
        clock = ManualClock(datetime.now(UTC))
        store = ExportStore(redis_client, prefix=f"t-{uuid.uuid4().hex[:8]}:")
        service = ExportService(
            store,
            ExportSettings(**({"heartbeat_seconds": 30.0} | settings)),
            clock=clock,
            hub=StreamHub(store, max_pending=max_pending),
        )
        server = await start_server(create_app(service, clock=clock), "127.0.0.1", 0)
        key = await service.create_api_key(CreateApiKeyRequest(name="tests"))
        harness = Harness(service, server, f"{key.api_key_id}:{key.api_key_secret}")
        running.append(harness)
        return harness

    yield factory
    for harness in running:
        await harness.http.aclose()
        await harness.service.aclose()
        await harness.server.stop()


async def wait_until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():
            await asyncio.sleep(0.01)


def messages_of(event: ServerSentEvent) -> list[dict[str, Any]]:
    data = orjson.loads(event.data)
    return data if event.event == "batch" else [data]


async def test_event_sequence_connected_batches_then_live(make: Factory) -> None:
    h = await make(replay_batch_size=4)
    ck = await h.stream("journal_entry")
    cursors = await h.publish(ck, 0, 10)
    events: list[ServerSentEvent] = []
    params = {"cursor": "0"}
    async with aconnect_sse(h.http, "GET", f"/consume/{ck}/stream", params=params) as source:
        assert source.response.headers["content-type"].startswith("text/event-stream")
        assert source.response.headers["cache-control"] == "no-cache"
        iterator = source.aiter_sse()
        async with asyncio.timeout(10):
            for _ in range(4):
                events.append(await anext(iterator))
            live = await h.publish(ck, 10, 2)
            events.append(await anext(iterator))
            events.append(await anext(iterator))
    assert [e.event for e in events] == [
        "connected",
        "batch",
        "batch",
        "batch",
        "message",
        "message",
    ]
    connected = ConnectedInfo.model_validate_json(events[0].data)
    assert (connected.cursor, connected.last_cursor, connected.data_type) == (
        "0",
        cursors[-1],
        "journal_entry",
    )
    assert connected.consumer_key == ck and connected.heartbeat_seconds == 30.0
    batches = [messages_of(e) for e in events[1:4]]
    assert [len(b) for b in batches] == [4, 4, 2]
    assert [e.id for e in events[1:]] == [cursors[3], cursors[7], cursors[9], *live]
    received = [m for e in events[1:] for m in messages_of(e)]
    assert [m["n"] for m in received] == list(range(12))
    assert all(m["message_id"] == m["cursor"] for m in received)
    await wait_until(lambda: h.subscribers(ck) == 0)


async def test_default_cursor_is_new_messages_only(make: Factory) -> None:
    h = await make()
    ck = await h.stream()
    cursors = await h.publish(ck, 0, 5)
    async with aconnect_sse(h.http, "GET", f"/consume/{ck}/stream") as source:
        iterator = source.aiter_sse()
        async with asyncio.timeout(10):
            connected = orjson.loads((await anext(iterator)).data)
            assert connected["cursor"] == connected["last_cursor"] == cursors[-1]
            [new] = await h.publish(ck, 5, 1)
            event = await anext(iterator)
    assert (event.event, event.id, orjson.loads(event.data)["n"]) == ("message", new, 5)


async def test_include_test_filters_replay_and_live(make: Factory) -> None:
    h = await make()
    for include, expected in (("false", [0, 2, 4, 6]), ("true", [0, 1, 2, 3, 4, 5, 99, 6])):
        ck = await h.stream()
        await h.service.publish_many(ck, [{"n": n, "is_test": n % 2 == 1} for n in range(6)])
        got: list[int] = []
        params = {"cursor": "0", "include_test": include}
        async with aconnect_sse(h.http, "GET", f"/consume/{ck}/stream", params=params) as source:
            iterator = source.aiter_sse()
            async with asyncio.timeout(10):
                assert (await anext(iterator)).event == "connected"
                got += [m["n"] for m in messages_of(await anext(iterator))]  # the replay
                await h.service.publish_many(ck, [{"n": 99, "is_test": True}, {"n": 6}])
                while len(got) < len(expected):
                    got += [m["n"] for m in messages_of(await anext(iterator))]
        assert got == expected


async def test_heartbeat_comment_and_ids_on_the_wire(make: Factory) -> None:
    h = await make(heartbeat_seconds=0.2)
    ck = await h.stream()
    [cursor] = await h.publish(ck, 0, 1)
    raw = b""
    async with h.http.stream("GET", f"/consume/{ck}/stream", params={"cursor": "0"}) as response:
        async with asyncio.timeout(5):
            async for chunk in response.aiter_bytes():
                raw += chunk
                if raw.count(b": heartbeat\n\n") >= 2:
                    break
    text = raw.decode()
    assert text.startswith("event: connected\ndata: {")
    assert f"event: batch\nid: {cursor}\ndata: [" in text
    assert re.search(r"\n\n: heartbeat\n\n: heartbeat\n\n$", text)


async def test_last_event_id_resumes_without_gap_or_duplicate(make: Factory) -> None:
    h = await make(replay_batch_size=3)
    ck = await h.stream()
    await h.publish(ck, 0, 10)
    seen: list[int] = []
    last_id = None
    async with aconnect_sse(h.http, "GET", f"/consume/{ck}/stream", params={"cursor": "0"}) as s:
        iterator = s.aiter_sse()
        async with asyncio.timeout(10):
            await anext(iterator)
            for _ in range(2):  # two batches of 3, then drop the connection
                event = await anext(iterator)
                seen += [m["n"] for m in messages_of(event)]
                last_id = event.id
    await h.publish(ck, 10, 5)  # published while disconnected
    headers = {"Last-Event-ID": last_id or ""}
    params = {"cursor": "0"}  # Last-Event-ID wins over cursor=
    async with aconnect_sse(
        h.http, "GET", f"/consume/{ck}/stream", params=params, headers=headers
    ) as source:
        iterator = source.aiter_sse()
        async with asyncio.timeout(10):
            connected = orjson.loads((await anext(iterator)).data)
            assert connected["cursor"] == last_id
            while len(seen) < 15:
                seen += [m["n"] for m in messages_of(await anext(iterator))]
    assert seen == list(range(15))


async def test_twenty_reconnects_while_publishing_see_every_message_once(make: Factory) -> None:
    h = await make(replay_batch_size=5)
    ck = await h.stream()
    total = 400
    rng = random.Random(7)

    async def publish() -> None:
        for start in range(0, total, 4):
            await h.publish(ck, start, 4)
            await asyncio.sleep(0.005)

    producer = asyncio.create_task(publish())
    seen: list[int] = []
    last_id: str | None = None
    connections = 0
    async with asyncio.timeout(60):
        while len(seen) < total:
            headers = {"Last-Event-ID": last_id} if last_id else {}
            params = {} if last_id else {"cursor": "0"}
            connections += 1
            async with aconnect_sse(
                h.http, "GET", f"/consume/{ck}/stream", params=params, headers=headers
            ) as source:
                budget = rng.randint(1, 4) if connections <= 25 else 10_000
                async for event in source.aiter_sse():
                    if event.event == "connected":
                        continue
                    assert event.event in ("batch", "message"), event
                    seen += [m["n"] for m in messages_of(event)]
                    last_id = event.id
                    budget -= 1
                    if budget == 0 or len(seen) >= total:
                        break  # drop the connection mid-stream
    await producer
    assert connections > 20
    assert seen == list(range(total))
    await wait_until(lambda: h.subscribers(ck) == 0)


async def test_errors_before_streaming_are_plain_http(make: Factory) -> None:
    h = await make()
    ck = await h.stream()
    for params, headers, status, code in (
        ({"cursor": "bogus"}, {}, 400, "INVALID_CURSOR"),
        ({}, {"Last-Event-ID": "nope"}, 400, "INVALID_CURSOR"),
        ({}, {"X-API-Key": "x:y"}, 401, "INVALID_API_KEY"),
    ):
        response = await h.http.get(f"/consume/{ck}/stream", params=params, headers=headers)
        assert response.status_code == status
        assert response.headers["content-type"] == "application/json"
        assert response.json()["code"] == code
    assert h.subscribers(ck) == 0


async def test_disconnects_are_noticed_at_once(make: Factory) -> None:
    h = await make(heartbeat_seconds=30)  # no write would reveal the disconnect for 30 s
    ck = await h.stream()
    clients = [httpx.AsyncClient(base_url=h.url, headers={"X-API-Key": h.key}) for _ in range(3)]
    try:
        contexts = [aconnect_sse(c, "GET", f"/consume/{ck}/stream") for c in clients]
        sources = [await context.__aenter__() for context in contexts]
        for source in sources:
            assert (await anext(source.aiter_sse())).event == "connected"
        assert h.subscribers(ck) == 3
        for context in contexts:
            await context.__aexit__(None, None, None)
    finally:
        for client in clients:
            await client.aclose()
    await wait_until(lambda: h.subscribers(ck) == 0, within=2)
    await wait_until(
        lambda: not [t for t in asyncio.all_tasks() if t.get_name().startswith("export-tail-")],
        within=2,
    )


async def test_deactivating_a_stream_ends_live_connections(make: Factory) -> None:
    h = await make(heartbeat_seconds=0.2)
    ck = await h.stream()
    async with aconnect_sse(h.http, "GET", f"/consume/{ck}/stream") as source:
        iterator = source.aiter_sse()
        async with asyncio.timeout(5):
            await anext(iterator)
            await h.service.set_active(ck, False)
            event = await anext(iterator)
            assert event.event == "error"
            assert orjson.loads(event.data) == {
                "error": "Stream is inactive",
                "code": "STREAM_INACTIVE",
            }
            with pytest.raises(StopAsyncIteration):
                await anext(iterator)


async def test_one_xread_serves_every_client(make: Factory, redis_client: aioredis.Redis) -> None:
    h = await make()
    ck = await h.stream()
    clients = 10
    received = [0] * clients

    async def listen(index: int) -> None:
        async with aconnect_sse(h.http, "GET", f"/consume/{ck}/stream") as source:
            async for event in source.aiter_sse():
                if event.event == "message":
                    received[index] += 1

    tasks = [asyncio.create_task(listen(i)) for i in range(clients)]
    try:
        await wait_until(lambda: h.subscribers(ck) == clients)
        await redis_client.config_resetstat()
        for n in range(30):
            await h.publish(ck, n, 1)
            await wait_until(lambda n=n: all(r == n + 1 for r in received))
        stats = await redis_client.info("commandstats")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    xread_calls = stats["cmdstat_xread"]["calls"]
    # One read per published message (plus a re-issued idle block now and then), not per client.
    assert 30 <= xread_calls <= 40, xread_calls


async def test_stalled_client_is_dropped_and_never_slows_a_fast_one(make: Factory) -> None:
    h = await make(send_timeout_seconds=0.5)
    ck = await h.stream()
    path = f"/api/consume/{ck}/stream"
    reader, writer = await asyncio.open_connection("127.0.0.1", h.server.port)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: x\r\nX-API-Key: {h.key}\r\n\r\n".encode()
    )  # ... and never read a byte
    await writer.drain()
    await wait_until(lambda: h.subscribers(ck) == 1)
    total, pad = 1500, "x" * 16_000  # ~24 MB: more than the kernel buffers of the stalled socket
    got: list[int] = []

    async def fast() -> None:
        async with aconnect_sse(h.http, "GET", f"/consume/{ck}/stream") as source:
            async for event in source.aiter_sse():
                if event.event == "message":
                    got.append(orjson.loads(event.data)["n"])
                    if len(got) == total:
                        return

    listener = asyncio.create_task(fast())
    await wait_until(lambda: h.subscribers(ck) == 2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for start in range(0, total, 50):
        await h.publish(ck, start, 50, pad=pad)
        await asyncio.sleep(0.01)
    async with asyncio.timeout(30):
        await listener
    elapsed = loop.time() - started
    assert got == list(range(total))
    assert elapsed < 15, elapsed
    # The stalled client was dropped without reading a byte: the server closed its
    # connection, so draining it now ends in EOF instead of a live stream.
    await wait_until(lambda: h.subscribers(ck) == 0, within=5)
    async with asyncio.timeout(10):
        while await reader.read(1 << 20):
            pass
    writer.close()
