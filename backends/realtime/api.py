"""REST and Socket.IO adapter of the realtime spec over `RealtimeService`, on one ASGI app.

`/socket.io/` goes to a python-socketio `AsyncServer`; everything else to FastAPI.
Thin by design: parse, rate-limit, call the service, wrap its model in the spec's
envelope. Every error leaves as `{"success": false, "error": {...}}` — request
validation (`STREAM_CONFIG_ERROR` on stream starts, `INVALID_REQUEST` elsewhere),
unknown routes and 429s included.

Rate-limit headers: every `/api` response carries `X-RateLimit-Limit/Remaining/Reset`
(reset as an epoch second, as the spec shows) for the caller's per-address budget
of `api_requests_per_minute`, and the same as the IETF draft's structured fields
(`RateLimit-Policy: "api";q=600;w=60`, `RateLimit: "api";r=599;t=42`); a 429 adds
`Retry-After`. That budget is per process.

Socket.IO: a refused connection's `connect_error` carries the error's message and,
as `data`, the whole `{code, message, details}`. `subscribe_data` answers
`subscription_confirmed` (also as the ack, for clients that ask for one), and an
`error` event with the same error shape when refused; `unsubscribe_data` answers
`unsubscription_confirmed`. With `[redis] url` set, python-socketio's
`AsyncRedisManager` carries every emit to the other processes' clients.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import fakeredis
import orjson
import redis.asyncio as aioredis
import socketio
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from backends.common.clock import Clock
from backends.realtime.models import (
    INVALID_REQUEST,
    NOT_FOUND,
    RATE_LIMIT_EXCEEDED,
    STREAM_CONFIG_ERROR,
    ApiResponse,
    ErrorInfo,
    ErrorResponse,
    ProvidersResponse,
    SessionCreate,
    SessionInfo,
    SessionList,
    StreamList,
    StreamStarted,
    StreamStartRequest,
    StreamStatus,
    StreamStopped,
    SubscribeRequest,
    WebsocketStatistics,
)
from backends.realtime.quota import KeyedWindows, Quota
from backends.realtime.service import (
    STOP_GRACE_SECONDS,
    Event,
    RealtimeError,
    RealtimeService,
    rate_limited,
)
from backends.realtime.sessions import SessionStore
from backends.settings import Settings

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


class _OrjsonJson:
    """python-socketio's `json=` hook: orjson encodes every packet on the hot path.

    python-socketio installs it on its packet class, so it serves every Socket.IO
    server and client in the process; it is a drop-in for the subset they use.
    """

    @staticmethod
    def dumps(obj: Any, **_: Any) -> str:
        return orjson.dumps(obj).decode()

    loads = staticmethod(orjson.loads)


def session_room(session_id: str) -> str:
    return f"session:{session_id}"


def data_room(session_id: str, stream_type: str) -> str:
    return f"session:{session_id}:{stream_type}"


class SocketIOPublisher:
    """The service's `Publisher`: session events to a room, through the client manager."""

    def __init__(self, sio: socketio.AsyncServer) -> None:
        self._sio = sio

    async def publish(self, event: Event, stream_type: str | None) -> None:
        room = (
            data_room(event.session_id, stream_type)
            if stream_type
            else session_room(event.session_id)
        )
        await self._sio.emit("stream_event", event.model_dump(), room=room)


