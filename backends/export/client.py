"""Typed client of the export stream API (`api.py`, or any server following export-stream.md).

Two classes with the same methods: `ExportStreamClient` (blocking; what the spec's
samples and the CLI use) and `AsyncExportStreamClient` (what the console uses).
`consume_stream` keeps the spec's name, signature and dict result, so the spec's
samples run with `from backends.export.client import ExportStreamClient as ScambusClient`.

Choices where the spec is silent:

- `consume_stream` is one request, as in the spec: errors raise `ExportApiError`.
  `iter_messages` is the spec's "continuous polling loop" with the retries a loop
  needs: 429 waits at least `Retry-After`, 503/5xx and network errors back off
  exponentially with jitter, and `max_retries` consecutive failures give up.
- `listen` yields `StreamEvent`s (connected, batch, message, error) whose messages
  stay the spec's dicts: typing every message would cost more than the tail of a
  busy stream can afford; `parse_stream_message` types the ones you look at.
- `listen` reconnects after any drop, from the last cursor it delivered (SSE `id:`,
  else the last message's `cursor`), sending it as `cursor=` and `Last-Event-ID`
  and re-sending the API key. A listen that starts at `"$"` pins the position the
  server reports in `connected` before any message arrives, so a drop before the
  first message loses nothing. 400/401/403/404/410/416 are not retried: the
  caller must act (new credentials, a new cursor).
- A connection silent for `idle_timeout` seconds (no heartbeat either) counts as
  dropped; the default is three heartbeats of the spec's ~15 s.
- Credentials default to `STREAMOPS_API_KEY_ID` / `STREAMOPS_API_KEY_SECRET`, then the
  spec's `SCAMBUS_API_KEY_ID` / `SCAMBUS_API_KEY_SECRET`; the URL to
  `STREAMOPS_EXPORT_URL`, then `http://localhost:8080/api` (`streamops serve`).
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

import httpx
import orjson
from httpx_sse import ServerSentEvent, aconnect_sse, connect_sse
from pydantic import BaseModel

from backends.export.models import (
    ApiKeyCreated,
    ConnectedInfo,
    CreateApiKeyRequest,
    CreateStreamRequest,
    DataType,
    StreamError,
    StreamInfo,
    StreamRecord,
)

DEFAULT_API_URL = "http://localhost:8080/api"
URL_ENV = "STREAMOPS_EXPORT_URL"
KEY_ID_ENV = ("STREAMOPS_API_KEY_ID", "SCAMBUS_API_KEY_ID")
KEY_SECRET_ENV = ("STREAMOPS_API_KEY_SECRET", "SCAMBUS_API_KEY_SECRET")
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
NETWORK_CODES = frozenset({"TIMEOUT", "UNREACHABLE", "DISCONNECTED"})

Order = Literal["asc", "desc"]
M = TypeVar("M", bound=BaseModel)


def _first_env(names: tuple[str, ...]) -> str | None:
    return next((value for name in names if (value := os.environ.get(name))), None)


def credentials_from_env() -> tuple[str | None, str | None]:
    """(key id, secret) from `STREAMOPS_API_KEY_*`, else the spec's `SCAMBUS_API_KEY_*`."""
    return _first_env(KEY_ID_ENV), _first_env(KEY_SECRET_ENV)


