"""Typed asyncio client of the jobs WebSocket API (websocket-jobs.md), and `mint_token`.

    async with JobsClient("ws://127.0.0.1:8765/production", token) as client:
        health = await client.request("health", {})
        report = await client.request("generate_report", {...}, on_progress=print)

`request()` returns a sync action's `data` or a queued action's final result
`data`, and raises `JobsError` for an `error` message (or a cancelled job, code
`CANCELLED`). `submit()` returns a `JobHandle` once the server has answered, to
watch several jobs at once. One reader task routes every message by `request_id`.

Reconnection: when the connection drops (anything but a close for policy, 1008,
which means the token is refused and fails every waiter with UNAUTHORIZED), the
client reconnects with exponential backoff (`backoff_initial` doubling up to
`backoff_max`) and sends `subscribe` for each job it is still waiting on, so it
gets the job's latest progress and then the rest, or the stored result. A request
that was sent but never answered is subscribed to as well and, if the server never
saw it (NOT_FOUND), sent again. Client-side codes besides the spec's:
`CANCELLED`, `CONNECTION_CLOSED`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import jwt
import orjson
from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from backends.jobs.models import (
    CANCELLED,
    NOT_FOUND,
    UNAUTHORIZED,
    ErrorMessage,
    ResultBody,
    ResultMessage,
)
from backends.settings import JobsSettings

log = logging.getLogger(__name__)

URL_ENV = "STREAMOPS_JOBS_URL"
TOKEN_ENV = "STREAMOPS_JOBS_TOKEN"
CONNECTION_CLOSED = "CONNECTION_CLOSED"
ClientState = Literal["connecting", "connected", "reconnecting", "closed"]
HandleStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
ProgressCallback = Callable[["Progress"], Any]
_callback_tasks: set[asyncio.Future[Any]] = set()  # async progress callbacks still running


class JobsError(Exception):
    def __init__(
        self,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details
        self.request_id = request_id

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> JobsError:
        body = ErrorMessage.model_validate(message).error
        return cls(body.code, body.message, body.details, body.request_id)


@dataclass
class Progress:
    request_id: str
    percentage: float
    message: str
    current_step: str | None
    records_processed: int | None
    records_total: int | None
    timestamp: str
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __getitem__(self, key: str) -> Any:
        """The spec's field names (`progress['progress']`, `progress['message']`), so the
        spec's Python sample callbacks work unchanged."""
        return self.raw[key]

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> Progress:
        body = message["progress"]
        meta = body.get("metadata") or {}
        return cls(
            raw=body,
            request_id=body["request_id"],
            percentage=float(body.get("progress", 0.0)),
            message=body.get("message", ""),
            current_step=meta.get("current_step"),
            records_processed=meta.get("records_processed"),
            records_total=meta.get("records_total"),
            timestamp=body.get("timestamp", ""),
        )


def _call(callback: ProgressCallback | None, progress: Progress) -> None:
    if callback is None:
        return
    try:
        outcome = callback(progress)
        if inspect.isawaitable(outcome):
            task = asyncio.ensure_future(outcome)
            _callback_tasks.add(task)
            task.add_done_callback(_callback_tasks.discard)
    except Exception:
        log.exception("progress callback failed")


class JobHandle:
    """One submitted (or subscribed) request and its progress, status and outcome."""

    def __init__(
        self,
        request_id: str,
        action: str,
        message: dict[str, Any] | None,
        on_progress: ProgressCallback | None,
    ) -> None:
        self.request_id = request_id
        self.action = action
        self.status: HandleStatus = "queued"
        self.estimated_duration: float | None = None
        self.last_progress: Progress | None = None
        self.submitted_at = time.monotonic()
        self.sync = False
        self._message = message  # the original request, re-sent if the server never saw it
        self._callbacks: list[ProgressCallback] = [on_progress] if on_progress else []
        loop = asyncio.get_running_loop()
        self._accepted: asyncio.Future[None] = loop.create_future()
        self._done: asyncio.Future[ResultMessage] = loop.create_future()

    @property
    def done(self) -> bool:
        return self._done.done()

    @property
    def accepted(self) -> bool:
        return self._accepted.done()

    async def result(self) -> ResultMessage:
        """The final `result` message; raises `JobsError` on an error or a cancel."""
        return await asyncio.shield(self._done)

    def add_progress_callback(self, callback: ProgressCallback) -> None:
        self._callbacks.append(callback)

    def _progress(self, progress: Progress) -> None:
        if self.done:
            return
        self.status = "running"
        self.last_progress = progress
        for callback in self._callbacks:
            _call(callback, progress)

    def _accept(self, error: JobsError | None = None) -> None:
        if self._accepted.done():
            return
        if error is None:
            self._accepted.set_result(None)
        else:
            self._accepted.set_exception(error)
            self._accepted.exception()  # retrieved: nobody may be awaiting it

    def _finish(self, result: ResultMessage | None, error: JobsError | None = None) -> None:
        if self._done.done():
            return
        if error is not None:
            self.status = "cancelled" if error.code == CANCELLED else "failed"
            self._done.set_exception(error)
            self._done.exception()
            self._accept(error)
        else:
            assert result is not None
            self.status = "succeeded"
            self._done.set_result(result)
            self._accept()


