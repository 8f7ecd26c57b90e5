"""Typed async client of the realtime API (`api.py` or any service following the spec).

REST calls go through httpx and unwrap the spec's envelope: data comes back as the
models of `models.py`; errors as `RealtimeApiError` carrying the server's status,
`code`, `message` and `details` (so the console can show "429 RATE_LIMIT_EXCEEDED:
Rate limit exceeded. Try again later." verbatim). The latest rate-limit headers are
kept in `RealtimeClient.rate_limit`.

`RealtimeClient.events()` is a live tail of `stream_event`s for one session:
connects over WebSocket only (no polling upgrade, so no sticky sessions needed in
front of several processes), sends `subscribe_data` and waits for
`subscription_confirmed`, then yields typed events. When the connection drops it
reconnects with exponential backoff (honouring `retry_after` when the server
limits connections) and subscribes again to the current data types. Refusals that
retrying cannot cure (unknown session, expired token, unknown data types) end the
iteration with the error. A consumer that falls behind loses the oldest events,
never memory: the queue is bounded and `dropped` counts what it shed.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any, Self, TypeVar
from urllib.parse import urlencode

import httpx
import socketio
from pydantic import BaseModel, ValidationError

from backends.common.http_client import JsonApiClient
from backends.realtime.models import (
    INVALID_REQUEST,
    SESSION_NOT_FOUND,
    STREAM_CONFIG_ERROR,
    STREAM_EVENT,
    TOKEN_EXPIRED,
    DataUpdateEvent,
    ProvidersResponse,
    RateLimitWarningEvent,
    SessionCreate,
    SessionInfo,
    SessionList,
    StreamList,
    StreamStarted,
    StreamStartRequest,
    StreamStatus,
    StreamStopped,
    SubscriptionConfirmed,
    TokenRefreshEvent,
    WebsocketStatistics,
)

M = TypeVar("M", bound=BaseModel)
AnyStreamEvent = DataUpdateEvent | TokenRefreshEvent | RateLimitWarningEvent
TERMINAL_CODES = frozenset({SESSION_NOT_FOUND, TOKEN_EXPIRED, STREAM_CONFIG_ERROR, INVALID_REQUEST})


class RealtimeApiError(Exception):
    """An error answer (REST or Socket.IO), or no answer at all (`status_code` 0)."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        prefix = f"{status_code} " if status_code else ""
        super().__init__(f"{prefix}{code}: {message}")
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details = details or {}

    @property
    def retry_after(self) -> float | None:
        value = self.details.get("retry_after")
        return float(value) if isinstance(value, int | float) else None

    @classmethod
    def from_error(cls, status_code: int, error: Any) -> RealtimeApiError:
        """From the spec's `{code, message, details}` (or whatever a server sent instead)."""
        if isinstance(error, dict) and "code" in error:
            details = error.get("details")
            return cls(
                status_code,
                str(error["code"]),
                str(error.get("message", "")),
                details if isinstance(details, dict) else {},
            )
        return cls(status_code, f"HTTP_{status_code}" if status_code else "ERROR", str(error))


@dataclass(frozen=True)
class RateLimitInfo:
    limit: int
    remaining: int
    reset: int  # epoch second

    @classmethod
    def from_headers(cls, headers: httpx.Headers) -> RateLimitInfo | None:
        try:
            return cls(
                int(headers["X-RateLimit-Limit"]),
                int(headers["X-RateLimit-Remaining"]),
                int(headers["X-RateLimit-Reset"]),
            )
        except (KeyError, ValueError):
            return None