class ExportApiError(Exception):
    """A non-2xx answer (with the body's `code`), or none at all (`status` 0).

    `str()` is the one line a user needs: "416 Cursor is before the stream start
    (stream_first_id=1735689600000-0)".
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        body: dict[str, Any] | None = None,
        *,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.body = body or {}
        self.retry_after = (
            retry_after if retry_after is not None else _seconds(self.body.get("retry_after"))
        )
        super().__init__(str(self))

    @property
    def stream_first_id(self) -> str | None:
        value = self.body.get("stream_first_id")
        return str(value) if value is not None else None

    @property
    def retryable(self) -> bool:
        """Worth trying again later: rate limits, rebuilds, server faults, the network."""
        return self.status in RETRYABLE_STATUSES or (
            self.status == 0 and self.code in NETWORK_CODES
        )

    def __str__(self) -> str:
        extras = {k: v for k, v in self.body.items() if k not in {"error", "code", "status"}}
        suffix = f" ({', '.join(f'{k}={v}' for k, v in extras.items())})" if extras else ""
        return f"{self.status} {self.message}{suffix}" if self.status else self.message


def _seconds(value: Any) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None  # an HTTP-date Retry-After: fall back to our own backoff


def error_from_response(response: httpx.Response) -> ExportApiError:
    """Map an error response; a body that is not the spec's JSON still gives a clear line."""
    retry_after = _seconds(response.headers.get("retry-after"))
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        text = response.text.strip()[:200] or response.reason_phrase
        code = response.reason_phrase.upper().replace(" ", "_") or "HTTP_ERROR"
        return ExportApiError(response.status_code, code, text, retry_after=retry_after)
    message = str(body.get("error") or body.get("detail") or response.reason_phrase)
    code = str(body.get("code") or response.reason_phrase.upper().replace(" ", "_"))
    return ExportApiError(response.status_code, code, message, body, retry_after=retry_after)


def _loads(content: bytes) -> Any:
    """`orjson.loads` with the cyclic GC paused: a 1000-message page allocates some 60k
    containers, whose collections would otherwise cost a third of the parse. Left alone
    when the caller has paused the GC itself."""
    if not gc.isenabled():
        return orjson.loads(content)
    gc.disable()
    try:
        return orjson.loads(content)
    finally:
        gc.enable()


def _network_error(exc: httpx.TransportError, url: str) -> ExportApiError:
    if isinstance(exc, httpx.TimeoutException):
        return ExportApiError(0, "TIMEOUT", f"Timed out talking to {url}")
    if isinstance(exc, httpx.ConnectError):
        return ExportApiError(0, "UNREACHABLE", f"Cannot reach {url}: {exc}")
    return ExportApiError(
        0, "DISCONNECTED", f"Connection to {url} lost: {str(exc) or type(exc).__name__}"
    )


@dataclass
class RetryPolicy:
    """Exponential backoff with jitter between `initial_delay` and `max_delay`.

    Attempt n waits a random time in [d/2, d] with d = min(max_delay, initial_delay *
    2**(n-1)): the jitter spreads reconnecting clients, the lower half-bound keeps the
    wait growing. A server's Retry-After is a floor. `max_retries` consecutive
    failures (None: never) end the loop with the last error.
    """

    max_retries: int | None = 10
    initial_delay: float = 0.5
    max_delay: float = 30.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        doublings = min(max(0, attempt - 1), 64)  # no float overflow when retrying forever
        ceiling = min(self.max_delay, self.initial_delay * 2**doublings)
        jittered = ceiling / 2 + self.rng.random() * ceiling / 2
        return max(jittered, retry_after or 0.0)

    def exhausted(self, attempt: int) -> bool:
        return self.max_retries is not None and attempt > self.max_retries


ConnectionStatus = Literal["connecting", "connected", "reconnecting", "closed", "failed"]


@dataclass
class ListenState:
    """What a listener is doing, for a UI to show: updated in place as events arrive.

    `cursor` is where a reconnect would resume; `attempt` counts consecutive failed
    connections (0 while connected); `reconnects` counts every reconnect made.
    """

    cursor: str
    status: ConnectionStatus = "connecting"
    attempt: int = 0
    reconnects: int = 0
    messages: int = 0
    connected: ConnectedInfo | None = None
    last_error: ExportApiError | None = None
    next_retry_in: float | None = None


