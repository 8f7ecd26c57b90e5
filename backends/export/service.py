"""The export-stream service: the domain core behind `api.py`, with no HTTP in it.

Streams, API keys and stored cursors live in Redis (`store.py`); live SSE clients
share one XREAD per stream (`hub.py`). Failures raise `ExportError`, which carries
the status, the `UPPER_SNAKE` code and any extra body fields of the wire contract.

Choices where export-stream.md is silent:
- checks run in this order: API key (401 INVALID_API_KEY) -> stream exists (404
  STREAM_NOT_FOUND: an unknown consumer key is not a credentials problem, and a
  distinct status lets a client say which of the two to fix) -> key allowed on it
  (403) -> active (401 STREAM_INACTIVE) -> not rebuilding (503, Retry-After 10);
  `info` answers for inactive and rebuilding streams too (it reports `is_active`);
- cursors: `"0"` (or `0-0`) is the beginning, `"$"` the newest position, an id
  (`ms-seq`, or a bare `ms` meaning `ms-0`) is exclusive; an empty `cursor=` counts
  as none; anything else is 400 INVALID_CURSOR;
- a poll scans at most `limit` entries: with `include_test=false` the test ones are
  left out but still advance `next_cursor`, so a page may hold fewer than `limit`
  messages while `has_more` is true;
- `next_cursor` is the last entry scanned; when none was, the cursor the poll
  started from (`"0"` for the beginning), or null for a `desc` poll from the newest
  of an empty stream; `desc` pages newest first and `next_cursor` goes older;
- the stored resume position (per consumer key and API key) is written by every
  `asc` poll and used by an `asc` poll without a cursor (`"0"` the first time);
  `desc` polls browse and neither read nor move it (without a cursor they start at
  the newest);
- 410/416 only when data after the cursor was trimmed away (something was trimmed
  and the cursor is before the first entry left): 410 CURSOR_EXPIRED if the cursor
  is also older than `max_age_seconds`, else 416 CURSOR_BEFORE_START with
  `stream_first_id` (null if nothing is left). A cursor before the start of a
  stream that never lost anything is served. Resuming with `"0"` loses nothing
  more; `stream_first_id` as a cursor starts after that entry. A cursor sitting
  exactly on the last trimmed entry also gets 416 (Redis does not say which ids
  it trimmed);
- SSE without a cursor starts at `"$"`; `Last-Event-ID` wins over `cursor=`;
- publishing works on inactive and rebuilding streams (producers do not stop);
  `cursor`/`message_id` in a published message are dropped (the server assigns them);
- retention by age compares entry ids with the injected clock;
- a rebuild marks the stream rebuilding, trims it exactly to its retention, and
  clears the mark (also on failure);
- demo mode (`bootstrap_demo`): consumer keys and the key id come from
  `random.Random(seed)`, the secret is fresh at each start; `export.api_key_id` /
  `export.api_key_secret`, when configured, are used instead. A re-run on a real
  Redis reuses the streams (by name) and replaces the key's secret.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from backends.common.clock import Clock, iso_z
from backends.common.errors import ServiceError
from backends.endpoints import ExportCredentials, ExportStream
from backends.export.auth import (
    HashedSecret,
    admin_key_matches,
    hash_secret,
    new_key_id,
    new_secret,
    parse_api_key,
    verify_secret,
)
from backends.export.hub import LiveSession, StreamHub
from backends.export.models import (
    ApiKeyCreated,
    ConnectedInfo,
    CreateApiKeyRequest,
    CreateStreamRequest,
    DataType,
    Retention,
    StreamInfo,
    StreamRecord,
    SuggestedCursors,
)
from backends.export.store import (
    BEGINNING,
    ExportStore,
    Position,
    StreamState,
    cursor_text,
    parse_id,
    render,
)
from backends.settings import ExportSettings

MAX_LIMIT = 1000
REBUILD_RETRY_SECONDS = 10
DEMO_STREAMS: tuple[tuple[str, DataType], ...] = (
    ("demo-journal-entries", "journal_entry"),
    ("demo-identifiers", "identifier"),
)
NEWEST: Literal["$"] = "$"
Cursor = Position | Literal["$"]


class ExportError(ServiceError):
    """An error of the wire contract: status, code, message and extra body fields."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        retry_after: int | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message, status_code=status)
        self.code = code
        self.retry_after = retry_after
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """The `ErrorBody` of the contract (extra fields kept even when null)."""
        body: dict[str, Any] = {"error": self.detail, "code": self.code, "status": self.status_code}
        if self.retry_after is not None:
            body["retry_after"] = self.retry_after
        return body | self.extra


