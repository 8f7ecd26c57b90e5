"""HTTP adapter of export-stream.md over `ExportService` (FastAPI), and the runtime hook.

Thin by design: authenticate, rate-limit, call the service, write its answer.
Every error leaves as `{"error", "code", "status"}` (+ `stream_first_id` on 416,
`retry_after` and a `Retry-After` header on 429 and 503) — request validation,
unknown routes and unexpected failures included.

Routes (base `/api`): `GET consume/{key}/poll|stream|info` with `X-API-Key`;
`POST admin/streams`, `admin/keys`, `admin/streams/{key}/activate|deactivate|rebuild`
with `X-Admin-Key` (the admin API answers 403 ADMIN_DISABLED while
`export.admin_key` is unset).

Choices:
- the rate limit (`rate_limit_per_minute`, sliding window) is per API key and per
  process, counted after authentication (bad keys never use up a real key's
  budget); an SSE connection counts as one request;
- a poll's body is assembled from the stored JSON bytes (`PollPage.to_json`); its
  schema is `models.PollResponse`. `X-Next-Cursor` and `X-Has-More` repeat the body's
  `next_cursor` / `has_more` so that a client can send the next poll before it parses
  this page (the client's pipelined `iter_messages`);
- SSE: `EventStreamResponse` writes each frame under `send_timeout_seconds`; a
  client whose socket stays full that long is dropped (uvicorn then closes the
  connection and logs that the response was incomplete). A disconnect is noticed
  at once from `http.disconnect`, not at the next write, and the session leaves
  the hub however the response ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from dataclasses import dataclass
from typing import Annotated, Any

import fakeredis
import orjson
import redis.asyncio as aioredis
from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from backends.common.clock import Clock
from backends.common.ratelimit import SlidingWindowLimiter
from backends.endpoints import ExportCredentials
from backends.export.feed import FeedRunner, FeedTarget, SyntheticFeed
from backends.export.hub import LiveSession, error_event
from backends.export.models import (
    ApiKeyCreated,
    CreateApiKeyRequest,
    CreateStreamRequest,
    ErrorBody,
    PollResponse,
    StreamInfo,
    StreamRecord,
)
from backends.export.service import ExportError, ExportService, Principal
from backends.export.store import ExportStore
from backends.settings import Settings

log = logging.getLogger(__name__)

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (400, 401, 403, 404, 410, 416, 429, 503)
}
_HTTP_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}


def _json(body: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        location = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query"))
        message = error.get("msg", "invalid value")
        parts.append(f"{location}: {message}" if location else message)
    return "; ".join(parts) or "Invalid request"


class _Stalled(Exception):
    """A send to the client did not complete within the send timeout."""


class EventStreamResponse(StreamingResponse):
    """`text/event-stream` from a `LiveSession`, with a send timeout and disconnect watch."""

    def __init__(self, session: LiveSession, *, send_timeout: float) -> None:
        self._session = session
        self._frames = session.frames()
        self._send_timeout = send_timeout
        super().__init__(
            self._frames,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            writer = asyncio.create_task(self._write(send))
            watcher = asyncio.create_task(_until_disconnect(receive))
            try:
                await asyncio.wait((writer, watcher), return_when=asyncio.FIRST_COMPLETED)
            finally:
                writer.cancel()
                watcher.cancel()
                self._session.close()  # ends the writer even if its cancellation is lost
                await asyncio.gather(writer, watcher, return_exceptions=True)
        finally:
            self._session.close()

    async def _write(self, send: Send) -> None:
        try:
            async with contextlib.aclosing(self._frames) as frames:
                try:
                    async for frame in frames:
                        await self._send(send, frame, more=True)
                except _Stalled:
                    raise
                except Exception:
                    log.exception("export SSE stream failed")
                    failure = error_event("INTERNAL_ERROR", "Internal server error")
                    await self._send(send, failure, more=True)
            await self._send(send, b"", more=False)
        except _Stalled:
            log.info("export SSE: dropped a client stalled for %s s", self._send_timeout)

    async def _send(self, send: Send, body: bytes, *, more: bool) -> None:
        try:
            async with asyncio.timeout(self._send_timeout):
                await send({"type": "http.response.body", "body": body, "more_body": more})
        except TimeoutError:
            raise _Stalled from None


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _consumer(
    request: Request, x_api_key: Annotated[str | None, Header()] = None
) -> Principal:
    """The caller's API key, counted against its rate limit."""
    service: ExportService = request.app.state.export_service
    limiter: SlidingWindowLimiter = request.app.state.export_limiter
    principal = await service.authenticate(x_api_key)
    wait = limiter.acquire(principal.api_key_id)
    if wait:
        raise ExportError(
            429,
            "RATE_LIMITED",
            "Rate limit exceeded. Try again later.",
            retry_after=max(math.ceil(wait), 1),
        )
    return principal


async def _admin(request: Request, x_admin_key: Annotated[str | None, Header()] = None) -> None:
    request.app.state.export_service.check_admin(x_admin_key)


Consumer = Annotated[Principal, Depends(_consumer)]