EventName = Literal["connected", "batch", "message", "error"]


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One SSE event: `messages` for batch/message, `connected` or `error` otherwise."""

    event: EventName
    id: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    connected: ConnectedInfo | None = None
    error: StreamError | None = None


StateCallback = Callable[[ListenState], None]


class _Core:
    """What both clients share: configuration, request shapes and SSE decoding."""

    def __init__(
        self,
        api_url: str | None,
        api_key_id: str | None,
        api_key_secret: str | None,
        retry: RetryPolicy | None,
    ) -> None:
        env_id, env_secret = credentials_from_env()
        self.api_url = (api_url or os.environ.get(URL_ENV) or DEFAULT_API_URL).rstrip("/")
        self.api_key_id = api_key_id or env_id
        self.api_key_secret = api_key_secret or env_secret
        self.retry = retry or RetryPolicy()

    def _auth_headers(self) -> dict[str, str]:
        if self.api_key_id is None or self.api_key_secret is None:
            return {}  # the server answers 401, which says it better than we could
        return {"X-API-Key": f"{self.api_key_id}:{self.api_key_secret}"}

    @staticmethod
    def _poll_params(
        cursor: str | None, order: Order, limit: int, include_test: bool
    ) -> dict[str, str | int]:
        params: dict[str, str | int] = {
            "order": order,
            "limit": limit,
            "include_test": "true" if include_test else "false",
        }
        if cursor is not None:
            params["cursor"] = cursor
        return params

    def _sse_request(
        self, state: ListenState, include_test: bool
    ) -> tuple[dict[str, str], dict[str, str]]:
        params = {"cursor": state.cursor, "include_test": "true" if include_test else "false"}
        headers = self._auth_headers()
        if state.cursor not in {"0", "$"}:
            headers["Last-Event-ID"] = state.cursor
        return params, headers

    @staticmethod
    def _check_stream(response: httpx.Response) -> None:
        content_type = response.headers.get("content-type", "")
        if "text/event-stream" not in content_type:
            raise ExportApiError(
                response.status_code,
                "NOT_AN_EVENT_STREAM",
                f"Expected an event stream, got {content_type or 'no content type'!r}",
            )

    @staticmethod
    def _decode(sse: ServerSentEvent, state: ListenState) -> StreamEvent | None:
        """Turn one SSE event into a `StreamEvent` and advance `state`; None = ignore.

        An event without data is not dispatched (the SSE standard's rule, which
        httpx-sse leaves to us): after an `id:`, a `: heartbeat` comment and its blank
        line come out of httpx-sse as an empty event carrying the last id.
        """
        name = sse.event or "message"
        if not sse.data or name not in {"connected", "batch", "message", "error"}:
            return None  # nothing to dispatch, or an event a newer server added
        try:
            data = orjson.loads(sse.data)
        except orjson.JSONDecodeError as exc:
            raise ExportApiError(0, "BAD_EVENT", f"Undecodable {name} event: {exc}") from exc
        event_id = sse.id or None
        if name == "connected":
            info = ConnectedInfo.model_validate(data)
            state.connected = info
            if state.messages == 0 and state.cursor == "$":
                state.cursor = (
                    info.cursor if info.cursor not in {None, "$"} else info.last_cursor or "0"
                )
            return StreamEvent("connected", event_id, connected=info)
        if name == "error":
            return StreamEvent("error", event_id, error=StreamError.model_validate(data))
        messages = data if name == "batch" else [data]
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise ExportApiError(0, "BAD_EVENT", f"A {name} event must carry message objects")
        if not messages:
            return None
        last = messages[-1]
        cursor = event_id or last.get("cursor") or last.get("message_id")
        if cursor:
            state.cursor = str(cursor)
        state.messages += len(messages)
        return StreamEvent("batch" if name == "batch" else "message", event_id, messages)

    def _connected(self, state: ListenState, on_state: StateCallback | None) -> None:
        state.status, state.attempt, state.next_retry_in = "connected", 0, None
        if on_state:
            on_state(state)

    def _failed(
        self, state: ListenState, error: ExportApiError, on_state: StateCallback | None
    ) -> float:
        """Record a failed connection; the delay before the next try, or raise if done."""
        state.last_error = error
        state.attempt += 1
        if not error.retryable or self.retry.exhausted(state.attempt):
            state.status, state.next_retry_in = "failed", None
            if on_state:
                on_state(state)
            raise error
        delay = self.retry.delay(state.attempt, error.retry_after)
        state.status, state.next_retry_in = "reconnecting", delay
        state.reconnects += 1
        if on_state:
            on_state(state)
        return delay

    def _closed(self, state: ListenState, on_state: StateCallback | None) -> None:
        if state.status != "failed":
            state.status = "closed"
            if on_state:
                on_state(state)


def _stream_timeout(timeout: float, idle_timeout: float) -> httpx.Timeout:
    return httpx.Timeout(timeout, read=idle_timeout)


def _closed_by_server(url: str) -> ExportApiError:
    return ExportApiError(0, "DISCONNECTED", f"{url} closed the event stream")


class Listener:
    """An SSE subscription: iterate it for `StreamEvent`s; `state` says how it is going."""

    def __init__(self, events: Generator[StreamEvent, None, None], state: ListenState) -> None:
        self._events = events
        self.state = state

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> StreamEvent:
        return next(self._events)

    def close(self) -> None:
        self._events.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncListener:
    """The async `Listener`: `async for event in client.listen(key)`; `state` as it goes."""

    def __init__(self, events: AsyncGenerator[StreamEvent, None], state: ListenState) -> None:
        self._events = events
        self.state = state

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> StreamEvent:
        return await anext(self._events)

    async def aclose(self) -> None:
        await self._events.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class ExportStreamClient(_Core):
    """Blocking client; `with ExportStreamClient(...) as client:` closes its connections."""

    def __init__(
        self,
        api_url: str | None = None,
        api_key_id: str | None = None,
        api_key_secret: str | None = None,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(api_url, api_key_id, api_key_secret, retry)
        self.timeout = timeout
        self._sleep = sleep
        self._http = httpx.Client(base_url=self.api_url, timeout=timeout, transport=transport)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        response = self._request(method, path, params=params, json=json, headers=headers)
        return _loads(response.content)

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        try:
            response = self._http.request(
                method, path, params=params, json=json, headers=headers or self._auth_headers()
            )
        except httpx.TransportError as exc:
            raise _network_error(exc, self.api_url) from exc
        if response.is_error:
            raise error_from_response(response)
        return response

    def _model(self, model: type[M], method: str, path: str, **kwargs: Any) -> M:
        return model.model_validate(self._send(method, path, **kwargs))

    def consume_stream(
        self,
        stream_id: str,
        cursor: str | None = None,
        order: Order = "asc",
        limit: int = 100,
        include_test: bool = False,
    ) -> dict[str, Any]:
        """One poll: `{"messages", "next_cursor", "has_more"}`. `stream_id` is the consumer key.

        No `cursor` resumes where this consumer key last left off (server-side).
        """
        params = self._poll_params(cursor, order, limit, include_test)
        return self._send("GET", f"/consume/{stream_id}/poll", params=params)

    def iter_messages(
        self,
        consumer_key: str,
        cursor: str | None = "0",
        order: Order = "asc",
        limit: int = 100,
        include_test: bool = False,
        idle_sleep: float = 5.0,
    ) -> Iterator[dict[str, Any]]:
        """Every message from `cursor` on, polling forever; sleeps `idle_sleep` when caught up.

        Pipelined: when the server announces the next page in `X-Next-Cursor` /
        `X-Has-More` (ours does; the spec's body says the same), the next request is
        already on its way on a helper thread while this page is parsed and consumed.
        So the server's stored resume position may run one page ahead of what the
        caller has processed; a caller that must resume exactly keeps the `cursor`
        of the last message it handled and passes it back.
        """
        attempt = 0
        path = f"/consume/{consumer_key}/poll"

        def fetch(at: str | None) -> httpx.Response:
            return self._request(
                "GET", path, params=self._poll_params(at, order, limit, include_test)
            )

        with ThreadPoolExecutor(1, thread_name_prefix="export-prefetch") as prefetch:
            ahead: Future[httpx.Response] | None = None
            while True:
                try:
                    response = ahead.result() if ahead is not None else fetch(cursor)
                except ExportApiError as error:
                    ahead = None
                    attempt += 1
                    if not error.retryable or self.retry.exhausted(attempt):
                        raise
                    self._sleep(self.retry.delay(attempt, error.retry_after))
                    continue
                attempt = 0
                announced = response.headers.get("x-next-cursor")
                more = response.headers.get("x-has-more") == "true"
                ahead = prefetch.submit(fetch, announced) if announced and more else None
                result = _loads(response.content)
                yield from result.get("messages", [])
                cursor = result.get("next_cursor") or cursor
                if not result.get("has_more"):
                    self._sleep(idle_sleep)

    def get_stream_info(self, consumer_key: str) -> StreamInfo:
        return self._model(StreamInfo, "GET", f"/consume/{consumer_key}/info")

    def listen(
        self,
        consumer_key: str,
        cursor: str = "$",
        include_test: bool = False,
        *,
        idle_timeout: float = 45.0,
        on_state: StateCallback | None = None,
    ) -> Listener:
        """Subscribe over SSE from `cursor` ("$" = only new), reconnecting as needed."""
        state = ListenState(cursor=cursor)
        return Listener(
            self._listen(consumer_key, state, include_test, idle_timeout, on_state), state
        )

    def _listen(
        self,
        consumer_key: str,
        state: ListenState,
        include_test: bool,
        idle_timeout: float,
        on_state: StateCallback | None,
    ) -> Generator[StreamEvent, None, None]:
        path = f"/consume/{consumer_key}/stream"
        timeout = _stream_timeout(self.timeout, idle_timeout)
        try:
            while True:
                params, headers = self._sse_request(state, include_test)
                try:
                    with connect_sse(
                        self._http, "GET", path, params=params, headers=headers, timeout=timeout
                    ) as source:
                        if source.response.is_error:
                            source.response.read()
                            raise error_from_response(source.response)
                        self._check_stream(source.response)
                        for sse in source.iter_sse():
                            event = self._decode(sse, state)
                            if event is None:
                                continue
                            if event.event == "connected":
                                self._connected(state, on_state)
                            yield event
                    error = _closed_by_server(self.api_url)
                except ExportApiError as exc:
                    error = exc
                except httpx.TransportError as exc:
                    error = _network_error(exc, self.api_url)
                self._sleep(self._failed(state, error, on_state))
        finally:
            self._closed(state, on_state)

    def create_stream(
        self,
        name: str,
        data_type: DataType = "identifier",
        max_length: int | None = None,
        max_age_seconds: int | None = None,
        *,
        admin_key: str,
    ) -> StreamRecord:
        body = CreateStreamRequest(
            name=name, data_type=data_type, max_length=max_length, max_age_seconds=max_age_seconds
        )
        return self._model(
            StreamRecord,
            "POST",
            "/admin/streams",
            json=body.model_dump(exclude_none=True),
            headers={"X-Admin-Key": admin_key},
        )

    def create_api_key(
        self, name: str, consumer_keys: list[str] | tuple[str, ...] = (), *, admin_key: str
    ) -> ApiKeyCreated:
        body = CreateApiKeyRequest(name=name, consumer_keys=list(consumer_keys))
        return self._model(
            ApiKeyCreated,
            "POST",
            "/admin/keys",
            json=body.model_dump(),
            headers={"X-Admin-Key": admin_key},
        )


class AsyncExportStreamClient(_Core):
    """The async twin of `ExportStreamClient`: same methods, awaited (`listen` iterated)."""

    def __init__(
        self,
        api_url: str | None = None,
        api_key_id: str | None = None,
        api_key_secret: str | None = None,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(api_url, api_key_id, api_key_secret, retry)
        self.timeout = timeout
        self._sleep = sleep
        self._http = httpx.AsyncClient(base_url=self.api_url, timeout=timeout, transport=transport)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        try:
            response = await self._http.request(
                method, path, params=params, json=json, headers=headers or self._auth_headers()
            )
        except httpx.TransportError as exc:
            raise _network_error(exc, self.api_url) from exc
        if response.is_error:
            raise error_from_response(response)
        return _loads(response.content)

    async def _model(self, model: type[M], method: str, path: str, **kwargs: Any) -> M:
        return model.model_validate(await self._send(method, path, **kwargs))

    async def consume_stream(
        self,
        stream_id: str,
        cursor: str | None = None,
        order: Order = "asc",
        limit: int = 100,
        include_test: bool = False,
    ) -> dict[str, Any]:
        """One poll: `{"messages", "next_cursor", "has_more"}`. `stream_id` is the consumer key."""
        params = self._poll_params(cursor, order, limit, include_test)
        return await self._send("GET", f"/consume/{stream_id}/poll", params=params)

    async def iter_messages(
        self,
        consumer_key: str,
        cursor: str | None = "0",
        order: Order = "asc",
        limit: int = 100,
        include_test: bool = False,
        idle_sleep: float = 5.0,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every message from `cursor` on, polling forever; sleeps `idle_sleep` when caught up."""
        attempt = 0
        while True:
            try:
                result = await self.consume_stream(consumer_key, cursor, order, limit, include_test)
            except ExportApiError as error:
                attempt += 1
                if not error.retryable or self.retry.exhausted(attempt):
                    raise
                await self._sleep(self.retry.delay(attempt, error.retry_after))
                continue
            attempt = 0
            for message in result.get("messages", []):
                yield message
            cursor = result.get("next_cursor") or cursor
            if not result.get("has_more"):
                await self._sleep(idle_sleep)

    async def get_stream_info(self, consumer_key: str) -> StreamInfo:
        return await self._model(StreamInfo, "GET", f"/consume/{consumer_key}/info")

    def listen(
        self,
        consumer_key: str,
        cursor: str = "$",
        include_test: bool = False,
        *,
        idle_timeout: float = 45.0,
        on_state: StateCallback | None = None,
    ) -> AsyncListener:
        """Subscribe over SSE from `cursor` ("$" = only new), reconnecting as needed."""
        state = ListenState(cursor=cursor)
        events = self._listen(consumer_key, state, include_test, idle_timeout, on_state)
        return AsyncListener(events, state)

    async def _listen(
        self,
        consumer_key: str,
        state: ListenState,
        include_test: bool,
        idle_timeout: float,
        on_state: StateCallback | None,
    ) -> AsyncGenerator[StreamEvent, None]:
        path = f"/consume/{consumer_key}/stream"
        timeout = _stream_timeout(self.timeout, idle_timeout)
        try:
            while True:
                params, headers = self._sse_request(state, include_test)
                try:
                    async with aconnect_sse(
                        self._http, "GET", path, params=params, headers=headers, timeout=timeout
                    ) as source:
                        if source.response.is_error:
                            await source.response.aread()
                            raise error_from_response(source.response)
                        self._check_stream(source.response)
                        async for sse in source.aiter_sse():
                            event = self._decode(sse, state)
                            if event is None:
                                continue
                            if event.event == "connected":
                                self._connected(state, on_state)
                            yield event
                    error = _closed_by_server(self.api_url)
                except ExportApiError as exc:
                    error = exc
                except httpx.TransportError as exc:
                    error = _network_error(exc, self.api_url)
                await self._sleep(self._failed(state, error, on_state))
        finally:
            self._closed(state, on_state)

    async def create_stream(
        self,
        name: str,
        data_type: DataType = "identifier",
        max_length: int | None = None,
        max_age_seconds: int | None = None,
        *,
        admin_key: str,
    ) -> StreamRecord:
        body = CreateStreamRequest(
            name=name, data_type=data_type, max_length=max_length, max_age_seconds=max_age_seconds
        )
        return await self._model(
            StreamRecord,
            "POST",
            "/admin/streams",
            json=body.model_dump(exclude_none=True),
            headers={"X-Admin-Key": admin_key},
        )

    async def create_api_key(
        self, name: str, consumer_keys: list[str] | tuple[str, ...] = (), *, admin_key: str
    ) -> ApiKeyCreated:
        body = CreateApiKeyRequest(name=name, consumer_keys=list(consumer_keys))
        return await self._model(
            ApiKeyCreated,
            "POST",
            "/admin/keys",
            json=body.model_dump(),
            headers={"X-Admin-Key": admin_key},
        )
