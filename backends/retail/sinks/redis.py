"""The `redis` sink: one Redis Stream entry per event, appended with XADD.

Entry layout in `retail_stream` (so readers can filter without parsing JSON):

    event_type     the envelope's event_type
    partition_key  the envelope's partition_key, "" when it has none
    data           the whole envelope as JSON (orjson)

Each batch is `XADD <stream> * ...` per event, the last one with
`MAXLEN ~ <retail_maxlen>`: approximate trimming lets Redis drop whole
macro-nodes, far cheaper than exact trimming, and once per batch keeps the same
bound (the stream holds at least `retail_maxlen` entries and a little more).
`bytes_sent` counts the `data` values delivered.

Why not a redis-py pipeline: per command it costs ~40 µs of Python (argument
encoding in `pack_command`, a timeout context and a host-name string per reply),
which held the sink near 10k events/s. Here a batch takes one connection from
the client's pool, packs its commands with hiredis' C `pack_command`, writes them
at once and reads the replies in a tight loop with the connection's own parser
(hiredis' when installed), under one `socket_timeout` deadline for the whole batch
instead of one per reply. Error replies (WRONGTYPE, OOM, ...) fail their own
event; a broken connection or a timeout fails every event still without a reply
and the connection is dropped, not returned to the pool half-read. The same path
works on fakeredis, whose connections take packed commands too.

With no `redis.url` the sink writes to an in-process fakeredis (the embedded
default); pass `client` to share one client, embedded or real, with other parts
of the process (a client passed in is not closed by the sink). `open()` PINGs,
so an unreachable server is reported at start; afterwards it shows up as failed
batches (the pool reconnects by itself).
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import fakeredis
import hiredis
import orjson
import redis.asyncio as aioredis
from redis import exceptions as rerr

from backends.retail.sinks.base import Event, SendResult, Sink, SinkTestResult, timed_probe
from backends.settings import RedisSettings

_log = logging.getLogger(__name__)


def classify(exc: BaseException) -> tuple[str, bool]:
    """Error kind for the statistics, and whether it means the server is unreachable."""
    if isinstance(exc, rerr.BusyLoadingError):  # reachable, still loading its dataset
        return "throttling", False
    if isinstance(exc, rerr.AuthenticationError | rerr.AuthorizationError | rerr.NoPermissionError):
        return "authentication", True
    if isinstance(exc, rerr.TimeoutError | TimeoutError):
        return "connection_timeout", True
    if isinstance(exc, rerr.ConnectionError | OSError):
        return "connection_error", True
    if isinstance(exc, rerr.OutOfMemoryError):
        return "throttling", False
    if isinstance(exc, rerr.DataError | TypeError):  # orjson.JSONEncodeError is a TypeError
        return "serialization", False
    return "unknown", False


class RedisSink(Sink):
    kind = "redis"

    def __init__(self, settings: RedisSettings, client: aioredis.Redis | None = None) -> None:
        self._settings = settings
        self._client = client
        self._owns_client = client is None

    async def open(self) -> None:
        await self._ensure_client().ping()

    async def send(self, events: list[Event]) -> SendResult:
        result = SendResult()
        commands, sizes = self._commands(events, result)
        if not commands:
            return result
        pool = self._ensure_client().connection_pool
        try:
            connection = await pool.get_connection()
        except Exception as exc:
            _fail(result, len(sizes), exc)
            return result
        replies = 0
        try:
            await connection.send_packed_command(commands, check_health=False)
            async with asyncio.timeout(connection.socket_timeout):
                for size in sizes:
                    try:
                        # inf: no timeout context per reply (redis-py >= 8.1); the deadline
                        # above covers them all.
                        await connection.read_response(disable_decoding=True, timeout=math.inf)
                    except rerr.ResponseError as exc:  # an error reply: this event only
                        _fail(result, 1, exc)
                    else:
                        result.sent += 1
                        result.bytes_sent += size
                    replies += 1
        except Exception as exc:
            _fail(result, len(sizes) - replies, exc)
        finally:
            if replies < len(sizes):  # replies still due: never hand it back half-read
                await connection.disconnect(nowait=True)
            await pool.release(connection)
        return result

    def _commands(self, events: list[Event], result: SendResult) -> tuple[list[bytes], list[int]]:
        """The batch's packed XADDs (trimming on the last) and the size of each `data`."""
        stream = self._settings.retail_stream
        dumps, pack = orjson.dumps, hiredis.pack_command
        commands: list[bytes] = []
        sizes: list[int] = []
        last: tuple[Any, ...] = ()  # the last packed entry's fields
        for event in events:
            try:
                data = dumps(event)
                fields = (
                    b"event_type",
                    event["event_type"],
                    b"partition_key",
                    event.get("partition_key") or b"",
                    b"data",
                    data,
                )
                commands.append(pack((b"XADD", stream, b"*", *fields)))
            except TypeError as exc:
                _fail(result, 1, exc)
                continue
            sizes.append(len(data))
            last = fields
        if commands:
            maxlen = str(self._settings.retail_maxlen)
            commands[-1] = pack((b"XADD", stream, b"MAXLEN", b"~", maxlen, b"*", *last))
        return commands, sizes

    async def close(self) -> None:
        if self._owns_client and self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def test(self) -> SinkTestResult:
        async def probe() -> dict[str, Any]:
            await self._ensure_client().ping()
            return {"url": self._public_url(), "stream": self._settings.retail_stream}

        return await timed_probe(probe)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "url": self._public_url(),
            "stream": self._settings.retail_stream,
            "maxlen": self._settings.retail_maxlen,
        }

    def _ensure_client(self) -> aioredis.Redis:
        """The client, created on first use (redis-py connects lazily anyway)."""
        if self._client is None:
            url = self._settings.url
            self._client = fakeredis.FakeAsyncRedis() if url is None else aioredis.from_url(url)
        return self._client

    def _public_url(self) -> str:
        """The URL without its password; `embedded` for the in-process fakeredis."""
        if self._settings.url is None:
            return "embedded"
        parts = urlsplit(self._settings.url)
        if parts.password is None:
            return self._settings.url
        netloc = parts.netloc.rsplit("@", 1)[1]
        user = f"{parts.username}:***@" if parts.username else ":***@"
        return urlunsplit(parts._replace(netloc=user + netloc))


def _fail(result: SendResult, count: int, exc: BaseException) -> bool:
    """Account `count` failed events; True when the destination is unreachable."""
    return result.fail_with(count, exc, classify, _log)
