"""The jobs WebSocket server (websockets): auth, limits, dispatch, job runs, file downloads.

One port serves both the WebSocket endpoint (`jobs.path`, default `/production`)
and plain HTTP GETs of published files (`/files/{token}/{name}`); anything else is 404.

Choices where the spec is silent:
- a refused token closes the just-opened connection with 1008 (policy violation)
  and a short reason such as `UNAUTHORIZED: token expired`; the token may also
  come as an `Authorization: Bearer` header;
- a client address over `connections_per_minute` gets an `error` (RATE_LIMITED,
  `retry_after`) and a close with 1013 (try again later);
- sync handlers (`health`) run in the connection's receive loop, so their replies
  keep request order and they never count as concurrent; they must be quick;
- over-limit messages (`messages_per_second`) are answered RATE_LIMITED with
  `retry_after` and not processed; an 11th concurrent request is RATE_LIMITED with
  `limit`; a message over `max_payload_bytes` is a VALIDATION_ERROR. Frames over
  four times that limit are refused by websockets itself (close 1009), so a client
  cannot make the server buffer arbitrary amounts;
- replies go through a per-connection outbox; when a slow reader has
  `outbox_limit` messages pending, further progress updates to it are dropped
  (responses, results and errors never are);
- token expiry is checked when connecting; an open connection is not cut when
  its token expires later;
- the `response` to `subscribe` / `cancel` carries `{request_id, action, status,
  estimated_duration, progress}` of the target job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from backends.common.clock import Clock
from backends.common.ratelimit import SlidingWindowLimiter
from backends.jobs import protocol
from backends.jobs.auth import AuthError, Principal, TokenVerifier
from backends.jobs.files import FILES_PREFIX
from backends.jobs.handlers import HandlerRegistry, HandlerSpec, JobContext, JobResources
from backends.jobs.models import (
    INTERNAL_ERROR,
    INVALID_ACTION,
    NOT_FOUND,
    RATE_LIMITED,
    TIMEOUT,
    UNAUTHORIZED,
    VALIDATION_ERROR,
    JobStatus,
    RequestMessage,
    SubscribePayload,
)
from backends.jobs.protocol import JobsProtocolError
from backends.jobs.store import DuplicateJob, Job, JobStore
from backends.settings import JobsSettings

log = logging.getLogger(__name__)

CLOSE_POLICY_VIOLATION = 1008
CLOSE_TRY_AGAIN_LATER = 1013
_MAINTENANCE_SECONDS = 30.0


def _dumps(message: dict[str, Any]) -> bytes:
    return orjson.dumps(message, default=str, option=orjson.OPT_SERIALIZE_NUMPY)


class Connection:
    """One client connection: its principal, limits, subscriptions and outbox."""

    def __init__(
        self, ws: ServerConnection, principal: Principal, settings: JobsSettings, clock: Clock
    ) -> None:
        self.ws = ws
        self.principal = principal
        self.active: set[str] = set()
        self.subscriptions: set[Job] = set()
        self.limiter = SlidingWindowLimiter(settings.messages_per_second, 1.0, clock)
        self.dropped = 0
        self._limit = settings.outbox_limit
        self._outbox: deque[bytes] = deque()
        self._wake = asyncio.Event()
        self._closed = False

    def deliver(self, data: bytes, *, droppable: bool = False) -> None:
        if self._closed:
            return
        if droppable and len(self._outbox) >= self._limit:
            self.dropped += 1
            return
        self._outbox.append(data)
        self._wake.set()

    def send(self, message: dict[str, Any]) -> None:
        self.deliver(_dumps(message))

    async def write_loop(self) -> None:
        outbox = self._outbox
        try:
            while True:
                if not outbox:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                await self.ws.send(outbox.popleft(), text=True)
        except ConnectionClosed:
            pass
        finally:
            self._closed = True

    def close(self) -> None:
        self._closed = True
        self._outbox.clear()
        for job in self.subscriptions:
            job.subscribers.discard(self)
        self.subscriptions.clear()


class JobsServer:
    def __init__(
        self,
        settings: JobsSettings,
        resources: JobResources,
        registry: HandlerRegistry,
        *,
        clock: Clock,
        verifier: TokenVerifier | None = None,
    ) -> None:
        self.settings = settings
        self.resources = resources
        self.registry = registry
        self.clock = clock
        self.verifier = verifier or TokenVerifier(settings, clock)
        self.store = JobStore(clock, settings.result_ttl_seconds)
        self._ip_limiter = SlidingWindowLimiter(settings.connections_per_minute, 60.0, clock)
        self._server: Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._maintenance: asyncio.Task[None] | None = None
        self.host = settings.host
        self.port = settings.port

    @property
    def url(self) -> str:
        return f"ws://{self._public_host()}:{self.port}{self.settings.path}"

    @property
    def http_base(self) -> str:
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/")
        return f"http://{self._public_host()}:{self.port}"

    def _public_host(self) -> str:
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            return "127.0.0.1"
        return f"[{host}]" if ":" in host else host

    async def start(self) -> str:
        self._server = await serve(
            self._handle,
            self.settings.host,
            self.settings.port,
            process_request=self._process_request,
            max_size=self.settings.max_payload_bytes * 4,
            max_queue=64,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self.resources.files.base_url = self.http_base
        self._maintenance = asyncio.create_task(self._maintain())
        return self.url

    async def aclose(self) -> None:
        if self._maintenance is not None:
            self._maintenance.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(_MAINTENANCE_SECONDS)
            self.store.purge()
            self.resources.files.purge()

    # -- HTTP side -------------------------------------------------------------

    async def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if path.startswith(FILES_PREFIX):
            return await self._serve_file(path)
        if path != self.settings.path:
            return conn.respond(404, "Not Found\n")
        return None

    async def _serve_file(self, path: str) -> Response:
        published = self.resources.files.lookup(path)
        if published is None:
            return _plain(404, "Not Found", "Not found or expired\n")
        try:
            body = await asyncio.to_thread(published.path.read_bytes)
        except OSError:
            return _plain(404, "Not Found", "Not found or expired\n")
        headers = Headers(
            [
                ("Content-Type", published.content_type),
                ("Content-Length", str(len(body))),
                ("Content-Disposition", f'attachment; filename="{published.name}"'),
                ("Cache-Control", "private, max-age=60"),
                ("Connection", "close"),
            ]
        )
        return Response(200, "OK", headers, body)

    # -- WebSocket side ----------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        address = ws.remote_address[0] if ws.remote_address else "?"
        retry = self._ip_limiter.acquire(str(address))
        if retry:
            message = protocol.error(
                None,
                RATE_LIMITED,
                "Too many connections from this address",
                {
                    "limit": self.settings.connections_per_minute,
                    "window_seconds": 60,
                    "retry_after": round(retry, 3),
                },
            )
            with contextlib.suppress(ConnectionClosed):
                await ws.send(_dumps(message), text=True)
            await ws.close(CLOSE_TRY_AGAIN_LATER, "RATE_LIMITED: too many connections")
            return
        try:
            principal = self.verifier.verify(_token(ws.request))
        except AuthError as exc:
            await ws.close(CLOSE_POLICY_VIOLATION, str(exc)[:120])
            return
        conn = Connection(ws, principal, self.settings, self.clock)
        writer = asyncio.create_task(conn.write_loop())
        try:
            async for raw in ws:
                await self._on_message(conn, raw)
        except ConnectionClosed:
            pass
        finally:
            conn.close()
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    async def _on_message(self, conn: Connection, raw: str | bytes) -> None:
        limit = self.settings.max_payload_bytes
        size = len(raw) if isinstance(raw, bytes) or len(raw) * 4 <= limit else len(raw.encode())
        if size > limit:
            conn.send(
                protocol.error(
                    None,
                    VALIDATION_ERROR,
                    "Message too large",
                    {"field": "message", "expected": f"at most {limit} bytes", "received": size},
                )
            )
            return
        retry = conn.limiter.acquire("messages")
        if retry:
            conn.send(
                protocol.error(
                    _peek_id(raw),
                    RATE_LIMITED,
                    "Too many messages",
                    {
                        "limit": self.settings.messages_per_second,
                        "window_seconds": 1,
                        "retry_after": round(retry, 3),
                    },
                )
            )
            return
        try:
            request = protocol.parse_request(raw)
            sync = self._dispatch(conn, request)
        except JobsProtocolError as exc:
            conn.send(protocol.error_from(exc))
            return
        except Exception:  # a bug must cost one request, never the connection
            log.exception("dispatch failed")
            conn.send(protocol.error(_peek_id(raw), INTERNAL_ERROR, "Internal error"))
            return
        if sync is not None:
            await self._run_sync(conn, *sync)

    def _dispatch(
        self, conn: Connection, request: RequestMessage
    ) -> tuple[HandlerSpec, Any, str] | None:
        """Answer or queue a request; a sync handler is returned for the caller to run."""
        rid = request.id
        if request.action in ("subscribe", "cancel"):
            target = protocol.validate_payload(SubscribePayload, request.payload, rid)
            job = self.store.get(conn.principal.tenant_id, target.request_id)
            if job is None:
                raise JobsProtocolError(
                    NOT_FOUND,
                    f"No job {target.request_id!r}",
                    {"request_id": target.request_id},
                    rid,
                )
            if request.action == "subscribe":
                self._subscribe(conn, rid, job)
            else:
                self._cancel(conn, rid, job)
            return None
        spec = self.registry.get(request.action)
        if spec is None:
            raise JobsProtocolError(
                INVALID_ACTION,
                f"Unknown action {request.action!r}",
                {
                    "action": request.action,
                    "available": [*self.registry.names(), "subscribe", "cancel"],
                },
                rid,
            )
        if spec.permission and spec.permission not in conn.principal.permissions:
            raise JobsProtocolError(
                UNAUTHORIZED,
                f"Permission {spec.permission!r} required for {spec.name}",
                {"required": spec.permission, "granted": sorted(conn.principal.permissions)},
                rid,
            )
        limit = self.settings.max_concurrent_requests
        if len(conn.active) >= limit:
            raise JobsProtocolError(
                RATE_LIMITED,
                "Too many concurrent requests",
                {"limit": limit, "active": len(conn.active)},
                rid,
            )
        payload = (
            protocol.validate_payload(spec.payload, request.payload, rid)
            if spec.payload is not None
            else None
        )
        if spec.sync:
            return spec, payload, rid
        principal = conn.principal
        try:
            job = self.store.create(
                principal.tenant_id, principal.sub, rid, spec.name, spec.estimated_duration
            )
        except DuplicateJob:
            raise JobsProtocolError(
                VALIDATION_ERROR,
                f"Request id {rid!r} is already in use",
                {"field": "id", "expected": "a request id not already in use", "received": rid},
                rid,
            ) from None
        conn.active.add(rid)
        job.subscribers.add(conn)
        conn.subscriptions.add(job)
        conn.send(protocol.response_queued(rid, spec.estimated_duration))
        job.task = self._spawn(self._run_job(conn, spec, payload, job))
        job.task.add_done_callback(lambda _: self._cancelled_before_start(job, spec, conn))
        return None

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _run_sync(self, conn: Connection, spec: HandlerSpec, payload: Any, rid: str) -> None:
        ctx = JobContext(rid, conn.principal, self.resources)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.settings.job_timeout_seconds):
                data = await spec.func(ctx, payload)
            conn.send(protocol.response_success(rid, data, time.perf_counter() - started))
        except JobsProtocolError as exc:
            conn.send(protocol.error_from(exc, rid))
        except TimeoutError:
            conn.send(_timeout(rid, spec, self.settings.job_timeout_seconds))
        except Exception as exc:
            log.exception("handler %s failed", spec.name)
            conn.send(_internal(rid, spec, exc))

    async def _run_job(self, owner: Connection, spec: HandlerSpec, payload: Any, job: Job) -> None:
        rid = job.request_id
        ctx = JobContext(rid, owner.principal, self.resources, job, self.store)
        started = time.perf_counter()
        job.status = "running"
        status: JobStatus = "failed"
        try:
            async with asyncio.timeout(self.settings.job_timeout_seconds):
                data = await spec.func(ctx, payload)
            message = protocol.result(rid, True, data, time.perf_counter() - started, spec.name)
            status = "succeeded"
        except asyncio.CancelledError:
            if not job.cancel_requested:
                message = protocol.error(
                    rid, INTERNAL_ERROR, "Server shutting down", {"retryable": True}
                )
                self.store.finish(job, "failed", _dumps(message))
                raise
            message = _cancelled(rid, spec, time.perf_counter() - started)
            status = "cancelled"
        except JobsProtocolError as exc:
            message = protocol.error_from(exc, rid)
        except TimeoutError:
            message = _timeout(rid, spec, self.settings.job_timeout_seconds)
        except Exception as exc:
            log.exception("job %s (%s) failed", rid, spec.name)
            message = _internal(rid, spec, exc)
        finally:
            owner.active.discard(rid)
        self.store.finish(job, status, _dumps(message))

    def _cancelled_before_start(self, job: Job, spec: HandlerSpec, owner: Connection) -> None:
        """A task cancelled before its first step never ran `_run_job`'s handlers."""
        owner.active.discard(job.request_id)
        if not job.done:
            self.store.finish(job, "cancelled", _dumps(_cancelled(job.request_id, spec, 0.0)))

    def _subscribe(self, conn: Connection, rid: str, job: Job) -> None:
        conn.send(protocol.response_success(rid, _job_view(job), 0.0))
        if job.done:
            assert job.final is not None
            conn.deliver(job.final)
            return
        if conn not in job.subscribers:
            job.subscribers.add(conn)
            conn.subscriptions.add(job)
        if job.last_progress is not None:
            conn.deliver(job.last_progress)

    def _cancel(self, conn: Connection, rid: str, job: Job) -> None:
        if not job.done and job.task is not None:
            job.cancel_requested = True
            job.task.cancel()
            view = {**_job_view(job), "status": "cancelled"}
        else:
            view = _job_view(job)
        conn.send(protocol.response_success(rid, view, 0.0))


