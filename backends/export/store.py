"""The Redis layout of the export streams and the commands that use it.

Everything lives in Redis, so any number of API processes serve the same streams,
keys and stored cursors. Keys (prefix `streamops:export:` by default):

    {p}stream:{consumer_key}   hash: the stream record (name, data_type, retention, flags)
    {p}names                   hash: stream name -> consumer key (names are unique)
    {p}data:{consumer_key}     the Redis stream of messages
    {p}key:{api_key_id}        hash: name, salt, digest, consumer_keys (JSON), created_at
    {p}cursors:{consumer_key}  hash: api_key_id -> where that key's polling resumes

Each entry has two fields: `t` (b"1" for a test message) so that filtering needs
no JSON parsing, and `d`, the message as JSON without `cursor`/`message_id`. Those
are the entry id, spliced into the JSON bytes when a message is read (`render`):
no parse and re-dump per message on the hot paths.

Cursors are stream ids compared as `(ms, seq)` pairs; `(0, 0)` is the beginning
(Redis never assigns 0-0, so "after 0-0" is everything).

Trimming: the last XADD of a batch carries `MAXLEN ~ max_length` (approximate:
Redis drops whole macro-nodes, far cheaper than exact trimming), and streams with
a `max_age_seconds` get `XTRIM MINID ~` in the same pipeline. Entries are only
ever removed from the head, never deleted in the middle: `StreamState.lost_after`
relies on that to tell whether a cursor fell behind trimmed data. Needs Redis 7
(`entries-added` in XINFO STREAM, exclusive `(` ranges); the client must return
bytes (`decode_responses=False`, the default).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, NamedTuple

import redis.asyncio as aioredis
from redis.exceptions import ResponseError
from redis.typing import EncodableT, FieldT

DEFAULT_PREFIX = "streamops:export:"
Position = tuple[int, int]
BEGINNING: Position = (0, 0)

_ID = re.compile(r"([0-9]{1,20})(?:-([0-9]{1,20}))?")
_MAX_PART = 2**64 - 1


def parse_id(text: str) -> Position | None:
    """`"1735689600000-5"` -> (1735689600000, 5); a bare `ms` means `ms-0`; None if invalid."""
    match = _ID.fullmatch(text)
    if match is None:
        return None
    ms, seq = int(match[1]), int(match[2] or 0)
    if ms > _MAX_PART or seq > _MAX_PART:
        return None
    return ms, seq


def cursor_text(position: Position) -> str:
    """The cursor a client sees: `"0"` for the beginning, else the stream id."""
    return "0" if position == BEGINNING else f"{position[0]}-{position[1]}"


class Entry(NamedTuple):
    id: bytes
    is_test: bool
    data: bytes

    @property
    def pos(self) -> Position:
        """The id as a comparable pair; parsed only where needed (not on the poll path)."""
        return _position(self.id)


def _position(raw: bytes) -> Position:
    ms, _, seq = raw.partition(b"-")
    return int(ms), int(seq)


def render(entry: Entry, journal: bool) -> bytes:
    """The message JSON as consumers get it: the entry id as `cursor` (journal entries
    also as `message_id`, first, as in the spec's samples), then the stored fields."""
    eid = entry.id
    if journal:
        return b'{"message_id":"' + eid + b'","cursor":"' + eid + b'",' + entry.data[1:]
    return b'{"cursor":"' + eid + b'",' + entry.data[1:]


def _entries(reply: list[Any] | None) -> list[Entry]:
    return [Entry(eid, fields.get(b"t") == b"1", fields[b"d"]) for eid, fields in reply or ()]


@dataclass(frozen=True)
class StreamState:
    """What XINFO STREAM says about a stream's extent (all zero when it does not exist)."""

    length: int = 0
    first: Position | None = None
    last: Position = BEGINNING  # last generated id, even when trimmed away since
    entries_added: int = 0

    @property
    def last_cursor(self) -> str | None:
        return cursor_text(self.last) if self.entries_added else None

    @property
    def first_cursor(self) -> str | None:
        return cursor_text(self.first) if self.first is not None else None

    def lost_after(self, position: Position) -> bool:
        """Were entries after `position` trimmed away, so reading on from it leaves a gap?

        Trimming only removes the head, so that is: something was trimmed and the
        position is before the first entry left (before the last id, if none is left).
        """
        if self.entries_added <= self.length:
            return False
        return position < (self.first if self.first is not None else self.last)

    @classmethod
    def from_xinfo(cls, info: dict[str, Any]) -> StreamState:
        first = info.get("first-entry")
        length = int(info["length"])
        return cls(
            length=length,
            first=_position(first[0]) if first else None,
            last=_position(info["last-generated-id"]),
            entries_added=int(info.get("entries-added", length)),
        )


def _state(reply: Any) -> StreamState:
    if isinstance(reply, ResponseError):
        if "no such key" in str(reply).lower():
            return StreamState()
        raise reply
    return StreamState.from_xinfo(reply)


def _decode(mapping: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in mapping.items()}


class ExportStore:
    def __init__(self, redis: aioredis.Redis, prefix: str = DEFAULT_PREFIX) -> None:
        self.redis = redis
        self._prefix = prefix
        self._names = f"{prefix}names"

    def data_key(self, consumer_key: str) -> str:
        return f"{self._prefix}data:{consumer_key}"

    def _stream_key(self, consumer_key: str) -> str:
        return f"{self._prefix}stream:{consumer_key}"

    def _cursors_key(self, consumer_key: str) -> str:
        return f"{self._prefix}cursors:{consumer_key}"

    def _api_key(self, api_key_id: str) -> str:
        return f"{self._prefix}key:{api_key_id}"

    # -- stream records ----------------------------------------------------

    async def add_stream(self, consumer_key: str, name: str, fields: dict[str, str]) -> bool:
        """Store a new stream record; False (and nothing stored) if the name is taken."""
        if not await self.redis.hsetnx(self._names, name, consumer_key):
            return False
        await self.redis.hset(self._stream_key(consumer_key), mapping=fields)
        return True

    async def stream(self, consumer_key: str) -> dict[str, str] | None:
        fields = await self.redis.hgetall(self._stream_key(consumer_key))
        return _decode(fields) if fields else None

    async def consumer_key_for(self, name: str) -> str | None:
        value = await self.redis.hget(self._names, name)
        return value.decode() if value is not None else None

    async def update_stream(self, consumer_key: str, fields: dict[str, str]) -> None:
        await self.redis.hset(self._stream_key(consumer_key), mapping=fields)

    async def stream_and_cursor(
        self, consumer_key: str, api_key_id: str
    ) -> tuple[dict[str, str] | None, str | None]:
        """The stream record and this API key's stored cursor, in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self._stream_key(consumer_key))
            pipe.hget(self._cursors_key(consumer_key), api_key_id)
            fields, cursor = await pipe.execute()
        return (_decode(fields) if fields else None), (cursor.decode() if cursor else None)

    async def save_cursor(self, consumer_key: str, api_key_id: str, cursor: str) -> None:
        await self.redis.hset(self._cursors_key(consumer_key), api_key_id, cursor)

    # -- API keys ----------------------------------------------------------

    async def put_api_key(self, api_key_id: str, fields: dict[str, str]) -> None:
        """Create or replace a key (a replaced key's old secret stops working at once)."""
        key = self._api_key(api_key_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping=fields)
            await pipe.execute()

    async def api_key(self, api_key_id: str) -> dict[str, str] | None:
        fields = await self.redis.hgetall(self._api_key(api_key_id))
        return _decode(fields) if fields else None

    # -- messages ----------------------------------------------------------

    async def append(
        self,
        consumer_key: str,
        payloads: list[tuple[bool, bytes]],
        *,
        max_length: int,
        min_id: Position | None,
    ) -> list[str]:
        """XADD each (is_test, json) in order, then trim; returns the new entry ids."""
        if not payloads:
            return []
        key = self.data_key(consumer_key)
        last = len(payloads) - 1
        async with self.redis.pipeline(transaction=False) as pipe:
            for index, (is_test, data) in enumerate(payloads):
                fields: dict[FieldT, EncodableT] = {b"t": b"1" if is_test else b"0", b"d": data}
                maxlen = max_length if index == last else None
                pipe.xadd(key, fields, maxlen=maxlen, approximate=True)
            if min_id is not None:
                pipe.xtrim(key, minid=cursor_text(min_id), approximate=True)
            replies = await pipe.execute()
        return [eid.decode() for eid in replies[: len(payloads)]]

    async def trim(self, consumer_key: str, *, max_length: int, min_id: Position | None) -> None:
        """Exact trimming to the retention policy (what a rebuild does)."""
        key = self.data_key(consumer_key)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xtrim(key, maxlen=max_length, approximate=False)
            if min_id is not None:
                pipe.xtrim(key, minid=cursor_text(min_id), approximate=False)
            await pipe.execute()

    async def state(self, consumer_key: str) -> StreamState:
        try:
            return StreamState.from_xinfo(
                await self.redis.xinfo_stream(self.data_key(consumer_key))
            )
        except ResponseError as exc:
            return _state(exc)

    async def page(
        self,
        consumer_key: str,
        bound: Position | None,
        *,
        desc: bool,
        count: int,
        until: Position | None = None,
    ) -> list[Entry]:
        """Up to `count` entries strictly after `bound` (asc, up to `until` inclusive) or
        strictly before it (desc, newest first); `bound` None = from the newest (desc)."""
        key = self.data_key(consumer_key)
        if desc:
            top = "+" if bound is None else f"({cursor_text(bound)}"
            reply = await self.redis.xrevrange(key, top, "-", count=count)
        else:
            low = f"({cursor_text(bound or BEGINNING)}"
            high = "+" if until is None else cursor_text(until)
            reply = await self.redis.xrange(key, low, high, count=count)
        return _entries(reply)

    async def state_and_page(
        self, consumer_key: str, bound: Position | None, *, desc: bool, count: int
    ) -> tuple[StreamState, list[Entry]]:
        """`state` and `page` atomically (MULTI), so no trim can fall between them."""
        key = self.data_key(consumer_key)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xinfo_stream(key)
            if desc:
                top = "+" if bound is None else f"({cursor_text(bound)}"
                pipe.xrevrange(key, top, "-", count=count)
            else:
                pipe.xrange(key, f"({cursor_text(bound or BEGINNING)}", "+", count=count)
            info, reply = await pipe.execute(raise_on_error=False)
        if isinstance(reply, Exception):
            raise reply
        return _state(info), _entries(reply)

    async def read_new(
        self, consumer_key: str, after: Position, *, block_ms: int, count: int
    ) -> list[Entry]:
        """Entries after `after`, waiting up to `block_ms` for some (XREAD BLOCK)."""
        key = self.data_key(consumer_key)
        reply = await self.redis.xread({key: cursor_text(after)}, count=count, block=block_ms)
        return _entries(reply[0][1]) if reply else []
