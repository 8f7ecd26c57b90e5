"""SSE fan-out: one XREAD loop per stream serves every live client of that stream.

`StreamHub` runs a tail per stream with live clients: a single `XREAD BLOCK` loop
whose every read becomes one `LiveChunk`, rendered to SSE `message` frames once and
offered to each subscriber's bounded queue without waiting. A subscriber that
falls `max_pending` messages behind is closed (`SLOW_CONSUMER`): its queue is
dropped, its client gets an `error` event and the connection ends, to come back
with `Last-Event-ID`. A stalled socket is the HTTP layer's to time out (`api.py`,
`send_timeout_seconds`). Neither can slow the other clients or the tail. The tail
stops when its last subscriber leaves.

`LiveSession` is one client's event source: `connected`, the historical replay as
`batch` events, then live `message` events, `: heartbeat` comments and `error`.
The handover loses and duplicates nothing: the session subscribes first, which
fixes the hub position P after which the tail delivers every entry to it; the
replay reads (start, P] with XRANGE; live entries at or before the last position
covered are skipped.

Choices:
- a `batch` event's `id:` is its last message's cursor; a replay page whose
  messages are all filtered out (`include_test=false`) sends nothing;
- heartbeats go every `heartbeat_seconds` whatever the traffic, and each one first
  re-reads the stream's state, so a stream deactivated, rebuilt or deleted (by any
  process) ends its live connections with an `error` event within one interval;
- during a long replay, live messages queue up to `max_pending`: a replay longer
  than that drops the client, which resumes from its last batch and converges;
- transport timers (heartbeat) run on the event loop's clock; the injected clock
  is for data (timestamps, retention).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field

import orjson

from backends.export.store import BEGINNING, Entry, ExportStore, Position, render

log = logging.getLogger(__name__)

HEARTBEAT = b": heartbeat\n\n"
DEFAULT_MAX_PENDING = 10_000
BLOCK_MS = 2_000
READ_COUNT = 1_000

# (code, message) of a problem that ends a live connection, or None.
StateCheck = Callable[[], Awaitable[tuple[str, str] | None]]


def sse_event(event: bytes, data: bytes, event_id: bytes | None = None) -> bytes:
    """One SSE event; data with line breaks becomes one `data:` line per line."""
    head = b"event: " + event + b"\n"
    if event_id is not None:
        head += b"id: " + event_id + b"\n"
    if b"\n" in data or b"\r" in data:
        return head + b"".join(b"data: " + line + b"\n" for line in data.splitlines()) + b"\n"
    return head + b"data: " + data + b"\n\n"


def error_event(code: str, message: str) -> bytes:
    return sse_event(b"error", orjson.dumps({"error": message, "code": code}))


class LiveChunk:
    """One XREAD's entries, rendered once for every subscriber of the stream."""

    __slots__ = ("entries", "first", "frames", "last", "live_frames")

    def __init__(self, entries: list[Entry], journal: bool) -> None:
        frames = [sse_event(b"message", render(e, journal), e.id) for e in entries]
        self.entries = [(e.pos, e.is_test, f) for e, f in zip(entries, frames, strict=True)]
        self.first = entries[0].pos
        self.last = entries[-1].pos
        self.frames = b"".join(frames)
        self.live_frames = b"".join(f for _, is_test, f in self.entries if not is_test)

    def __len__(self) -> int:
        return len(self.entries)

    def after(self, position: Position, include_test: bool) -> bytes:
        """The frames of the entries after `position` (test ones only if asked)."""
        if self.first > position:  # the usual case: the whole chunk, joined once per stream
            return self.frames if include_test else self.live_frames
        return b"".join(
            frame
            for pos, is_test, frame in self.entries
            if pos > position and (include_test or not is_test)
        )


class SubscriptionClosed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Subscription:
    """A client's bounded queue of live chunks; `position` is the hub's when it joined."""

    def __init__(self, consumer_key: str, position: Position, max_pending: int) -> None:
        self.consumer_key = consumer_key
        self.position = position
        self._max_pending = max_pending
        self._chunks: deque[LiveChunk] = deque()
        self._pending = 0
        self._wakeup = asyncio.Event()
        self._closed: SubscriptionClosed | None = None

    @property
    def closed(self) -> bool:
        return self._closed is not None

    def offer(self, chunk: LiveChunk) -> bool:
        """Queue without waiting; False (and closed) when this would pass the bound."""
        if self._closed is not None:
            return False
        if self._pending + len(chunk) > self._max_pending:
            self.close("SLOW_CONSUMER", "Client too slow: reconnect with Last-Event-ID to resume")
            return False
        self._chunks.append(chunk)
        self._pending += len(chunk)
        self._wakeup.set()
        return True

    def close(self, code: str, message: str) -> None:
        if self._closed is None:
            self._closed = SubscriptionClosed(code, message)
            self._chunks.clear()
            self._pending = 0
            self._wakeup.set()

    async def next(self, within: float) -> LiveChunk | None:
        """The next chunk, None after `within` s without one; raises once closed."""
        if not self._chunks and self._closed is None:
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(within):
                    await self._wakeup.wait()
        if self._closed is not None:
            raise self._closed
        if not self._chunks:
            return None
        chunk = self._chunks.popleft()
        self._pending -= len(chunk)
        return chunk


def _retrieve(future: asyncio.Future[None]) -> None:
    """Mark a failed `ready` as seen: its waiters may all have gone."""
    if not future.cancelled():
        future.exception()


@dataclass(eq=False)
class _Tail:
    consumer_key: str
    journal: bool
    ready: asyncio.Future[None]
    subscribers: set[Subscription] = field(default_factory=set)
    waiters: int = 0
    position: Position = BEGINNING
    task: asyncio.Task[None] | None = None