def invalid_parameter(message: str) -> ExportError:
    return ExportError(400, "INVALID_PARAMETER", message)


@dataclass(frozen=True)
class Principal:
    """An authenticated API key; no `consumer_keys` means it may read every stream."""

    api_key_id: str
    name: str
    consumer_keys: frozenset[str]

    def may_read(self, consumer_key: str) -> bool:
        return not self.consumer_keys or consumer_key in self.consumer_keys


@dataclass(frozen=True)
class Stream:
    consumer_key: str
    name: str
    data_type: str
    max_length: int
    max_age_seconds: int | None
    is_active: bool
    rebuilding: bool
    created_at: str

    @property
    def journal(self) -> bool:
        return self.data_type == "journal_entry"

    @classmethod
    def from_fields(cls, consumer_key: str, fields: dict[str, str]) -> Stream:
        return cls(
            consumer_key=consumer_key,
            name=fields["name"],
            data_type=fields["data_type"],
            max_length=int(fields["max_length"]),
            max_age_seconds=int(fields["max_age_seconds"]) if fields["max_age_seconds"] else None,
            is_active=fields["is_active"] == "1",
            rebuilding=fields.get("rebuilding") == "1",
            created_at=fields["created_at"],
        )

    def record(self) -> StreamRecord:
        return StreamRecord(
            consumer_key=self.consumer_key,
            name=self.name,
            data_type=self.data_type,
            max_length=self.max_length,
            max_age_seconds=self.max_age_seconds,
            is_active=self.is_active,
            created_at=self.created_at,
            is_rebuilding=self.rebuilding,
        )


@dataclass(frozen=True)
class PollPage:
    """One poll's answer; messages are JSON objects already, joined without re-parsing."""

    messages: list[bytes]
    next_cursor: str | None
    has_more: bool

    def to_json(self) -> bytes:
        return b"".join(
            (
                b'{"messages":[',
                b",".join(self.messages),
                b'],"next_cursor":',
                orjson.dumps(self.next_cursor),
                b',"has_more":',
                b"true" if self.has_more else b"false",
                b"}",
            )
        )


def _parse_cursor(text: str) -> Cursor:
    if text == NEWEST:
        return NEWEST
    position = parse_id(text)
    if position is None:
        raise ExportError(
            400,
            "INVALID_CURSOR",
            f'Invalid cursor {text!r}: use "0" (beginning), "$" (new messages only) '
            'or a message cursor such as "1735689600000-5"',
        )
    return position


