"""SSE resume under fire: the connection is cut at random points, dozens of times, while
the feed publishes, and the consumer still sees every message exactly once, in order.

The client reaches the real export API through a TCP proxy that aborts each connection
after a random number of bytes sent to the client (seeded): cuts land before the
response headers, inside the `connected` event, in the middle of a replay `batch` or
of a live `message` frame. The feed keeps publishing meanwhile, so every reconnect
has a gap to replay. What the consumer saw is then compared with the stream itself,
read back by polling from the same start.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Iterator
from typing import Any

import pytest

from backends.export.client import (
    AsyncExportStreamClient,
    ExportStreamClient,
    RetryPolicy,
    StreamEvent,
)
from tests.integration.test_export_client import ExportServer, export_settings

CUTS = 20
FEED_RATE = 200.0  # messages per second per demo stream
CUT_AFTER_BYTES = (50, 60_000)
# Small replay batches, so that most byte budgets get at least one through: a batch
# larger than every budget would be cut every time and the consumer could never catch up.
REPLAY_BATCH = 20


class CuttingProxy:
    """Forwards TCP to `upstream_port`; aborts each connection after a random byte budget."""

    def __init__(self, upstream_port: int, rng: random.Random) -> None:
        self.upstream_port = upstream_port
        self.rng = rng
        self.cuts = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self._transports: set[asyncio.BaseTransport] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and cut what is still connected; each handler then ends itself."""
        if self._server is not None:
            self._server.close()
            for transport in self._transports:
                transport.abort()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        handler.add_done_callback(self._handlers.discard)
        budget = self.rng.randint(*CUT_AFTER_BYTES)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        ends = {writer.transport, up_writer.transport}
        self._transports |= ends

        async def to_server() -> None:
            while data := await reader.read(65536):
                up_writer.write(data)
                await up_writer.drain()

        async def to_client() -> None:
            nonlocal budget
            while budget > 0 and (data := await up_reader.read(65536)):
                writer.write(data[:budget])
                await writer.drain()
                budget -= len(data)
            if budget <= 0:
                self.cuts += 1

        upstream = asyncio.create_task(to_server())
        try:
            await to_client()
        except ConnectionError:
            pass
        finally:
            upstream.cancel()
            writer.transport.abort()  # a reset, not a clean end: as a dropped network would
            up_writer.transport.abort()
            self._transports -= ends
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await upstream


@pytest.fixture(scope="module")
def server(redis_url: str) -> Iterator[ExportServer]:
    running = ExportServer(
        export_settings(
            redis_url, feed_rate=FEED_RATE, feed_test_share=0.2, replay_batch_size=REPLAY_BATCH
        )
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def proxy(server: ExportServer) -> Iterator[CuttingProxy]:
    port = int(server.url.rsplit(":", 1)[1].split("/")[0])
    cutting = CuttingProxy(port, random.Random(20240115))
    server.call(cutting.start())
    try:
        yield cutting
    finally:
        server.call(cutting.stop())


def retry() -> RetryPolicy:
    return RetryPolicy(max_retries=5, initial_delay=0.02, max_delay=0.2, rng=random.Random(7))


def expected_messages(
    server: ExportServer, key: str, start: str, last: str, include_test: bool
) -> list[str]:
    """The stream itself, by polling: every cursor after `start`, up to `last`."""
    cursors: list[str] = []
    cursor = start
    with server.client() as client:
        while last not in cursors:
            page = client.consume_stream(
                key, cursor=cursor, order="asc", limit=1000, include_test=include_test
            )
            cursors += [m["cursor"] for m in page["messages"]]
            cursor = page["next_cursor"] or cursor
            assert page["messages"] or page["has_more"], f"{last} never came back from polling"
    return cursors[: cursors.index(last) + 1]


def check(
    server: ExportServer,
    key: str,
    events: list[StreamEvent],
    include_test: bool,
    reconnects: int,
    cuts: int,
) -> None:
    first = events[0]
    assert first.event == "connected" and first.connected is not None
    start = first.connected.cursor
    assert start is not None
    received = [m["cursor"] for e in events for m in e.messages]
    assert len(received) > 200
    assert len(set(received)) == len(received), "a message was delivered twice"
    assert received == sorted(received, key=lambda c: tuple(map(int, c.split("-"))))
    assert received == expected_messages(server, key, start, received[-1], include_test)
    if not include_test:
        assert not any(m.get("is_test") for e in events for m in e.messages)
    assert cuts >= CUTS and reconnects >= CUTS
    connected = sum(e.event == "connected" for e in events)
    assert connected >= CUTS // 2  # many cuts land after `connected`, mid-stream


def test_sync_listen_survives_random_cuts(server: ExportServer, proxy: CuttingProxy) -> None:
    key = server.demo["identifier"]
    proxied = server.url.replace(f":{proxy.upstream_port}/", f":{proxy.port}/")
    events: list[StreamEvent] = []
    with ExportStreamClient(proxied, server.key_id, server.key_secret, retry=retry()) as client:
        listener = client.listen(key, "$", include_test=True)
        for event in listener:
            events.append(event)
            if listener.state.reconnects >= CUTS + 5 and event.messages:
                break
        listener.close()
    check(server, key, events, True, listener.state.reconnects, proxy.cuts)


async def test_async_listen_survives_random_cuts(server: ExportServer, proxy: CuttingProxy) -> None:
    key = server.demo["identifier"]
    proxied = server.url.replace(f":{proxy.upstream_port}/", f":{proxy.port}/")
    events: list[StreamEvent] = []
    states: list[Any] = []
    client = AsyncExportStreamClient(proxied, server.key_id, server.key_secret, retry=retry())
    async with client:
        listener = client.listen(key, "$", on_state=lambda s: states.append(s.status))
        async for event in listener:
            events.append(event)
            if listener.state.reconnects >= CUTS + 5 and event.messages:
                break
        await listener.aclose()
    check(server, key, events, False, listener.state.reconnects, proxy.cuts)
    assert states[-1] == "closed" and "failed" not in states