class StreamHub:
    def __init__(
        self,
        store: ExportStore,
        *,
        max_pending: int = DEFAULT_MAX_PENDING,
        block_ms: int = BLOCK_MS,
        read_count: int = READ_COUNT,
    ) -> None:
        self._store = store
        self._max_pending = max_pending
        self._block_ms = block_ms
        self._read_count = read_count
        self._tails: dict[str, _Tail] = {}

    def subscribers(self, consumer_key: str) -> int:
        tail = self._tails.get(consumer_key)
        return len(tail.subscribers) if tail else 0

    async def subscribe(self, consumer_key: str, *, journal: bool) -> Subscription:
        """Join the stream's tail (starting it if needed) once it knows its position."""
        tail = self._tails.get(consumer_key)
        if tail is None:
            tail = _Tail(consumer_key, journal, asyncio.get_running_loop().create_future())
            tail.ready.add_done_callback(_retrieve)
            self._tails[consumer_key] = tail
            tail.task = asyncio.create_task(self._run(tail), name=f"export-tail-{consumer_key}")
        tail.waiters += 1
        try:
            await asyncio.shield(tail.ready)
        except BaseException:
            tail.waiters -= 1
            if not tail.subscribers and not tail.waiters:
                self._stop(tail)
            raise
        tail.waiters -= 1
        # No await from here on: nothing is dispatched between reading the position and
        # joining, so every entry after `position` reaches this subscription.
        subscription = Subscription(consumer_key, tail.position, self._max_pending)
        tail.subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        tail = self._tails.get(subscription.consumer_key)
        if tail is None:
            return
        tail.subscribers.discard(subscription)
        if not tail.subscribers and not tail.waiters:
            self._stop(tail)

    def _stop(self, tail: _Tail) -> None:
        if self._tails.get(tail.consumer_key) is tail:
            del self._tails[tail.consumer_key]
        if tail.task is not None:
            tail.task.cancel()

    async def aclose(self) -> None:
        tails = list(self._tails.values())
        for tail in tails:
            for subscription in tail.subscribers:
                subscription.close("SHUTDOWN", "Server shutting down: reconnect later")
            self._stop(tail)
        tasks = [t.task for t in tails if t.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, tail: _Tail) -> None:
        key = tail.consumer_key
        try:
            tail.position = (await self._store.state(key)).last
            tail.ready.set_result(None)
            while self._tails.get(key) is tail:  # exits even if a cancel is lost (see close)
                entries = await self._store.read_new(
                    key, tail.position, block_ms=self._block_ms, count=self._read_count
                )
                if entries:
                    self._dispatch(tail, LiveChunk(entries, tail.journal))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("export tail %s failed: %s: %s", key, type(exc).__name__, exc)
            if not tail.ready.done():
                tail.ready.set_exception(exc)
            for subscription in tail.subscribers:
                subscription.close("STREAM_UNAVAILABLE", "Stream storage unavailable: reconnect")
            tail.subscribers.clear()
        finally:
            if not tail.ready.done():
                tail.ready.set_exception(RuntimeError("stream tail stopped"))
            if self._tails.get(key) is tail:
                del self._tails[key]

    @staticmethod
    def _dispatch(tail: _Tail, chunk: LiveChunk) -> None:
        tail.position = chunk.last
        for subscription in list(tail.subscribers):
            if not subscription.offer(chunk):
                tail.subscribers.discard(subscription)


@dataclass(eq=False)
class LiveSession:
    """One SSE client: subscribed and validated; `frames()` is what goes on the wire."""

    hub: StreamHub
    store: ExportStore
    subscription: Subscription
    consumer_key: str
    journal: bool
    start: Position
    include_test: bool
    connected: bytes
    heartbeat_seconds: float
    replay_batch_size: int
    check: StateCheck

    def close(self) -> None:
        """Leave the hub and end `frames()` (idempotent); the HTTP layer calls it however
        the response ends. Ending by state, not only by cancelling the reader, matters:
        Python 3.11's `asyncio.wait_for` (used inside fakeredis) can swallow a cancellation
        that arrives just as its inner wait completes."""
        self.subscription.close("CLOSED", "Connection closed")
        self.hub.unsubscribe(self.subscription)

    async def frames(self) -> AsyncGenerator[bytes, None]:
        yield sse_event(b"connected", self.connected)
        async for frame in self._replay():
            yield frame
        last = max(self.start, self.subscription.position)
        loop = asyncio.get_running_loop()
        beat_at = loop.time() + self.heartbeat_seconds
        while True:
            try:
                chunk = await self.subscription.next(max(beat_at - loop.time(), 0.0))
            except SubscriptionClosed as closed:
                yield error_event(closed.code, closed.message)
                return
            if chunk is None or loop.time() >= beat_at:
                problem = await self.check()
                if problem is not None:
                    yield error_event(*problem)
                    return
                yield HEARTBEAT
                beat_at = loop.time() + self.heartbeat_seconds
            if chunk is not None:
                frames = chunk.after(last, self.include_test)
                last = max(last, chunk.last)
                if frames:
                    yield frames

    async def _replay(self) -> AsyncGenerator[bytes, None]:
        """`batch` events for (start, hub position]: what the tail will not deliver."""
        position, until = self.start, self.subscription.position
        size = self.replay_batch_size
        while position < until:
            entries = await self.store.page(
                self.consumer_key, position, desc=False, count=size, until=until
            )
            if not entries:
                break
            position = entries[-1].pos
            shown = [e for e in entries if self.include_test or not e.is_test]
            if shown:
                body = b"[" + b",".join(render(e, self.journal) for e in shown) + b"]"
                yield sse_event(b"batch", body, shown[-1].id)
            if len(entries) < size:
                break