def _job_view(job: Job) -> dict[str, Any]:
    return {
        "request_id": job.request_id,
        "action": job.action,
        "status": job.status,
        "estimated_duration": job.estimated_duration,
        "progress": job.progress["progress"] if job.progress else None,
    }


def _cancelled(rid: str, spec: HandlerSpec, elapsed: float) -> dict[str, Any]:
    return protocol.result(rid, False, {"status": "cancelled"}, elapsed, spec.name)


def _timeout(rid: str, spec: HandlerSpec, seconds: float) -> dict[str, Any]:
    return protocol.error(
        rid,
        TIMEOUT,
        f"{spec.name} did not finish within {seconds:g} s",
        {"timeout_seconds": seconds, "handler": spec.name},
    )


def _internal(rid: str, spec: HandlerSpec, exc: BaseException) -> dict[str, Any]:
    return protocol.error(
        rid,
        INTERNAL_ERROR,
        f"{spec.name} failed unexpectedly",
        {"handler": spec.name, "exception": type(exc).__name__},
    )


def _plain(status: int, reason: str, text: str) -> Response:
    body = text.encode()
    headers = Headers(
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ]
    )
    return Response(status, reason, headers, body)


def _token(request: Request | None) -> str | None:
    if request is None:
        return None
    values = parse_qs(urlsplit(request.path).query).get("Authorization")
    if values:
        return values[0]
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else None


def _peek_id(raw: str | bytes) -> str | None:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    value = data.get("id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None