class RealtimeClient(JsonApiClient):
    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, timeout=timeout, transport=transport)
        self.rate_limit: RateLimitInfo | None = None

    def _no_answer(self, code: str, message: str) -> Exception:
        return RealtimeApiError(0, code, message)

    async def _call(self, method: str, path: str, model: type[M], *, json: Any = None) -> M:
        response = await self._send(method, path, json=json)
        self.rate_limit = RateLimitInfo.from_headers(response.headers) or self.rate_limit
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_error or not isinstance(body, dict) or not body.get("success"):
            error = body.get("error") if isinstance(body, dict) else None
            raise RealtimeApiError.from_error(
                response.status_code, error or response.text or response.reason_phrase
            )
        return model.model_validate(body["data"])

    async def providers(self) -> ProvidersResponse:
        return await self._call("GET", "/api/providers", ProvidersResponse)

    async def create_session(
        self, request: SessionCreate | None = None, **fields: Any
    ) -> SessionInfo:
        body = (request or SessionCreate(**fields)).model_dump(exclude_none=True)
        return await self._call("POST", "/api/sessions", SessionInfo, json=body)

    async def list_sessions(self) -> SessionList:
        return await self._call("GET", "/api/sessions", SessionList)

    async def get_session(self, session_id: str) -> SessionInfo:
        return await self._call("GET", f"/api/sessions/{session_id}", SessionInfo)

    async def start_stream(
        self, request: StreamStartRequest | None = None, **fields: Any
    ) -> StreamStarted:
        """`start_stream(session_id=..., stream_type=..., batch_size=50, max_results=500)`."""
        body = (request or StreamStartRequest(**fields)).model_dump(exclude_unset=True)
        return await self._call("POST", "/api/stream/start", StreamStarted, json=body)

    async def get_stream_status(self, stream_id: str) -> StreamStatus:
        return await self._call("GET", f"/api/stream/{stream_id}/status", StreamStatus)

    async def stop_stream(self, stream_id: str) -> StreamStopped:
        return await self._call("POST", f"/api/stream/{stream_id}/stop", StreamStopped)

    async def list_streams(self) -> StreamList:
        return await self._call("GET", "/api/streams", StreamList)

    async def health(self) -> WebsocketStatistics:
        return await self._call("GET", "/api/health", WebsocketStatistics)

    def events(
        self,
        session_id: str,
        data_types: list[str],
        *,
        agent_id: str | None = None,
        max_queue: int = 10_000,
        backoff: tuple[float, float] = (0.5, 30.0),
        connect_timeout: float = 10.0,
    ) -> EventStream:
        """A live tail: `async with client.events(sid, ["gmail_messages"]) as events:`."""
        return EventStream(
            self.base_url,
            session_id,
            data_types,
            agent_id=agent_id,
            max_queue=max_queue,
            backoff=backoff,
            connect_timeout=connect_timeout,
        )