def _error_response(
    error: ErrorInfo, status_code: int, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = ErrorResponse(error=error).model_dump()
    return JSONResponse(body, status_code=status_code, headers=headers)


def _validation_error(exc: ValidationError | RequestValidationError, stream: bool) -> ErrorInfo:
    first = exc.errors()[0]
    location = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
    field = ".".join(location) or "body"
    given = location and first.get("type") != "missing"  # else `input` is the whole body
    details: dict[str, Any] = {"field": field, "value": first.get("input") if given else None}
    expected = first.get("ctx", {}).get("expected")
    if first.get("type") == "literal_error" and isinstance(expected, str):
        details["allowed_values"] = re.findall(r"'([^']*)'", expected)
    code, what = (
        (STREAM_CONFIG_ERROR, "stream configuration") if stream else (INVALID_REQUEST, "request")
    )
    return ErrorInfo(code=code, message=f"Invalid {what}: {field}: {first['msg']}", details=details)


def _rate_limit_headers(quota: Quota, now: float) -> dict[str, str]:
    reset_in = max(int(quota.reset_at - now + 0.999), 0)
    return {
        "X-RateLimit-Limit": str(quota.limit),
        "X-RateLimit-Remaining": str(quota.remaining),
        "X-RateLimit-Reset": str(int(quota.reset_at)),
        "RateLimit-Policy": f'"api";q={quota.limit};w=60',
        "RateLimit": f'"api";r={quota.remaining};t={reset_in}',
    }


def create_api(service: RealtimeService, *, clock: Clock) -> FastAPI:
    """The REST half: providers, sessions and streams under `/api`."""
    app = FastAPI(
        title="streamops realtime streaming API",
        version="1.0",
        description="Sessions, data streams and their Socket.IO events (`stream_event`).",
    )
    limiter = KeyedWindows(service.settings.api_requests_per_minute, 60)

    @app.middleware("http")
    async def rate_limit(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if not request.url.path.startswith("/api"):
            return await call_next(request)
        now = clock.now().timestamp()
        quota = limiter.hit(request.client.host if request.client else "unknown", now)
        if quota.allowed:
            response = await call_next(request)
        else:
            error = rate_limited(
                RATE_LIMIT_EXCEEDED, "Rate limit exceeded. Try again later.", quota, now
            )
            response = _error_response(error.info(), 429, {"Retry-After": str(error.retry_after)})
        response.headers.update(_rate_limit_headers(quota, now))
        return response

    @app.exception_handler(RealtimeError)
    async def realtime_error(_: Request, exc: RealtimeError) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        return _error_response(exc.info(), exc.status_code, headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        stream = request.url.path.startswith("/api/stream")
        return _error_response(_validation_error(exc, stream), 400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = NOT_FOUND if exc.status_code == 404 else f"HTTP_{exc.status_code}"
        return _error_response(ErrorInfo(code=code, message=str(exc.detail)), exc.status_code)

    @app.get("/api/providers", response_model=ApiResponse[ProvidersResponse])
    async def providers() -> ApiResponse[ProvidersResponse]:
        return ApiResponse(data=service.providers())

    @app.post("/api/sessions", response_model=ApiResponse[SessionInfo], status_code=201)
    async def create_session(request: SessionCreate | None = None) -> ApiResponse[SessionInfo]:
        return ApiResponse(data=await service.create_session(request or SessionCreate()))

    @app.get("/api/sessions", response_model=ApiResponse[SessionList])
    async def list_sessions() -> ApiResponse[SessionList]:
        return ApiResponse(data=await service.list_sessions())

    @app.get("/api/sessions/{session_id}", response_model=ApiResponse[SessionInfo])
    async def get_session(session_id: str) -> ApiResponse[SessionInfo]:
        return ApiResponse(data=await service.get_session(session_id))

    @app.post("/api/stream/start", response_model=ApiResponse[StreamStarted])
    async def start_stream(request: StreamStartRequest) -> ApiResponse[StreamStarted]:
        return ApiResponse(data=await service.start_stream(request))

    @app.get(
        "/api/stream/{stream_id}/status",
        response_model=ApiResponse[StreamStatus],
        response_model_exclude_none=True,
    )
    async def stream_status(stream_id: str) -> ApiResponse[StreamStatus]:
        return ApiResponse(data=service.stream_status(stream_id))

    @app.post("/api/stream/{stream_id}/stop", response_model=ApiResponse[StreamStopped])
    async def stop_stream(stream_id: str) -> ApiResponse[StreamStopped]:
        return ApiResponse(data=await service.stop_stream(stream_id))

    @app.get("/api/streams", response_model=ApiResponse[StreamList])
    async def list_streams() -> ApiResponse[StreamList]:
        return ApiResponse(data=service.list_streams())

    @app.get("/api/health", response_model=ApiResponse[WebsocketStatistics])
    async def health() -> ApiResponse[WebsocketStatistics]:
        """Liveness for the console's header: the Socket.IO counters of this process."""
        return ApiResponse(data=service.websocket_statistics())

    return app


def attach_socketio(sio: socketio.AsyncServer, service: RealtimeService) -> None:
    """The Socket.IO half: admission, subscriptions, disconnects."""

    async def refuse(sid: str, error: RealtimeError) -> dict[str, Any]:
        body = error.info().model_dump()
        await sio.emit("error", body, to=sid)
        return body

    @sio.event
    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        given = auth if isinstance(auth, dict) else {}

        def param(name: str) -> str | None:
            value = query.get(name, [given.get(name)])[0]
            return str(value) if value else None

        try:
            session = await service.open_connection(sid, param("session_id"), param("agent_id"))
        except RealtimeError as exc:
            raise socketio.exceptions.ConnectionRefusedError(
                exc.detail, exc.info().model_dump()
            ) from exc
        await sio.enter_room(sid, session_room(session.session_id))

    @sio.event
    async def disconnect(sid: str, *_: Any) -> None:
        service.close_connection(sid)

    async def change(sid: str, data: Any, subscribing: bool) -> dict[str, Any]:
        try:
            request = SubscribeRequest.model_validate(data)
            change = service.subscribe if subscribing else service.unsubscribe
            confirmed = change(sid, request)
        except ValidationError as exc:
            error = _validation_error(exc, stream=True)
            return await refuse(sid, RealtimeError(error.code, error.message, 400, error.details))
        except RealtimeError as exc:
            return await refuse(sid, exc)
        for data_type in confirmed.data_types:
            room = data_room(confirmed.session_id, data_type)
            await (sio.enter_room if subscribing else sio.leave_room)(sid, room)
        body = confirmed.model_dump()
        event = "subscription_confirmed" if subscribing else "unsubscription_confirmed"
        await sio.emit(event, body, to=sid)
        return body

    @sio.event
    async def subscribe_data(sid: str, data: Any = None) -> dict[str, Any]:
        return await change(sid, data, subscribing=True)

    @sio.event
    async def unsubscribe_data(sid: str, data: Any = None) -> dict[str, Any]:
        return await change(sid, data, subscribing=False)


@dataclass
class RealtimeBackend:
    """What `start_realtime` built: serve `app`; `aclose()` before stopping the server."""

    app: ASGIApp
    service: RealtimeService
    sio: socketio.AsyncServer
    demo_session_id: str | None
    _redis: aioredis.Redis

    async def aclose(self) -> None:
        await self.service.aclose()
        for sid in self.service.connected_sids():
            await self.sio.disconnect(sid)
        await self.sio.shutdown()
        manager = self.sio.manager
        if isinstance(manager, socketio.AsyncRedisManager):
            # python-socketio has no stop for its pub/sub listener; end it and its connection.
            # Bounded: redis-py 8.1 can swallow a cancellation that lands inside a command.
            listener = getattr(manager, "thread", None)
            if listener is not None:
                listener.cancel()
                await asyncio.wait({listener}, timeout=STOP_GRACE_SECONDS)
            if manager.redis is not None:
                await manager.redis.aclose()
        await self._redis.aclose()


async def start_realtime(settings: Settings, clock: Clock) -> RealtimeBackend:
    """Build the realtime backend (and its demo session) for the runtime or a test.

    With `settings.redis.url` the sessions live in that Redis and Socket.IO fans out
    through it; otherwise both stay in this process (fakeredis, in-memory manager).
    """
    realtime = settings.realtime
    url = settings.redis.url
    redis: aioredis.Redis = aioredis.from_url(url) if url else fakeredis.FakeAsyncRedis()
    manager = (
        socketio.AsyncRedisManager(url, channel=f"{realtime.redis_prefix}:socketio")
        if url
        else None
    )
    sio = socketio.AsyncServer(async_mode="asgi", client_manager=manager, json=_OrjsonJson)
    service = RealtimeService(
        realtime,
        clock=clock,
        store=SessionStore(redis, realtime.redis_prefix),
        publisher=SocketIOPublisher(sio),
    )
    attach_socketio(sio, service)
    app = socketio.ASGIApp(sio, other_asgi_app=create_api(service, clock=clock))
    demo = await service.start()
    return RealtimeBackend(app, service, sio, demo, redis)