def create_app(service: ExportService, *, clock: Clock) -> FastAPI:
    settings = service.settings
    app = FastAPI(
        title="streamops export stream API",
        version="1.0",
        description="Cursor polling and SSE over Redis Streams of journal entries and identifiers.",
    )
    app.state.export_service = service
    app.state.export_limiter = SlidingWindowLimiter(settings.rate_limit_per_minute, 60.0, clock)

    @app.exception_handler(ExportError)
    async def export_error(_: Request, exc: ExportError) -> Response:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
        return _json(exc.body(), exc.status_code, headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        body = {"error": _validation_message(exc), "code": "INVALID_PARAMETER", "status": 400}
        return _json(body, 400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
        return _json(
            {"error": exc.detail, "code": code, "status": exc.status_code}, exc.status_code
        )

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> Response:
        log.error("export API failure", exc_info=exc)
        return _json(
            {"error": "Internal server error", "code": "INTERNAL_ERROR", "status": 500}, 500
        )

    api = APIRouter(prefix="/api", responses=ERROR_RESPONSES)

    @api.get(
        "/consume/{consumer_key}/poll",
        response_class=Response,
        responses={200: {"model": PollResponse}},
    )
    async def poll(
        consumer_key: str,
        principal: Consumer,
        cursor: str | None = None,
        order: str = "asc",
        limit: int = 100,
        include_test: bool = False,
    ) -> Response:
        page = await service.poll(
            principal,
            consumer_key,
            cursor=cursor,
            order=order,
            limit=limit,
            include_test=include_test,
        )
        headers = {"X-Has-More": "true" if page.has_more else "false"}
        if page.next_cursor is not None:
            headers["X-Next-Cursor"] = page.next_cursor
        return Response(page.to_json(), media_type="application/json", headers=headers)

    @api.get(
        "/consume/{consumer_key}/stream",
        response_class=EventStreamResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def stream(
        consumer_key: str,
        principal: Consumer,
        cursor: str | None = None,
        include_test: bool = False,
        last_event_id: Annotated[str | None, Header()] = None,
    ) -> EventStreamResponse:
        session = await service.open_subscription(
            principal, consumer_key, cursor=last_event_id or cursor, include_test=include_test
        )
        return EventStreamResponse(session, send_timeout=settings.send_timeout_seconds)

    @api.get("/consume/{consumer_key}/info", response_model=StreamInfo)
    async def info(consumer_key: str, principal: Consumer) -> StreamInfo:
        return await service.info(principal, consumer_key)

    admin_only = [Depends(_admin)]

    @api.post(
        "/admin/streams", status_code=201, response_model=StreamRecord, dependencies=admin_only
    )
    async def create_stream(request: CreateStreamRequest) -> StreamRecord:
        return await service.create_stream(request)

    @api.post("/admin/keys", status_code=201, response_model=ApiKeyCreated, dependencies=admin_only)
    async def create_key(request: CreateApiKeyRequest) -> ApiKeyCreated:
        return await service.create_api_key(request)

    @api.post(
        "/admin/streams/{consumer_key}/activate",
        response_model=StreamRecord,
        dependencies=admin_only,
    )
    async def activate(consumer_key: str) -> StreamRecord:
        return await service.set_active(consumer_key, True)

    @api.post(
        "/admin/streams/{consumer_key}/deactivate",
        response_model=StreamRecord,
        dependencies=admin_only,
    )
    async def deactivate(consumer_key: str) -> StreamRecord:
        return await service.set_active(consumer_key, False)

    @api.post(
        "/admin/streams/{consumer_key}/rebuild",
        response_model=StreamRecord,
        dependencies=admin_only,
    )
    async def rebuild(consumer_key: str) -> StreamRecord:
        return await service.rebuild(consumer_key)

    app.include_router(api)
    return app


# -- runtime hook ------------------------------------------------------------------


@dataclass
class ExportBackend:
    """What `start_export` hands the host: serve `app`, show `credentials`.

    Call `aclose()` before stopping the server: it stops the feed and ends every
    SSE connection (an `error` event with code SHUTDOWN), so uvicorn's graceful
    shutdown is not held up by open streams; then it closes the Redis client.
    """

    service: ExportService
    app: FastAPI
    credentials: ExportCredentials
    feed: FeedRunner
    redis: aioredis.Redis

    async def aclose(self) -> None:
        await self.feed.stop()
        await self.service.aclose()
        await self.redis.aclose()


async def start_export(settings: Settings, clock: Clock) -> ExportBackend:
    """Build the export backend on the running loop: Redis (`redis.url`, else an
    in-process fakeredis), the service, the demo streams and key, the running feed."""
    export = settings.export
    redis: aioredis.Redis = (
        fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
        if settings.redis.url is None
        else aioredis.from_url(settings.redis.url)
    )
    try:
        service = ExportService(ExportStore(redis), export, clock=clock)
        credentials = await service.bootstrap_demo()
    except BaseException:
        await redis.aclose()
        raise
    feed = FeedRunner(
        SyntheticFeed(random.Random(export.seed), clock, test_share=export.feed_test_share),
        service.publish_many,
        [FeedTarget(s.consumer_key, s.data_type) for s in credentials.streams],
        rate=export.feed_rate,
        clock=clock,
    )
    feed.start()
    return ExportBackend(service, create_app(service, clock=clock), credentials, feed, redis)