class JobsClient:
    def __init__(
        self,
        endpoint: str,
        token: str,
        *,
        reconnect: bool = True,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        on_state: Callable[[str], None] | None = None,
        open_timeout: float = 10.0,
        max_message_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.endpoint = endpoint
        self._url = _with_token(endpoint, token)
        self.reconnect = reconnect
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._on_state = on_state
        self._open_timeout = open_timeout
        self._max_size = max_message_bytes
        self.state: str = "closed"
        self.close_reason: str | None = None
        self.reconnects = 0
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._closing = False
        self._terminal: JobsError | None = None  # why the connection is over for good
        self._handles: dict[str, JobHandle] = {}
        self._acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._prefix = os.urandom(4).hex()
        self._background: set[asyncio.Task[Any]] = set()

    # -- lifecycle -------------------------------------------------------------

    async def __aenter__(self) -> JobsClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            if self._on_state is not None:
                try:
                    self._on_state(state)
                except Exception:
                    log.exception("on_state callback failed")

    async def connect(self) -> None:
        """Open the connection (once); raises `JobsError` if the server cannot be reached."""
        if self._reader is not None:
            return
        self._closing = False
        self._terminal = None
        self._set_state("connecting")
        try:
            self._ws = await self._open()
        except JobsError:
            self._set_state("closed")
            raise
        self._connected.set()
        self._set_state("connected")
        self._reader = asyncio.create_task(self._read_loop())

    async def _open(self) -> ClientConnection:
        try:
            return await connect(
                self._url, open_timeout=self._open_timeout, max_size=self._max_size
            )
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            raise JobsError(
                CONNECTION_CLOSED, f"cannot connect to {self.endpoint}: {exc}"
            ) from None

    async def aclose(self) -> None:
        self._closing = True
        self._connected.set()  # wake senders, who now raise CONNECTION_CLOSED
        reader, self._reader = self._reader, None
        if self._ws is not None:
            await self._ws.close()
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        for task in list(self._background):
            task.cancel()
        self._fail_all(JobsError(CONNECTION_CLOSED, "client closed"))
        self._set_state("closed")

    # -- API ----------------------------------------------------------------------

    def new_request_id(self) -> str:
        return f"{int(time.time() * 1000)}-{self._prefix}-{next(self._ids)}"

    async def request(
        self,
        action: str,
        payload: dict[str, Any],
        *,
        on_progress: ProgressCallback | None = None,
        request_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Any:
        handle = await self.submit(
            action, payload, on_progress=on_progress, request_id=request_id, metadata=metadata
        )
        return (await handle.result()).result.data

    async def submit(
        self,
        action: str,
        payload: dict[str, Any],
        *,
        on_progress: ProgressCallback | None = None,
        request_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> JobHandle:
        rid = request_id or self.new_request_id()
        if rid in self._handles:
            raise JobsError("VALIDATION_ERROR", f"request id {rid!r} is already in use")
        message: dict[str, Any] = {"id": rid, "action": action, "payload": payload}
        if metadata is not None:
            message["metadata"] = metadata
        handle = JobHandle(rid, action, message, on_progress)
        self._handles[rid] = handle
        try:
            await self._send(message)
            await asyncio.shield(handle._accepted)
        except BaseException:
            if not handle.accepted or handle.done:
                self._handles.pop(rid, None)
            raise
        return handle

    async def subscribe(
        self, request_id: str, *, on_progress: ProgressCallback | None = None
    ) -> JobHandle:
        handle = self._handles.get(request_id)
        if handle is not None:
            if on_progress is not None:
                handle.add_progress_callback(on_progress)
            return handle
        handle = JobHandle(request_id, "", None, on_progress)
        self._handles[request_id] = handle
        try:
            view = await self._ack("subscribe", request_id)
        except BaseException:
            self._handles.pop(request_id, None)
            raise
        self._apply_view(handle, view)
        handle._accept()
        return handle

    async def cancel(self, request_id: str) -> None:
        await self._ack("cancel", request_id)

    @property
    def jobs(self) -> list[JobHandle]:
        return list(self._handles.values())

    # -- internals ------------------------------------------------------------------

    async def _send(self, message: dict[str, Any]) -> None:
        while True:
            if self._closing:
                raise JobsError(CONNECTION_CLOSED, "client closed")
            if self._terminal is not None:
                raise self._terminal
            if self._reader is None and not self._connected.is_set():
                await self.connect()
            await self._connected.wait()
            ws = self._ws
            assert ws is not None
            try:
                await ws.send(orjson.dumps(message).decode())
                return
            except ConnectionClosed:
                if self._ws is ws and not self._closing and self._terminal is None:
                    self._connected.clear()  # the reader notices too: it reconnects or ends

    async def _ack(self, action: str, target: str) -> dict[str, Any]:
        rid = self.new_request_id()
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._acks[rid] = future
        try:
            await self._send({"id": rid, "action": action, "payload": {"request_id": target}})
            reply = await future
        finally:
            self._acks.pop(rid, None)
        if reply.get("type") == "error":
            raise JobsError.from_message(reply)
        return reply["response"].get("data") or {}

    @staticmethod
    def _apply_view(handle: JobHandle, view: dict[str, Any]) -> None:
        handle.action = view.get("action") or handle.action
        handle.estimated_duration = view.get("estimated_duration", handle.estimated_duration)
        status = view.get("status")
        if status in ("queued", "running") and not handle.done:
            handle.status = status

    async def _read_loop(self) -> None:
        while True:
            ws = self._ws
            assert ws is not None
            try:
                async for raw in ws:
                    self._route(raw)
            except ConnectionClosed:
                pass
            code = ws.close_code
            reason = ws.close_reason or ""
            if self._closing:
                return
            if code == 1008 or not self.reconnect:
                self.close_reason = reason or f"closed ({code})"
                if code == 1008:
                    name, _, text = reason.partition(": ")
                    self._terminal = JobsError(name or UNAUTHORIZED, text or reason)
                else:
                    self._terminal = JobsError(CONNECTION_CLOSED, self.close_reason)
                self._fail_all(self._terminal)
                self._set_state("closed")
                self._reader = None
                self._connected.set()  # wake senders, who now raise `_terminal`
                return
            self._connected.clear()
            for future in self._acks.values():  # acks of the old connection never come
                if not future.done():
                    future.set_result(_error_dict(CONNECTION_CLOSED, "connection lost"))
            await self._reconnect()
            if self._ws is None:
                return

    async def _reconnect(self) -> None:
        self._set_state("reconnecting")
        delay = self.backoff_initial
        while not self._closing:
            await asyncio.sleep(delay)
            try:
                self._ws = await self._open()
            except JobsError:
                delay = min(delay * 2, self.backoff_max)
                continue
            self.reconnects += 1
            self._connected.set()
            self._set_state("connected")
            for handle in list(self._handles.values()):
                if not handle.done:
                    task = asyncio.create_task(self._resume(handle))
                    self._background.add(task)
                    task.add_done_callback(self._background.discard)
            return
        self._ws = None

    async def _resume(self, handle: JobHandle) -> None:
        """Re-attach to a job after a reconnect; re-send a request the server never saw."""
        try:
            view = await self._ack("subscribe", handle.request_id)
        except JobsError as exc:
            if exc.code == NOT_FOUND and handle._message is not None and not handle.accepted:
                await self._send(handle._message)
            elif exc.code == NOT_FOUND:
                handle._finish(None, exc)
                self._handles.pop(handle.request_id, None)
            return
        self._apply_view(handle, view)
        handle._accept()

    def _route(self, raw: str | bytes) -> None:
        try:
            message = orjson.loads(raw)
            kind = message["type"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.warning("unreadable message from the jobs server")
            return
        body = message.get(kind) or {}
        rid = body.get("request_id")
        ack = self._acks.get(rid) if rid is not None else None
        if ack is not None and kind in ("response", "error"):
            if not ack.done():
                ack.set_result(message)
            return
        handle = self._handles.get(rid) if rid is not None else None
        if handle is None:
            if kind == "error":
                log.warning("jobs server error: %s %s", body.get("code"), body.get("message"))
            return
        try:
            if kind == "progress":
                handle._progress(Progress.from_message(message))
            elif kind == "response":
                self._on_response(handle, body)
            elif kind == "result":
                self._on_result(handle, ResultMessage.model_validate(message))
            elif kind == "error":
                handle._finish(None, JobsError.from_message(message))
                self._handles.pop(handle.request_id, None)
        except (ValidationError, KeyError, TypeError, ValueError):
            log.warning("malformed %s message for %s", kind, rid)

    def _on_response(self, handle: JobHandle, body: dict[str, Any]) -> None:
        if body.get("status") == "queued":
            handle.estimated_duration = body.get("estimated_duration")
            handle._accept()
            return
        handle.sync = True
        metadata = body.get("metadata") or {}
        result = ResultMessage(
            result=ResultBody(
                request_id=handle.request_id,
                success=True,
                data=body.get("data"),
                metadata={
                    "total_processing_time": metadata.get("processing_time"),
                    "handler": handle.action,
                },
            )
        )
        handle._finish(result)
        self._handles.pop(handle.request_id, None)

    def _on_result(self, handle: JobHandle, message: ResultMessage) -> None:
        body = message.result
        self._handles.pop(handle.request_id, None)
        if body.success:
            handle._finish(message)
            return
        data = body.data if isinstance(body.data, dict) else {}
        if data.get("status") == "cancelled":
            handle._finish(None, JobsError(CANCELLED, "job cancelled", data, handle.request_id))
        else:
            handle._finish(
                None, JobsError("INTERNAL_ERROR", "job failed", data or None, handle.request_id)
            )

    def _fail_all(self, error: JobsError) -> None:
        for handle in list(self._handles.values()):
            handle._finish(
                None, JobsError(error.code, error.message, error.details, handle.request_id)
            )
        self._handles.clear()
        for future in self._acks.values():
            if not future.done():
                future.set_result(_error_dict(error.code, error.message))


def _error_dict(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"code": code, "message": message, "details": None}}


def _with_token(endpoint: str, token: str) -> str:
    parts = urlsplit(endpoint)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "Authorization"]
    query.append(("Authorization", token))
    return urlunsplit(parts._replace(query=urlencode(query)))


def mint_token(
    settings_or_secret: JobsSettings | str,
    sub: str,
    tenant_id: str,
    *,
    permissions: list[str] | None = None,
    lifetime_seconds: float = 3600,
    issuer: str | None = None,
    algorithm: str | None = None,
    private_key: str | None = None,
    now: datetime | None = None,
    extra_claims: dict[str, Any] | None = None,
) -> str:
    """A signed token for the jobs server: HMAC with the configured (or given) secret,
    or RS256/ES256 with `private_key`. `now` comes from the caller's clock."""
    if isinstance(settings_or_secret, JobsSettings):
        settings = settings_or_secret
        secret = settings.secret
        issuer = issuer if issuer is not None else settings.issuer
        algorithm = algorithm or next(
            (a for a in settings.algorithms if a.startswith("HS") or private_key), "HS256"
        )
    else:
        secret = settings_or_secret
        algorithm = algorithm or "HS256"
    issued = (now or datetime.now().astimezone()).timestamp()
    claims: dict[str, Any] = {
        "sub": sub,
        "tenant_id": tenant_id,
        "permissions": permissions if permissions is not None else ["read", "write"],
        "iat": int(issued),
        "exp": int(issued + lifetime_seconds),
    }
    if issuer:
        claims["iss"] = issuer
    claims.update(extra_claims or {})
    key = private_key if not algorithm.startswith("HS") else secret
    if not key:
        raise ValueError("no secret (jobs.secret) or private key to sign the token with")
    return jwt.encode(claims, key, algorithm=algorithm)