class EventStream:
    """Typed `stream_event`s of one session, across reconnects; see the module docstring."""

    def __init__(
        self,
        base_url: str,
        session_id: str,
        data_types: list[str],
        *,
        agent_id: str | None,
        max_queue: int,
        backoff: tuple[float, float],
        connect_timeout: float,
    ) -> None:
        query = {"session_id": session_id, **({"agent_id": agent_id} if agent_id else {})}
        self._url = f"{base_url}?{urlencode(query)}"
        self.session_id = session_id
        self.data_types = list(dict.fromkeys(data_types))
        self._backoff = backoff
        self._timeout = connect_timeout
        self._queue: asyncio.Queue[AnyStreamEvent | RealtimeApiError] = asyncio.Queue(max_queue)
        self._client: socketio.AsyncClient | None = None
        self._pending: asyncio.Future[SubscriptionConfirmed] | None = None
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.connected = False
        self.reconnects = 0
        self.dropped = 0
        self.ignored = 0
        self.last_error: RealtimeApiError | None = None

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run(), name=f"events:{self.session_id}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> AnyStreamEvent:
        if self._task is None:
            raise RuntimeError("use `async with client.events(...)` before iterating")
        item = await self._queue.get()
        if isinstance(item, RealtimeApiError):
            raise item
        return item

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._drop_client()

    async def subscribe(self, data_types: list[str]) -> SubscriptionConfirmed | None:
        """Add data types now (if connected) and on every reconnect."""
        self.data_types = list(dict.fromkeys([*self.data_types, *data_types]))
        return await self._change("subscribe_data", data_types) if self.connected else None

    async def unsubscribe(self, data_types: list[str]) -> SubscriptionConfirmed | None:
        self.data_types = [t for t in self.data_types if t not in data_types]
        return await self._change("unsubscribe_data", data_types) if self.connected else None

    # -- connection handling ------------------------------------------------------

    def _put(self, item: AnyStreamEvent | RealtimeApiError) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(item)

    async def _on_event(self, data: Any) -> None:
        try:
            self._put(STREAM_EVENT.validate_python(data))
        except ValidationError:
            self.ignored += 1

    def _settle(self, outcome: SubscriptionConfirmed | RealtimeApiError) -> None:
        pending = self._pending
        if pending is None or pending.done():
            if isinstance(outcome, RealtimeApiError):
                self.last_error = outcome
            return
        if isinstance(outcome, RealtimeApiError):
            pending.set_exception(outcome)
        else:
            pending.set_result(outcome)

    async def _on_confirmed(self, data: Any) -> None:
        self._settle(SubscriptionConfirmed.model_validate(data))

    async def _on_error(self, data: Any) -> None:
        self._settle(RealtimeApiError.from_error(0, data))

    async def _on_disconnect(self, *_: Any) -> None:
        self._lost.set()

    async def _change(self, event: str, data_types: list[str]) -> SubscriptionConfirmed:
        assert self._client is not None
        self._pending = asyncio.get_running_loop().create_future()
        await self._client.emit(event, {"session_id": self.session_id, "data_types": data_types})
        return await asyncio.wait_for(self._pending, self._timeout)

    async def _connect(self) -> None:
        client = socketio.AsyncClient(reconnection=False)
        refusals: list[Any] = []

        async def refused(data: Any = None) -> None:
            refusals.append(data)

        client.on("connect_error", refused)
        client.on("stream_event", self._on_event)
        client.on("subscription_confirmed", self._on_confirmed)
        client.on("unsubscription_confirmed", self._on_confirmed)
        client.on("error", self._on_error)
        client.on("disconnect", self._on_disconnect)
        self._lost.clear()
        self._client = client
        try:
            await client.connect(self._url, transports=["websocket"], wait_timeout=self._timeout)
        except socketio.exceptions.ConnectionError as exc:
            reason = refusals[-1] if refusals else None
            if isinstance(reason, dict) and isinstance(reason.get("data"), dict):
                raise RealtimeApiError.from_error(0, reason["data"]) from exc
            message = reason.get("message") if isinstance(reason, dict) else str(reason or exc)
            raise RealtimeApiError(0, "UNREACHABLE", str(message)) from exc
        if self.data_types:
            await self._change("subscribe_data", self.data_types)

    async def _drop_client(self) -> None:
        client, self._client = self._client, None
        self.connected = False
        if client is not None:
            with contextlib.suppress(Exception):
                await client.disconnect()

    async def _run(self) -> None:
        first, cap = self._backoff
        delay = first
        while True:
            try:
                await self._connect()
            except RealtimeApiError as exc:
                await self._drop_client()
                self.last_error = exc
                if exc.code in TERMINAL_CODES:
                    self._put(exc)
                    return
                wait = max(exc.retry_after or 0.0, delay)
            except (TimeoutError, OSError) as exc:
                await self._drop_client()
                self.last_error = RealtimeApiError(0, "UNREACHABLE", str(exc) or type(exc).__name__)
                wait = delay
            else:
                self.connected = True
                delay = first
                await self._lost.wait()
                await self._drop_client()
                self.reconnects += 1
                wait = delay
            await asyncio.sleep(wait)
            delay = min(delay * 2, cap)
