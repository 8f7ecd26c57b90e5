"""The realtime streaming service: sessions, streams and subscriptions, with no HTTP in it.

`api.py` adapts it to REST and Socket.IO; events leave through a `Publisher`
addressed by session (and stream type), so the core never sees a socket.

Choices where the spec is silent:
- One `data_update` per item, `data_type` = `<stream_type>_<item kind>` (the spec's
  `gmail_messages_message`), `payload` the provider's item.
- A stream fetches pages of `batch_size` items (each after `page_delay_ms`, the
  simulated provider latency) until `max_results` or the end of the history, then
  completes, or with `real_time` keeps emitting new matching items as they arrive.
- `rate_limit_per_minute` (default: the spec's 100 stream events a minute) caps a
  stream's `data_update`s per minute window; a stream at its cap waits for the
  window to reset. One `rate_limit_warning` goes to the session per window once
  the remaining quota falls to `rate_limit_warning_ratio` of it (at least 1).
- The spec's "data requests per minute" (50) are stream starts per session
  (`STREAM_RATE_LIMITED`); "subscription requests" (10) are `subscribe_data`
  calls per connection; "WebSocket connections per session" (5 per 5 minutes) are
  counted across all processes. Refusals carry `retry_after`, `limit`, `reset_time`.
- One active stream per session and stream type (`STREAM_ALREADY_ACTIVE`).
- Finished streams stay visible (status `completed`, `stopped` or `error`) until
  inactive; any stream that emitted nothing for `inactive_stream_ttl_seconds`
  is stopped and forgotten. Stopping cancels the stream's task and drops its data.
- Tokens are refreshed while a session is in use here (a connection or an active
  stream), or on demand when a connection or a stream start finds them expired;
  `token_refresh` goes to every connection of the session. A session past its
  lifetime is expired: connections are refused and its streams end with
  `TOKEN_EXPIRED`.
- Streams live in the process that started them (status, stop and list are
  answered there, as Socket.IO's own sticky sessions already require); their
  events reach the session's connections on every process through the pub/sub
  manager. Sessions and connection counts are shared through Redis.
- A connection names its session by query (`?session_id=`) or, as Socket.IO v4
  clients prefer, in `auth`; a session created for an agent refuses other agents.
- Session and stream ids are random UUIDs (they are bearer credentials, and must
  not collide between processes); provider data is seeded, so it is deterministic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import Any, Protocol

from backends.common.clock import Clock
from backends.common.errors import ServiceError
from backends.realtime.filters import FilterError
from backends.realtime.models import (
    PROVIDER_STREAM_TYPES,
    RATE_LIMIT_EXCEEDED,
    SESSION_NOT_FOUND,
    STREAM_ALREADY_ACTIVE,
    STREAM_CONFIG_ERROR,
    STREAM_NOT_FOUND,
    STREAM_RATE_LIMITED,
    STREAM_TYPES,
    TOKEN_EXPIRED,
    DataUpdate,
    DataUpdateEvent,
    ErrorInfo,
    ProviderInfo,
    ProvidersResponse,
    RateLimitWarning,
    RateLimitWarningEvent,
    SessionCreate,
    SessionInfo,
    SessionList,
    StreamConfiguration,
    StreamList,
    StreamStarted,
    StreamStartRequest,
    StreamState,
    StreamStatus,
    StreamStatusConfiguration,
    StreamStopped,
    StreamSummary,
    StreamTypeInfo,
    SubscribeRequest,
    SubscriptionConfirmed,
    TokenRefresh,
    TokenRefreshEvent,
    WebsocketStatistics,
)
from backends.realtime.providers import KINDS, Dataset, describe_filters
from backends.realtime.quota import FixedWindow, KeyedWindows, Quota
from backends.realtime.sessions import Session, SessionStore
from backends.settings import RealtimeSettings

log = logging.getLogger(__name__)

PROVIDER_NAMES = {"google": "Google", "microsoft": "Microsoft"}
STOP_GRACE_SECONDS = 5.0
Event = DataUpdateEvent | TokenRefreshEvent | RateLimitWarningEvent


class Publisher(Protocol):
    async def publish(self, event: Event, stream_type: str | None) -> None:
        """Send to the session's connections subscribed to `stream_type` (None: all of them)."""
        ...


