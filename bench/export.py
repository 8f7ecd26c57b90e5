"""Export streams: polling throughput and SSE fan-out latency, each next to bare redis-py.

The export API (`start_export` under uvicorn, a real Redis) runs in a child process,
so the clients measured here do not share its interpreter. Messages are the
synthetic feed's identifier changes (~1.5 KB of JSON each).

1. Polling: `ExportStreamClient.consume_stream(limit=1000)` reads a pre-filled
   stream from "0" to the end, pass after pass, for `--seconds`; messages/s. Then
   the same passes through `iter_messages`, which sends the next poll while it
   parses the current page (a single consumer's round trips otherwise leave both
   the server and the client idle half the time). The
   baseline is a bare redis-py `XREAD COUNT 1000` loop over the same Redis stream
   that also decodes every payload, as the client decodes the page.
2. SSE fan-out: `--clients` SSE connections on one stream while the server
   publishes `--rate` messages/s for `--seconds`. Latency = receipt time minus the
   entry id's milliseconds (Redis's clock at XADD; same host, same clock), for
   every message, on `--measured` lean probes (raw socket, `id:` lines picked out)
   and on one `AsyncExportStreamClient.listen` (full parse, as the console). The
   other clients only drain their sockets: 50 clients x 5k msg/s x 1.5 KB is
   ~375 MB/s, which no Python process parses next to the server on 2 cores, and
   a measuring process that falls behind measures itself. The server cannot tell
   the kinds apart, so it does the whole fan-out. The baseline is `--measured` + 1
   bare redis-py `XREAD BLOCK` loops on the same stream at the same rate (50 such
   loops in one process do not keep up: each parses every entry itself).
3. Polling also runs `--pollers` async consumers at once: the server's capacity
   rather than one client's round trips.

Real Redis: STREAMOPS_TEST_REDIS if set (streams get unique names; nothing is
flushed), else a throwaway redis-server from tests/services.py. Every phase is
bounded by --seconds; the run by a few times that.

    .venv/bin/python bench/export.py [--seconds 10] [--poll-messages 50000]
        [--pollers 4] [--clients 50] [--measured 5] [--rate 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import multiprocessing
import os
import random
import re
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import redis
import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backends.common.clock import SystemClock  # noqa: E402
from backends.common.server import start_server  # noqa: E402
from backends.export.api import start_export  # noqa: E402
from backends.export.client import AsyncExportStreamClient, ExportStreamClient  # noqa: E402
from backends.export.feed import SyntheticFeed  # noqa: E402
from backends.export.models import CreateApiKeyRequest, CreateStreamRequest  # noqa: E402
from backends.settings import ExportSettings, RedisSettings, Settings  # noqa: E402

SEED = 42
PAGE = 1000
TICK_SECONDS = 0.005
ID_LINE = re.compile(rb"\nid: (\d+)-")  # a literal prefix: memchr-fast, unlike "^" + MULTILINE
TARGET_POLL_RATE = 50_000
TARGET_P99_MS = 100.0


@dataclass
class Info:
    url: str
    key_id: str
    key_secret: str
    poll_key: str
    live_key: str
    poll_data_key: str
    live_data_key: str


@dataclass
class Latency:
    """Messages received per whole-millisecond latency (entry ids have 1 ms resolution)."""

    label: str
    hist: Counter[int] = field(default_factory=Counter)
    expected: int = 0

    @property
    def received(self) -> int:
        return sum(self.hist.values())

    def pct(self, q: float) -> float:
        rank, seen = q * self.received, 0
        for ms in sorted(self.hist):
            seen += self.hist[ms]
            if seen > rank:
                return ms
        return float("nan")

    def line(self) -> str:
        worst = max(self.hist, default=float("nan"))
        return (
            f"{self.label:44s} {self.received:>10,d}/{self.expected:<10,d}"
            f" p50 {self.pct(0.5):5.0f} ms  p99 {self.pct(0.99):5.0f} ms  max {worst:5.0f} ms"
        )


# -- the server, in a child process -------------------------------------------------------


def serve(redis_url: str, poll_messages: int, conn: Connection) -> None:
    asyncio.run(_serve(redis_url, poll_messages, conn))


async def _serve(redis_url: str, poll_messages: int, conn: Connection) -> None:
    settings = Settings(
        redis=RedisSettings(url=redis_url),
        export=ExportSettings(
            admin_key="bench", feed_rate=0, rate_limit_per_minute=10**9, max_length=10**7
        ),
    )
    backend = await start_export(settings, SystemClock())
    server = await start_server(backend.app, "127.0.0.1", 0)
    service, suffix = backend.service, uuid.uuid4().hex[:8]
    feed = SyntheticFeed(random.Random(SEED), SystemClock(), test_share=0.0)
    pool = [feed.identifier_change() for _ in range(PAGE)]
    keys = []
    for name in ("poll", "live"):
        request = CreateStreamRequest(name=f"bench-{name}-{suffix}", data_type="identifier")
        keys.append((await service.create_stream(request)).consumer_key)
    poll_key, live_key = keys
    for start in range(0, poll_messages, PAGE):
        await service.publish_many(poll_key, pool[: min(PAGE, poll_messages - start)])
    api_key = await service.create_api_key(CreateApiKeyRequest(name=f"bench-{suffix}"))
    conn.send(
        Info(
            f"http://127.0.0.1:{server.port}/api",
            api_key.api_key_id,
            api_key.api_key_secret,
            poll_key,
            live_key,
            service.store.data_key(poll_key),
            service.store.data_key(live_key),
        )
    )
    try:
        while (command := await asyncio.to_thread(conn.recv))[0] == "publish":
            _, rate, seconds = command
            conn.send(await _publish(service.publish_many, live_key, pool, rate, seconds))
    finally:
        with contextlib.suppress(Exception):
            await backend.service.store.redis.delete(
                service.store.data_key(poll_key), service.store.data_key(live_key)
            )
        await backend.aclose()
        await server.stop()


async def _publish(
    publish: Any, key: str, pool: list[dict[str, Any]], rate: float, seconds: float
) -> int:
    """`rate` messages/s for `seconds`, in 5 ms ticks; returns how many were published."""
    loop = asyncio.get_running_loop()
    started, sent = loop.time(), 0
    while (elapsed := loop.time() - started) < seconds:
        due = int(elapsed * rate) - sent
        while due > 0:
            batch = pool[: min(due, PAGE)]
            await publish(key, batch)
            sent += len(batch)
            due -= len(batch)
        await asyncio.sleep(TICK_SECONDS)
    return sent


# -- polling ----------------------------------------------------------------------------------


def bench_polling(info: Info, seconds: float) -> tuple[int, float]:
    """Passes over the stream from "0" with limit 1000 until `seconds` (at least one pass)."""
    count, started = 0, time.perf_counter()
    with ExportStreamClient(info.url, info.key_id, info.key_secret, timeout=60) as client:
        while count == 0 or time.perf_counter() - started < seconds:
            cursor: str | None = "0"
            while cursor is not None:
                page = client.consume_stream(info.poll_key, cursor=cursor, limit=PAGE)
                count += len(page["messages"])
                cursor = page["next_cursor"] if page["has_more"] else None
    return count, time.perf_counter() - started


def bench_pipelined_polling(info: Info, seconds: float, size: int) -> tuple[int, float]:
    """The same passes through `iter_messages`, which sends the next poll while it parses."""
    count, started = 0, time.perf_counter()
    with ExportStreamClient(info.url, info.key_id, info.key_secret, timeout=60) as client:
        while count == 0 or time.perf_counter() - started < seconds:
            messages = client.iter_messages(info.poll_key, cursor="0", limit=PAGE)
            for seen, _ in enumerate(messages, 1):
                if seen == size:
                    break
            messages.close()
            count += size
    return count, time.perf_counter() - started


async def bench_concurrent_polling(info: Info, seconds: float, pollers: int) -> tuple[int, float]:
    """`pollers` consumers, each passing over the stream on its own: what the server serves."""
    started = time.perf_counter()

    async def poller(client: AsyncExportStreamClient) -> int:
        count = 0
        while count == 0 or time.perf_counter() - started < seconds:
            cursor: str | None = "0"
            while cursor is not None:
                page = await client.consume_stream(info.poll_key, cursor=cursor, limit=PAGE)
                count += len(page["messages"])
                cursor = page["next_cursor"] if page["has_more"] else None
        return count

    async with AsyncExportStreamClient(
        info.url, info.key_id, info.key_secret, timeout=60
    ) as client:
        counts = await asyncio.gather(*(poller(client) for _ in range(pollers)))
    return sum(counts), time.perf_counter() - started


def bench_xread_polling(redis_url: str, info: Info, seconds: float) -> tuple[int, float]:
    client = redis.Redis.from_url(redis_url)
    count, started = 0, time.perf_counter()
    try:
        while count == 0 or time.perf_counter() - started < seconds:
            last = "0"
            while reply := client.xread({info.poll_data_key: last}, count=PAGE):
                entries = reply[0][1]
                for _, fields in entries:
                    orjson.loads(fields[b"d"])
                count += len(entries)
                last = entries[-1][0]
    finally:
        client.close()
    return count, time.perf_counter() - started


# -- SSE fan-out --------------------------------------------------------------------------------


def _request(info: Info) -> bytes:
    """The SSE request, as any HTTP/1.1 client sends it."""
    parts = urlsplit(info.url)
    return (
        f"GET {parts.path}/consume/{info.live_key}/stream?cursor=$ HTTP/1.1\r\n"
        f"Host: {parts.netloc}\r\nX-API-Key: {info.key_id}:{info.key_secret}\r\n"
        "Accept: text/event-stream\r\n\r\n"
    ).encode()


async def _probe(info: Info, ready: asyncio.Event, hist: Counter[int], _: asyncio.Event) -> None:
    """A lean SSE client: one GET over a raw socket; latencies from the `id:` lines."""
    parts = urlsplit(info.url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(_request(info))
    buffer = b""
    try:
        while data := await reader.read(1 << 20):
            now = time.time_ns() // 1_000_000
            buffer += data
            if not ready.is_set() and b"event: connected" in buffer:
                ready.set()
            end = buffer.rfind(b"\n\n")
            if end < 0:
                continue
            complete, buffer = buffer[:end], buffer[end + 2 :]
            for ms, count in Counter(ID_LINE.findall(complete)).items():
                hist[now - int(ms)] += count
    finally:
        writer.close()


async def _listener(info: Info, ready: asyncio.Event, hist: Counter[int], _: asyncio.Event) -> None:
    """Our client, as the console uses it: every event parsed, every message decoded."""
    async with AsyncExportStreamClient(info.url, info.key_id, info.key_secret) as client:
        async for event in client.listen(info.live_key, "$"):
            now = time.time_ns() // 1_000_000
            if event.event == "connected":
                ready.set()
            for message in event.messages:
                hist[now - int(message["cursor"].split("-", 1)[0])] += 1


async def _xread_reader(
    redis_url: str, info: Info, ready: asyncio.Event, hist: Counter[int], stop: asyncio.Event
) -> None:
    client = aioredis.from_url(redis_url)
    try:
        last = (await client.xinfo_stream(info.live_data_key))["last-generated-id"]
        ready.set()
        while not stop.is_set():
            reply = await client.xread({info.live_data_key: last}, count=PAGE, block=100)
            now = time.time_ns() // 1_000_000
            for _, entries in reply:
                for eid, _ in entries:
                    hist[now - int(eid.split(b"-", 1)[0])] += 1
                last = entries[-1][0]
    finally:
        await client.aclose()


async def _fan_out(
    conn: Connection, args: argparse.Namespace, readers: list[tuple[str, Any]]
) -> list[Latency]:
    """Start every reader, wait until all are connected, publish, drain, collect."""
    stop = asyncio.Event()
    results = [(label, Counter[int](), asyncio.Event(), factory) for label, factory in readers]
    tasks = [asyncio.create_task(factory(ready, hist, stop)) for _, hist, ready, factory in results]
    try:
        async with asyncio.timeout(30):
            await asyncio.gather(*(ready.wait() for _, _, ready, _ in results))
        conn.send(("publish", args.rate, args.seconds))
        published: int = await asyncio.to_thread(conn.recv)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(
            sum(hist.values()) < published for _, hist, _, _ in results
        ):
            await asyncio.sleep(0.05)
    finally:
        # Readers that can end on their own do (a redis-py read cancelled mid-reply can
        # hang its client's close); the rest are cancelled.
        stop.set()
        await asyncio.wait(tasks, timeout=5)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    merged: dict[str, Latency] = {}
    for label, hist, _, _ in results:
        latency = merged.setdefault(label, Latency(label))
        latency.hist.update(hist)
        latency.expected += published
    return list(merged.values())


class _Sink(asyncio.BufferedProtocol):
    """An SSE client that only drains its socket: the load of a client, none of the parsing."""

    def __init__(self, ready: asyncio.Event) -> None:
        self.ready = ready
        self.received = 0
        self._buffer = bytearray(1 << 18)

    def get_buffer(self, sizehint: int) -> bytearray:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.received += nbytes
        self.ready.set()


async def _open_sink(info: Info) -> tuple[asyncio.Transport, _Sink]:
    parts = urlsplit(info.url)
    ready = asyncio.Event()
    loop = asyncio.get_running_loop()
    transport, sink = await loop.create_connection(lambda: _Sink(ready), parts.hostname, parts.port)
    transport.write(_request(info))
    await asyncio.wait_for(ready.wait(), 30)
    return transport, sink


async def bench_sse(
    info: Info, conn: Connection, args: argparse.Namespace
) -> tuple[list[Latency], int]:
    """Our client, `--measured` probes and byte sinks up to `--clients`; bytes the sinks got."""
    sinks = [await _open_sink(info) for _ in range(args.clients - 1 - args.measured)]
    readers: list[tuple[str, Any]] = [
        ("AsyncExportStreamClient.listen (1 client)", lambda r, h, s: _listener(info, r, h, s))
    ] + [
        (f"SSE raw probes ({args.measured} clients)", lambda r, h, s: _probe(info, r, h, s))
    ] * args.measured
    try:
        return await _fan_out(conn, args, readers), sum(sink.received for _, sink in sinks)
    finally:
        for transport, _ in sinks:
            transport.abort()


async def bench_xread_fan_out(
    redis_url: str, info: Info, conn: Connection, args: argparse.Namespace
) -> list[Latency]:
    loops = args.measured + 1
    label = f"bare redis-py XREAD BLOCK ({loops} loops)"
    reader = (label, lambda r, h, s: _xread_reader(redis_url, info, r, h, s))
    return await _fan_out(conn, args, [reader] * loops)


# -- main -------------------------------------------------------------------------------------


@contextlib.contextmanager
def _redis() -> Iterator[str]:
    if existing := os.environ.get("STREAMOPS_TEST_REDIS"):
        yield existing
        return
    services = importlib.import_module("tests.services")
    server = services.start_redis()
    try:
        yield server.url
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per phase")
    parser.add_argument("--poll-messages", type=int, default=50_000, help="stream size to poll")
    parser.add_argument("--pollers", type=int, default=4, help="concurrent pollers, phase 2")
    parser.add_argument("--clients", type=int, default=50, help="SSE clients in all")
    parser.add_argument(
        "--measured", type=int, default=5, help="SSE probes timing every message (and XREAD loops)"
    )
    parser.add_argument("--rate", type=float, default=5_000.0, help="messages/s published")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    with _redis() as redis_url:
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        child = context.Process(target=serve, args=(redis_url, args.poll_messages, theirs))
        child.start()
        try:
            if not ours.poll(120):
                raise SystemExit("the export server did not start within 120 s")
            info: Info = ours.recv()
            polled, poll_seconds = bench_polling(info, args.seconds)
            piped, piped_seconds = bench_pipelined_polling(info, args.seconds, args.poll_messages)
            together, together_seconds = asyncio.run(
                bench_concurrent_polling(info, args.seconds, args.pollers)
            )
            base, base_seconds = bench_xread_polling(redis_url, info, args.seconds)
            sse, sunk = asyncio.run(bench_sse(info, ours, args))
            xread = asyncio.run(bench_xread_fan_out(redis_url, info, ours, args))
        finally:
            with contextlib.suppress(OSError):
                ours.send(("stop",))
            child.join(30)
            if child.is_alive():
                child.terminate()

    # The figures are only as good as the machine is quiet: show how busy it was.
    print(f"{os.cpu_count()} CPUs, load average {load_before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after")  # fmt: skip
    poll_rate, base_rate = polled / poll_seconds, base / base_seconds
    together_rate, piped_rate = together / together_seconds, piped / piped_seconds
    best = max(poll_rate, together_rate, piped_rate)
    print(f"polling, limit {PAGE}, {args.poll_messages:,} messages per pass")
    print(f"  ExportStreamClient, 1 consumer        {polled:>10,d} msgs {poll_rate:>10,.0f} msg/s")
    print(f"  ExportStreamClient.iter_messages      {piped:>10,d} msgs {piped_rate:>10,.0f} msg/s"
          "  (pipelined, 1 consumer)")  # fmt: skip
    print(f"  AsyncExportStreamClient, {args.pollers} consumers  "
          f"{together:>10,d} msgs {together_rate:>10,.0f} msg/s")  # fmt: skip
    print(f"  bare redis-py XREAD COUNT {PAGE}       {base:>10,d} msgs {base_rate:>10,.0f} msg/s")
    print(f"  ratio to XREAD: 1 consumer {poll_rate / base_rate:.2f}, "
          f"pipelined {piped_rate / base_rate:.2f}, "
          f"{args.pollers} consumers {together_rate / base_rate:.2f}   "
          f"target >= {TARGET_POLL_RATE:,} msg/s: "
          f"{'met' if best >= TARGET_POLL_RATE else 'MISSED'}")  # fmt: skip
    print(f"SSE fan-out, {args.clients} clients, {args.rate:,.0f} msg/s for {args.seconds:.0f} s")
    for latency in [*sse, *xread]:
        print("  " + latency.line())
    sinks = args.clients - 1 - args.measured
    if sinks:
        print(f"  SSE byte sinks ({sinks} clients): {sunk / sinks / 1e6:,.1f} MB each")
    probes = sse[-1]
    print(
        f"  p99 ratio SSE probes / XREAD {probes.pct(0.99) / xread[0].pct(0.99):.2f}   "
        f"target p99 <= {TARGET_P99_MS:.0f} ms: "
        f"{'met' if probes.pct(0.99) <= TARGET_P99_MS else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