class ExportService:
    def __init__(
        self,
        store: ExportStore,
        settings: ExportSettings,
        *,
        clock: Clock,
        hub: StreamHub | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self._clock = clock
        self.hub = hub or StreamHub(store)

    async def aclose(self) -> None:
        await self.hub.aclose()

    # -- administration ----------------------------------------------------

    def check_admin(self, provided: str | None) -> None:
        configured = self.settings.admin_key
        if not configured:
            raise ExportError(
                403, "ADMIN_DISABLED", "The admin API is disabled: set export.admin_key"
            )
        if not admin_key_matches(provided, configured):
            raise ExportError(401, "INVALID_ADMIN_KEY", "Missing or invalid X-Admin-Key")

    async def create_stream(
        self, request: CreateStreamRequest, *, consumer_key: str | None = None
    ) -> StreamRecord:
        stream = Stream(
            consumer_key=consumer_key or str(uuid.uuid4()),
            name=request.name,
            data_type=request.data_type,
            max_length=request.max_length or self.settings.max_length,
            max_age_seconds=request.max_age_seconds or self.settings.max_age_seconds,
            is_active=True,
            rebuilding=False,
            created_at=iso_z(self._clock.now()),
        )
        fields = {
            "name": stream.name,
            "data_type": stream.data_type,
            "max_length": str(stream.max_length),
            "max_age_seconds": str(stream.max_age_seconds or ""),
            "is_active": "1",
            "rebuilding": "0",
            "created_at": stream.created_at,
        }
        if not await self.store.add_stream(stream.consumer_key, stream.name, fields):
            raise ExportError(409, "STREAM_EXISTS", f"A stream named {stream.name!r} exists")
        return stream.record()

    async def stream(self, consumer_key: str) -> Stream:
        fields = await self.store.stream(consumer_key)
        if fields is None:
            raise _not_found(consumer_key)
        return Stream.from_fields(consumer_key, fields)

    async def set_active(self, consumer_key: str, active: bool) -> StreamRecord:
        await self.stream(consumer_key)
        await self.store.update_stream(consumer_key, {"is_active": "1" if active else "0"})
        return (await self.stream(consumer_key)).record()

    async def set_rebuilding(self, consumer_key: str, rebuilding: bool) -> None:
        await self.stream(consumer_key)
        await self.store.update_stream(consumer_key, {"rebuilding": "1" if rebuilding else "0"})

    async def rebuild(self, consumer_key: str) -> StreamRecord:
        stream = await self.stream(consumer_key)
        await self.set_rebuilding(consumer_key, True)
        try:
            await self.store.trim(
                consumer_key, max_length=stream.max_length, min_id=self._min_id(stream)
            )
        finally:
            await self.set_rebuilding(consumer_key, False)
        return (await self.stream(consumer_key)).record()

    async def create_api_key(
        self,
        request: CreateApiKeyRequest,
        *,
        api_key_id: str | None = None,
        secret: str | None = None,
    ) -> ApiKeyCreated:
        unknown = [ck for ck in request.consumer_keys if await self.store.stream(ck) is None]
        if unknown:
            raise invalid_parameter(f"Unknown consumer key(s): {', '.join(unknown)}")
        api_key_id = api_key_id or new_key_id()
        secret = secret or new_secret()
        hashed = hash_secret(secret)
        await self.store.put_api_key(
            api_key_id,
            {
                "name": request.name,
                "salt": hashed.salt,
                "digest": hashed.digest,
                "consumer_keys": orjson.dumps(request.consumer_keys).decode(),
                "created_at": iso_z(self._clock.now()),
            },
        )
        return ApiKeyCreated(
            api_key_id=api_key_id,
            api_key_secret=secret,
            name=request.name,
            consumer_keys=request.consumer_keys,
        )

    async def bootstrap_demo(self) -> ExportCredentials:
        """One stream of each data type and a key allowed on both (see the module notes)."""
        rng = random.Random(self.settings.seed)
        streams = []
        for name, data_type in DEMO_STREAMS:
            consumer_key = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            existing = await self.store.consumer_key_for(name)
            if existing is not None:
                consumer_key = existing
            else:
                request = CreateStreamRequest(name=name, data_type=data_type)
                await self.create_stream(request, consumer_key=consumer_key)
            streams.append(ExportStream(name=name, consumer_key=consumer_key, data_type=data_type))
        key = await self.create_api_key(
            CreateApiKeyRequest(name="demo", consumer_keys=[s.consumer_key for s in streams]),
            api_key_id=self.settings.api_key_id or new_key_id(rng),
            secret=self.settings.api_key_secret,
        )
        return ExportCredentials(
            api_key_id=key.api_key_id, api_key_secret=key.api_key_secret, streams=streams
        )

    # -- consumers ---------------------------------------------------------

    async def authenticate(self, header: str | None) -> Principal:
        parsed = parse_api_key(header)
        if parsed is None:
            raise ExportError(
                401, "INVALID_API_KEY", "Missing or malformed X-API-Key (expected key_id:secret)"
            )
        key_id, secret = parsed
        fields = await self.store.api_key(key_id)
        stored = HashedSecret(fields["salt"], fields["digest"]) if fields else None
        if fields is None or not verify_secret(secret, stored):
            raise ExportError(401, "INVALID_API_KEY", "Invalid API key")
        return Principal(key_id, fields["name"], frozenset(orjson.loads(fields["consumer_keys"])))

    async def poll(
        self,
        principal: Principal,
        consumer_key: str,
        *,
        cursor: str | None = None,
        order: str = "asc",
        limit: int = 100,
        include_test: bool = False,
    ) -> PollPage:
        if order not in ("asc", "desc"):
            raise invalid_parameter(f"Invalid order {order!r}: use 'asc' or 'desc'")
        if not 1 <= limit <= MAX_LIMIT:
            raise invalid_parameter(f"Invalid limit {limit}: must be between 1 and {MAX_LIMIT}")
        desc = order == "desc"
        requested = _parse_cursor(cursor) if cursor else None
        fields, stored = await self.store.stream_and_cursor(consumer_key, principal.api_key_id)
        stream = self._consumable(principal, consumer_key, fields)
        if requested is None:
            requested = NEWEST if desc else (_parse_cursor(stored) if stored else BEGINNING)
        if isinstance(requested, tuple):
            bound = None if desc and requested == BEGINNING else requested
            page = await self._page(stream, bound, desc, limit, include_test)
        elif desc:  # "$" newest first
            page = await self._page(stream, None, desc, limit, include_test)
        else:  # "$": nothing yet, and where to continue from
            state = await self.store.state(consumer_key)
            page = PollPage([], cursor_text(state.last), False)
        if not desc and page.next_cursor is not None:
            await self.store.save_cursor(consumer_key, principal.api_key_id, page.next_cursor)
        return page

    async def _page(
        self, stream: Stream, bound: Position | None, desc: bool, limit: int, include_test: bool
    ) -> PollPage:
        state, entries = await self.store.state_and_page(
            stream.consumer_key, bound, desc=desc, count=limit + 1
        )
        if bound is not None:
            self._check_cursor(stream, state, bound)
        has_more = len(entries) > limit
        del entries[limit:]
        journal = stream.journal
        messages = [render(e, journal) for e in entries if include_test or not e.is_test]
        if entries:
            next_cursor: str | None = entries[-1].id.decode()
        else:
            next_cursor = cursor_text(bound) if bound is not None else None
        return PollPage(messages, next_cursor, has_more)

    async def info(self, principal: Principal, consumer_key: str) -> StreamInfo:
        fields, stored = await self.store.stream_and_cursor(consumer_key, principal.api_key_id)
        stream = self._readable(principal, consumer_key, fields)
        state = await self.store.state(consumer_key)
        return StreamInfo(
            consumer_key=consumer_key,
            stream=stream.name,
            data_type=stream.data_type,
            is_active=stream.is_active,
            message_count=state.length,
            first_cursor=state.first_cursor,
            last_cursor=state.last_cursor,
            retention=Retention(
                max_length=stream.max_length, max_age_seconds=stream.max_age_seconds
            ),
            stored_cursor=stored,
            created_at=stream.created_at,
            suggested_cursors=SuggestedCursors(beginning="0", new_only=NEWEST, resume=stored),
            is_rebuilding=stream.rebuilding,
        )

    async def open_subscription(
        self,
        principal: Principal,
        consumer_key: str,
        *,
        cursor: str | None = None,
        include_test: bool = False,
    ) -> LiveSession:
        """Validate, join the stream's tail and fix the start; errors raise before any byte."""
        requested = _parse_cursor(cursor) if cursor else NEWEST
        stream = self._consumable(principal, consumer_key, await self.store.stream(consumer_key))
        subscription = await self.hub.subscribe(consumer_key, journal=stream.journal)
        try:
            state = await self.store.state(consumer_key)
            if isinstance(requested, tuple):
                start = requested
                self._check_cursor(stream, state, start)
            else:
                start = state.last
        except BaseException:
            self.hub.unsubscribe(subscription)
            raise
        connected = ConnectedInfo(
            stream=stream.name,
            consumer_key=consumer_key,
            data_type=stream.data_type,
            cursor=cursor_text(start),
            last_cursor=state.last_cursor,
            heartbeat_seconds=self.settings.heartbeat_seconds,
        )

        async def check() -> tuple[str, str] | None:
            fields = await self.store.stream(consumer_key)
            try:
                self._consumable(principal, consumer_key, fields)
            except ExportError as exc:
                return exc.code, exc.detail
            return None

        return LiveSession(
            hub=self.hub,
            store=self.store,
            subscription=subscription,
            consumer_key=consumer_key,
            journal=stream.journal,
            start=start,
            include_test=include_test,
            connected=orjson.dumps(connected.model_dump()),
            heartbeat_seconds=self.settings.heartbeat_seconds,
            replay_batch_size=self.settings.replay_batch_size,
            check=check,
        )

    # -- producers ---------------------------------------------------------

    async def publish(self, stream: str, message: dict[str, Any]) -> str:
        """Append one message to a stream (by consumer key or name); returns its cursor."""
        [cursor] = await self.publish_many(stream, [message])
        return cursor

    async def publish_many(self, stream: str, messages: Sequence[dict[str, Any]]) -> list[str]:
        target = await self._resolve(stream)
        payloads = []
        for message in messages:
            body = {k: v for k, v in message.items() if k not in ("cursor", "message_id")}
            if not body:
                raise invalid_parameter("A message must be a non-empty JSON object")
            payloads.append((bool(body.get("is_test")), orjson.dumps(body)))
        return await self.store.append(
            target.consumer_key,
            payloads,
            max_length=target.max_length,
            min_id=self._min_id(target),
        )

    async def _resolve(self, stream: str) -> Stream:
        fields = await self.store.stream(stream)
        if fields is not None:
            return Stream.from_fields(stream, fields)
        consumer_key = await self.store.consumer_key_for(stream)
        if consumer_key is None:
            raise _not_found(stream)
        return await self.stream(consumer_key)

    # -- checks ------------------------------------------------------------

    def _min_id(self, stream: Stream) -> Position | None:
        if stream.max_age_seconds is None:
            return None
        now_ms = int(self._clock.now().timestamp() * 1000)
        return max(now_ms - stream.max_age_seconds * 1000, 0), 0

    def _readable(
        self, principal: Principal, consumer_key: str, fields: dict[str, str] | None
    ) -> Stream:
        if fields is None:
            raise _not_found(consumer_key)
        if not principal.may_read(consumer_key):
            raise ExportError(403, "FORBIDDEN", "This API key may not read this stream")
        return Stream.from_fields(consumer_key, fields)

    def _consumable(
        self, principal: Principal, consumer_key: str, fields: dict[str, str] | None
    ) -> Stream:
        stream = self._readable(principal, consumer_key, fields)
        if not stream.is_active:
            raise ExportError(401, "STREAM_INACTIVE", "Stream is inactive")
        if stream.rebuilding:
            raise ExportError(
                503,
                "STREAM_REBUILDING",
                f"Stream is being rebuilt: retry in about {REBUILD_RETRY_SECONDS} s",
                retry_after=REBUILD_RETRY_SECONDS,
            )
        return stream

    def _check_cursor(self, stream: Stream, state: StreamState, position: Position) -> None:
        """410/416 when entries after `position` were trimmed away (see the module notes)."""
        if position == BEGINNING or not state.lost_after(position):
            return
        cursor = cursor_text(position)
        min_id = self._min_id(stream)
        if min_id is not None and position < min_id:
            raise ExportError(
                410,
                "CURSOR_EXPIRED",
                f"Cursor {cursor} is outside the retention window "
                f'({stream.max_age_seconds} s): reset it to "0" or "$"',
            )
        raise ExportError(
            416,
            "CURSOR_BEFORE_START",
            f"Cursor {cursor} is before the first entry of the stream (older data was "
            'trimmed): resume from "0" or stream_first_id',
            stream_first_id=state.first_cursor,
        )


def _not_found(consumer_key: str) -> ExportError:
    return ExportError(404, "STREAM_NOT_FOUND", f"No stream with consumer key {consumer_key!r}")