class RealtimeError(ServiceError):
    """A spec error: code, message, details, and the HTTP status it travels with."""

    def __init__(
        self,
        code: str,
        message: str,
        status_code: int,
        details: dict[str, Any] | None = None,
        *,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.code = code
        self.details = details or {}
        self.retry_after = retry_after

    def info(self) -> ErrorInfo:
        return ErrorInfo(code=self.code, message=self.detail, details=self.details)


def rate_limited(code: str, message: str, quota: Quota, now: float) -> RealtimeError:
    retry_after = quota.retry_after_seconds(now)
    details = {"retry_after": retry_after, "limit": quota.limit, "reset_time": int(quota.reset_at)}
    return RealtimeError(code, message, 429, details, retry_after=retry_after)


def config_error(
    field: str, value: Any, message: str = "Invalid stream configuration", **extra: Any
) -> RealtimeError:
    details = {"field": field, "value": value, **extra}
    return RealtimeError(STREAM_CONFIG_ERROR, message, 400, details)


@dataclass
class _Stream:
    stream_id: str
    session: Session
    request: StreamStartRequest
    rate_limit: int
    dataset: Dataset | None
    started_at: float
    quota: FixedWindow
    status: StreamState = "active"
    items: int = 0
    last_activity: float = 0.0
    warned_until: float = 0.0  # reset time of the window already warned about
    error: ErrorInfo | None = None
    task: asyncio.Task[None] | None = None
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def stream_type(self) -> str:
        return self.request.stream_type

    def configuration(self) -> dict[str, Any]:
        request = self.request
        return {
            "batch_size": request.batch_size,
            "max_results": request.max_results,
            "real_time": request.real_time,
            "rate_limit_per_minute": self.rate_limit,
            "filters": request.filters,
        }


@dataclass
class _Connection:
    session: Session
    subscriptions: set[str] = field(default_factory=set)


class RealtimeService:
    def __init__(
        self,
        settings: RealtimeSettings,
        *,
        clock: Clock,
        store: SessionStore,
        publisher: Publisher,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._store = store
        self._publisher = publisher
        self._streams: dict[str, _Stream] = {}
        self._connections: dict[str, _Connection] = {}
        self._subscription_limits = KeyedWindows(settings.subscriptions_per_minute, 60)
        self._stats: Counter[str] = Counter()
        self._maintenance: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()

    def _now(self) -> float:
        return self._clock.now().timestamp()

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> str | None:
        """Start background maintenance; create the demo session. Returns its id, if any."""
        demo = self.settings.demo_session_id
        if demo is not None:
            await self._new_session(SessionCreate(), session_id=demo, forever=True)
        self._maintenance = asyncio.create_task(self._maintain_forever(), name="realtime-upkeep")
        return demo

    async def aclose(self) -> None:
        self._closing.set()
        if self._maintenance is not None:
            await _finish(self._maintenance)
        for stream in list(self._streams.values()):
            await self._halt(stream, "stopped")

    async def _maintain_forever(self) -> None:
        while not await _stopped_within(self._closing, self.settings.maintenance_interval_seconds):
            try:
                await self.maintain()
            except Exception:  # a Redis hiccup must not end upkeep for good
                log.exception("realtime maintenance failed")

    async def maintain(self) -> None:
        """One upkeep pass: refresh due tokens of sessions in use here, drop inactive streams."""
        now = self._now()
        in_use = {c.session.session_id for c in self._connections.values()}
        in_use |= {s.session.session_id for s in self._streams.values() if s.status == "active"}
        margin = self.settings.token_refresh_margin_seconds
        for session_id in in_use:
            session = await self._store.get(session_id)
            if session and session.refresh_due(now, margin) and session.refreshable(now):
                await self._refresh(session, now)
        ttl = self.settings.inactive_stream_ttl_seconds
        for stream in list(self._streams.values()):
            if now - stream.last_activity >= ttl:
                await self._halt(stream, "stopped")
                del self._streams[stream.stream_id]

    # -- sessions and providers ----------------------------------------------------

    @staticmethod
    def providers() -> ProvidersResponse:
        return ProvidersResponse(
            providers=[
                ProviderInfo(provider=p, display_name=PROVIDER_NAMES[p], stream_types=list(types))
                for p, types in PROVIDER_STREAM_TYPES.items()
            ],
            stream_types=[
                StreamTypeInfo(
                    stream_type=kind.stream_type,
                    data_type=kind.data_type,
                    providers=list(kind.providers),
                    filters=describe_filters(kind.stream_type),
                )
                for kind in KINDS.values()
            ],
        )

    async def create_session(self, request: SessionCreate) -> SessionInfo:
        session = await self._new_session(request, session_id=f"session-{uuid.uuid4().hex}")
        return session.info(self._now())

    async def _new_session(
        self, request: SessionCreate, *, session_id: str, forever: bool = False
    ) -> Session:
        now = self._now()
        settings = self.settings
        lifetime = request.expires_in or settings.token_lifetime_seconds
        session_lifetime = request.session_lifetime or settings.session_lifetime_seconds
        session = Session(
            session_id=session_id,
            provider=request.provider,
            agent_id=request.agent_id,
            created_at=now,
            expires_at=now + lifetime,
            expires_in=lifetime,
            session_expires_at=None if forever else now + session_lifetime,
        )
        await self._store.create(session, now)
        return session

    async def get_session(self, session_id: str) -> SessionInfo:
        session = await self._store.get(session_id)
        if session is None:
            raise _session_not_found(session_id)
        return session.info(self._now())

    async def list_sessions(self) -> SessionList:
        now = self._now()
        sessions = [s.info(now) async for s in self._store.all()]
        sessions.sort(key=lambda s: s.created_at)
        return SessionList(sessions=sessions, total_count=len(sessions))

    async def _usable_session(self, session_id: str | None) -> Session:
        """The session with a valid token, refreshing it if needed; else the spec's error."""
        session = await self._store.get(session_id) if session_id else None
        if session is None:
            raise _session_not_found(session_id)
        now = self._now()
        if session.token_valid(now):
            return session
        if session.refreshable(now):
            renewed = await self._refresh(session, now)
            if renewed is not None and renewed.token_valid(now):
                return renewed
        raise RealtimeError(
            TOKEN_EXPIRED,
            "OAuth token expired",
            401,
            {"session_id": session.session_id, "expired_at": session.expires_at},
        )

    async def _refresh(self, session: Session, now: float) -> Session | None:
        renewed = await self._store.refresh(session.session_id, session.expires_at, now)
        if renewed is None:  # another process got there first, or the session ended
            return await self._store.get(session.session_id)
        event = TokenRefreshEvent(
            session_id=renewed.session_id,
            provider=renewed.provider,
            timestamp=now,
            data=TokenRefresh(new_expires_at=renewed.expires_at, expires_in=renewed.expires_in),
        )
        await self._publisher.publish(event, None)
        return renewed

    # -- connections and subscriptions -------------------------------------------

    async def open_connection(
        self, sid: str, session_id: str | None, agent_id: str | None
    ) -> Session:
        """Admit a Socket.IO connection, or raise the reason it is refused."""
        try:
            session = await self._usable_session(session_id)
            if agent_id and session.agent_id and agent_id != session.agent_id:
                raise _session_not_found(session_id)
            now = self._now()
            settings = self.settings
            quota = await self._store.hit(
                "connections",
                session.session_id,
                settings.connections_per_session,
                settings.connection_window_seconds,
                now,
            )
            if not quota.allowed:
                raise rate_limited(
                    RATE_LIMIT_EXCEEDED, "Too many connections for this session", quota, now
                )
        except RealtimeError:
            self._stats["refused_connections"] += 1
            raise
        self._connections[sid] = _Connection(session)
        self._stats["total_connections"] += 1
        return session

    def connected_sids(self) -> list[str]:
        return list(self._connections)

    def close_connection(self, sid: str) -> None:
        self._connections.pop(sid, None)
        self._subscription_limits.forget(sid)

    def subscribe(self, sid: str, request: SubscribeRequest) -> SubscriptionConfirmed:
        """Check a `subscribe_data`; the caller joins the returned data types."""
        connection = self._subscription_target(sid, request)
        now = self._now()
        quota = self._subscription_limits.hit(sid, now)
        if not quota.allowed:
            raise rate_limited(RATE_LIMIT_EXCEEDED, "Too many subscription requests", quota, now)
        allowed = PROVIDER_STREAM_TYPES[connection.session.provider]
        wanted = list(dict.fromkeys(request.data_types))
        unknown = [t for t in wanted if t not in allowed]
        if unknown:
            raise config_error(
                "data_types",
                unknown,
                f"Unknown data types for {connection.session.provider}: {', '.join(unknown)}",
                allowed_values=list(allowed),
            )
        connection.subscriptions.update(wanted)
        return SubscriptionConfirmed(session_id=connection.session.session_id, data_types=wanted)

    def unsubscribe(self, sid: str, request: SubscribeRequest) -> SubscriptionConfirmed:
        connection = self._subscription_target(sid, request)
        dropped = [t for t in dict.fromkeys(request.data_types) if t in connection.subscriptions]
        connection.subscriptions.difference_update(dropped)
        return SubscriptionConfirmed(session_id=connection.session.session_id, data_types=dropped)

    def _subscription_target(self, sid: str, request: SubscribeRequest) -> _Connection:
        connection = self._connections.get(sid)
        if connection is None or (
            request.session_id is not None and request.session_id != connection.session.session_id
        ):
            # A connection reaches only the session it was admitted with.
            raise _session_not_found(request.session_id)
        return connection

    # -- streams -------------------------------------------------------------------

    async def start_stream(self, request: StreamStartRequest) -> StreamStarted:
        if request.stream_type not in KINDS:
            raise config_error(
                "stream_type", request.stream_type, allowed_values=list(STREAM_TYPES)
            )
        session = await self._usable_session(request.session_id)
        allowed = PROVIDER_STREAM_TYPES[session.provider]
        if request.stream_type not in allowed:
            raise config_error(
                "stream_type",
                request.stream_type,
                f"{request.stream_type} is not a {session.provider} stream type",
                allowed_values=list(allowed),
            )
        for other in self._streams.values():
            if (
                other.status == "active"
                and other.session.session_id == session.session_id
                and other.stream_type == request.stream_type
            ):
                raise RealtimeError(
                    STREAM_ALREADY_ACTIVE,
                    "Stream already running for session",
                    409,
                    {
                        "stream_id": other.stream_id,
                        "session_id": session.session_id,
                        "stream_type": request.stream_type,
                    },
                )
        now = self._now()
        kind = KINDS[request.stream_type]
        try:
            dataset = Dataset(
                kind,
                session.provider,
                seed=self.settings.seed,
                anchor=datetime.fromtimestamp(session.created_at, UTC),
                size=self.settings.mailbox_size,
                filters=request.filters,
                now=self._clock.now(),
            )
        except FilterError as exc:
            extra = {"allowed_values": exc.allowed_values} if exc.allowed_values else {}
            raise config_error(exc.field, exc.value, exc.message, **extra) from exc
        quota = await self._store.hit(
            "stream-starts", session.session_id, self.settings.stream_requests_per_minute, 60, now
        )
        if not quota.allowed:
            raise rate_limited(STREAM_RATE_LIMITED, "Too many stream requests", quota, now)
        rate_limit = request.rate_limit_per_minute or self.settings.stream_events_per_minute
        stream = _Stream(
            stream_id=f"stream-{uuid.uuid4().hex[:12]}",
            session=session,
            request=request,
            rate_limit=rate_limit,
            dataset=dataset,
            started_at=now,
            last_activity=now,
            quota=FixedWindow(rate_limit, 60),
        )
        self._streams[stream.stream_id] = stream
        stream.task = asyncio.create_task(self._run(stream), name=stream.stream_id)
        return StreamStarted(
            stream_id=stream.stream_id,
            session_id=session.session_id,
            stream_type=request.stream_type,
            provider=session.provider,
            configuration=StreamConfiguration(**stream.configuration()),
        )

    def _stream(self, stream_id: str) -> _Stream:
        stream = self._streams.get(stream_id)
        if stream is None:
            raise RealtimeError(
                STREAM_NOT_FOUND, "Stream ID not found", 404, {"stream_id": stream_id}
            )
        return stream

    def stream_status(self, stream_id: str) -> StreamStatus:
        stream = self._stream(stream_id)
        return StreamStatus(
            stream_id=stream.stream_id,
            status=stream.status,
            items_streamed=stream.items,
            started_at=stream.started_at,
            last_activity=stream.last_activity,
            configuration=StreamStatusConfiguration(
                stream_type=stream.stream_type,
                session_id=stream.session.session_id,
                provider=stream.session.provider,
                **stream.configuration(),
            ),
            error=stream.error,
        )

    async def stop_stream(self, stream_id: str) -> StreamStopped:
        """Stop an active stream; a finished one just reports how it ended."""
        stream = self._stream(stream_id)
        await self._halt(stream, "stopped")
        return StreamStopped(stream_id=stream.stream_id, status=stream.status)

    def list_streams(self) -> StreamList:
        streams = {
            s.stream_id: StreamSummary(
                stream_type=s.stream_type,
                session_id=s.session.session_id,
                provider=s.session.provider,
                started_at=s.started_at,
                items_streamed=s.items,
                status=s.status,
                last_activity=s.last_activity,
            )
            for s in self._streams.values()
        }
        return StreamList(
            streams=streams,
            total_count=len(streams),
            websocket_statistics=self.websocket_statistics(),
        )

    def websocket_statistics(self) -> WebsocketStatistics:
        return WebsocketStatistics(
            active_connections=len(self._connections),
            total_connections=self._stats["total_connections"],
            refused_connections=self._stats["refused_connections"],
            events_emitted=self._stats["events_emitted"],
        )

    async def _halt(self, stream: _Stream, status: StreamState) -> None:
        if stream.status == "active":
            stream.status = status
        stream.stopping.set()
        if stream.task is not None:
            await _finish(stream.task)
        stream.dataset = None

    async def _run(self, stream: _Stream) -> None:
        dataset = stream.dataset
        assert dataset is not None
        request = stream.request
        page_delay = self.settings.page_delay_ms / 1000
        data_type = dataset.kind.data_type
        try:
            history = dataset.history()
            left = request.max_results
            while left > 0 and not await _stopped_within(stream.stopping, page_delay):
                await self._usable_session(stream.session.session_id)
                page = list(islice(history, min(request.batch_size, left)))
                for item in page:
                    if not await self._emit(stream, data_type, item):
                        return
                left -= len(page)
                if len(page) < request.batch_size:
                    break
            mean_gap = self.settings.arrival_interval_seconds
            while request.real_time and not await _stopped_within(
                stream.stopping, dataset.arrival_gap(mean_gap)
            ):
                await self._usable_session(stream.session.session_id)
                item = dataset.arrival(self._clock.now())
                if item is not None and not await self._emit(stream, data_type, item):
                    return
            if not stream.stopping.is_set():
                stream.status = "completed"
        except RealtimeError as exc:
            stream.status, stream.error = "error", exc.info()
        except Exception as exc:
            log.exception("stream %s failed", stream.stream_id)
            stream.status = "error"
            stream.error = ErrorInfo(code="STREAM_FAILED", message=f"{type(exc).__name__}: {exc}")
        finally:
            stream.dataset = None

    async def _emit(self, stream: _Stream, data_type: str, item: dict[str, Any]) -> bool:
        """Publish one item within the stream's quota; False if the stream stopped meanwhile."""
        now = self._now()
        quota = stream.quota.hit(now)
        tick = self.settings.maintenance_interval_seconds  # re-read the (injected) clock this often
        while not quota.allowed:
            if await _stopped_within(stream.stopping, min(quota.reset_at - now, tick)):
                return False
            now = self._now()
            quota = stream.quota.hit(now)
        session = stream.session
        await self._publisher.publish(
            DataUpdateEvent(
                session_id=session.session_id,
                provider=session.provider,
                timestamp=now,
                data=DataUpdate(data_type=data_type, payload=item, stream_id=stream.stream_id),
            ),
            stream.stream_type,
        )
        stream.items += 1
        stream.last_activity = now
        self._stats["events_emitted"] += 1
        ratio = self.settings.rate_limit_warning_ratio
        if (
            ratio > 0
            and quota.remaining <= max(1, int(quota.limit * ratio))
            and stream.warned_until != quota.reset_at
        ):
            stream.warned_until = quota.reset_at
            await self._publisher.publish(
                RateLimitWarningEvent(
                    session_id=session.session_id,
                    provider=session.provider,
                    timestamp=now,
                    data=RateLimitWarning(
                        remaining_quota=quota.remaining,
                        reset_time=quota.reset_at,
                        warning_message=(
                            f"Rate limit approaching. {quota.remaining} requests remaining."
                        ),
                        stream_id=stream.stream_id,
                    ),
                ),
                None,
            )
        return True


async def _stopped_within(event: asyncio.Event, seconds: float) -> bool:
    """Wait up to `seconds` for `event`; whether it is set.

    Loops stop on an event rather than by cancellation: redis-py 8.1 (and fakeredis on
    it) can swallow a CancelledError that lands inside a command, and carry on.
    """
    if not event.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), max(seconds, 0))
    return event.is_set()


async def _finish(task: asyncio.Task[None]) -> None:
    """Let a task that was told to stop finish; cancel it if it does not within the grace."""
    try:
        await asyncio.wait_for(asyncio.shield(task), STOP_GRACE_SECONDS)
    except TimeoutError:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _session_not_found(session_id: str | None) -> RealtimeError:
    return RealtimeError(SESSION_NOT_FOUND, "Invalid session ID", 404, {"session_id": session_id})
