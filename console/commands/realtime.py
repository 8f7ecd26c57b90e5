"""`streamops realtime …`: sessions, streams and a live tail of a realtime server's events.

A client of the realtime API (REST under `/api`, Socket.IO `stream_event`s), like the
spec's Python SDK. The server is `--url`, else `$STREAMOPS_REALTIME_URL`, else
`realtime.url` from the config (or `STREAMOPS_REALTIME__URL`), else the well-known
`http://localhost:5000` of `streamops serve`.

Human output goes through rich; `--json` prints the `data` the server sent (one JSON
line per event for `listen`). Errors are one line on stderr, `error: 404
SESSION_NOT_FOUND: Invalid session ID`, exit 1; bad options exit 2. Stream types can be
given by their spec name (`gmail_messages`) or short name (`gmail`). `listen` reports
connection changes (subscribed, reconnecting, refusals) on stderr, so stdout holds
only events.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import click
import orjson
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.table import Table

from backends.realtime.client import EventStream, RealtimeApiError, RealtimeClient
from backends.realtime.models import STREAM_TYPES, SessionCreate, StreamStartRequest
from backends.settings import Settings
from console.realtime_format import (
    TYPE_ALIASES,
    clock_of,
    format_event,
    parse_stream_filters,
    resolve_type,
)

URL_ENV = "STREAMOPS_REALTIME_URL"
DEFAULT_URL = "http://localhost:5000"
F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
out = Console(highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)  # errors stay one line
TYPE_HELP = f"Stream type: {', '.join(STREAM_TYPES)} or {', '.join(TYPE_ALIASES)}."


def _url(ctx: click.Context, url: str | None) -> str:
    settings = ctx.find_object(Settings) or Settings()
    return url or os.environ.get(URL_ENV) or settings.realtime.url or DEFAULT_URL


def _fail(ctx: click.Context, message: str, code: int = 1) -> None:
    err.print(f"error: {message}", markup=False)
    ctx.exit(code)


def _call(
    ctx: click.Context, url: str | None, action: Callable[[RealtimeClient], Awaitable[T]]
) -> T:
    """One request; an API error becomes `error: 404 SESSION_NOT_FOUND: …` and exit 1."""

    async def run() -> T:
        async with RealtimeClient(_url(ctx, url)) as client:
            return await action(client)

    try:
        return asyncio.run(run())
    except RealtimeApiError as exc:
        _fail(ctx, str(exc))
    raise AssertionError("unreachable")


def _emit(result: BaseModel | list[Any], as_json: bool, human: Callable[[], None]) -> None:
    if not as_json:
        human()
    elif isinstance(result, BaseModel):
        click.echo(result.model_dump_json(indent=2))
    else:
        click.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())


def _table(title: str, columns: list[str], rows: Iterable[list[Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    return table


def _kv(title: str, data: dict[str, Any]) -> Table:
    return _table(title, ["field", "value"], ([k, v] for k, v in data.items()))


def _stream_type(ctx: click.Context, name: str) -> str:
    try:
        return resolve_type(name)
    except ValueError as exc:
        _fail(ctx, str(exc), 2)
    raise AssertionError("unreachable")


def client_options(command: F) -> F:
    """`--url` and `--json`, and the click context."""
    command = click.pass_context(command)
    command = click.option("--json", "as_json", is_flag=True, help="Print the raw JSON.")(command)
    return click.option("--url", help="Realtime server (default: env, config or :5000).")(command)


@click.group("realtime")
def realtime() -> None:
    """Realtime streams: sessions, stream REST API, live Socket.IO events."""


@realtime.command("providers")
@client_options
def providers(ctx: click.Context, url: str | None, as_json: bool) -> None:
    """Providers, their stream types and each type's filters."""
    result = _call(ctx, url, lambda c: c.providers())

    def human() -> None:
        out.print(
            _table(
                "stream types",
                ["stream type", "data type", "providers", "filters"],
                (
                    [t.stream_type, t.data_type, ", ".join(t.providers), ", ".join(t.filters)]
                    for t in result.stream_types
                ),
            )
        )

    _emit(result, as_json, human)


@realtime.command("create-session")
@click.option(
    "--provider", type=click.Choice(["google", "microsoft"]), default="google", show_default=True
)
@click.option("--agent-id", help="Only this agent may connect with the session.")
@click.option("--expires-in", type=int, help="Token lifetime in seconds (default: server's).")
@client_options
def create_session(
    ctx: click.Context,
    provider: str,
    agent_id: str | None,
    expires_in: int | None,
    url: str | None,
    as_json: bool,
) -> None:
    """Create a session (stands in for an OAuth grant); prints its id."""
    try:
        request = SessionCreate.model_validate(
            {"provider": provider, "agent_id": agent_id, "expires_in": expires_in}
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        _fail(ctx, f"{'.'.join(map(str, first['loc']))}: {first['msg']}", 2)
    result = _call(ctx, url, lambda c: c.create_session(request))
    _emit(
        result, as_json, lambda: out.print(_kv(f"session {result.session_id}", result.model_dump()))
    )


@realtime.command("sessions")
@client_options
def sessions(ctx: click.Context, url: str | None, as_json: bool) -> None:
    """Every session the server knows, oldest first."""
    result = _call(ctx, url, lambda c: c.list_sessions())
    rows = (
        [s.session_id, s.provider, s.agent_id, s.status, clock_of(s.expires_at)]
        for s in result.sessions
    )
    _emit(
        result,
        as_json,
        lambda: out.print(
            _table(
                f"{result.total_count} sessions",
                ["session", "provider", "agent", "status", "token expires (UTC)"],
                rows,
            )
        ),
    )


@realtime.command("session")
@click.argument("session_id")
@client_options
def session(ctx: click.Context, session_id: str, url: str | None, as_json: bool) -> None:
    """One session: provider, token expiry, stream types."""
    result = _call(ctx, url, lambda c: c.get_session(session_id))
    _emit(result, as_json, lambda: out.print(_kv(f"session {session_id}", result.model_dump())))


@realtime.command("start-stream")
@click.argument("session_id")
@click.argument("stream_type")
@click.option("--batch-size", type=int, default=100, show_default=True)
@click.option("--max-results", type=int, default=1000, show_default=True)
@click.option("--real-time", is_flag=True, help="Keep streaming new items as they arrive.")
@click.option("--rate-limit", "rate_limit", type=int, help="data_update events per minute.")
@click.option(
    "--filter",
    "filters",
    multiple=True,
    help='key=value (repeat): query="is:unread", label_ids=INBOX,IMPORTANT, or a JSON object.',
)
@client_options
def start_stream(
    ctx: click.Context,
    session_id: str,
    stream_type: str,
    batch_size: int,
    max_results: int,
    real_time: bool,
    rate_limit: int | None,
    filters: tuple[str, ...],
    url: str | None,
    as_json: bool,
) -> None:
    """Start streaming STREAM_TYPE of SESSION_ID (POST /api/stream/start)."""
    try:
        parsed: dict[str, Any] = {}
        for text in filters:
            parsed |= parse_stream_filters(text)
        request = StreamStartRequest(
            session_id=session_id,
            stream_type=_stream_type(ctx, stream_type),
            batch_size=batch_size,
            max_results=max_results,
            filters=parsed,
            real_time=real_time,
            rate_limit_per_minute=rate_limit,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        _fail(ctx, f"{'.'.join(map(str, first['loc']))}: {first['msg']}", 2)
    except ValueError as exc:
        _fail(ctx, str(exc), 2)
    result = _call(ctx, url, lambda c: c.start_stream(request))
    _emit(
        result,
        as_json,
        lambda: out.print(f"started {result.stream_id} ({result.stream_type}, {result.provider})"),
    )


@realtime.command("status")
@click.argument("stream_id")
@client_options
def status(ctx: click.Context, stream_id: str, url: str | None, as_json: bool) -> None:
    """One stream's status (GET /api/stream/{id}/status)."""
    result = _call(ctx, url, lambda c: c.get_stream_status(stream_id))
    data = result.model_dump(exclude={"configuration", "error"})
    data |= {f"configuration.{k}": v for k, v in result.configuration.model_dump().items()}
    if result.error is not None:
        data["error"] = f"{result.error.code}: {result.error.message}"
    _emit(result, as_json, lambda: out.print(_kv(f"stream {stream_id}", data)))


@realtime.command("stop-stream")
@click.argument("stream_id")
@client_options
def stop_stream(ctx: click.Context, stream_id: str, url: str | None, as_json: bool) -> None:
    """Stop a stream (POST /api/stream/{id}/stop)."""
    result = _call(ctx, url, lambda c: c.stop_stream(stream_id))
    _emit(result, as_json, lambda: out.print(f"{result.stream_id} {result.status}"))


@realtime.command("streams")
@client_options
def streams(ctx: click.Context, url: str | None, as_json: bool) -> None:
    """Streams of the server and its WebSocket statistics (GET /api/streams)."""
    result = _call(ctx, url, lambda c: c.list_streams())

    def human() -> None:
        out.print(
            _table(
                f"{result.total_count} streams",
                ["stream", "type", "session", "status", "items", "last activity (UTC)"],
                (
                    [
                        stream_id,
                        s.stream_type,
                        s.session_id,
                        s.status,
                        f"{s.items_streamed:,}",
                        clock_of(s.last_activity),
                    ]
                    for stream_id, s in result.streams.items()
                ),
            )
        )
        stats = result.websocket_statistics
        out.print(f"websocket: {stats.active_connections} active connections", markup=False)

    _emit(result, as_json, human)


@realtime.command("health")
@client_options
def health(ctx: click.Context, url: str | None, as_json: bool) -> None:
    """Is the server up: its Socket.IO counters (GET /api/health)."""
    result = _call(ctx, url, lambda c: c.health())
    _emit(result, as_json, lambda: out.print(_kv("realtime health", result.model_dump())))


class _Reporter:
    """Connection news for stderr, from the event stream's counters (it has no callbacks)."""

    def __init__(self, events: EventStream) -> None:
        self._events = events
        self._connected = False
        self._reconnects = 0
        self._error: RealtimeApiError | None = None

    def check(self) -> None:
        events = self._events
        error = events.last_error
        if error is not None and error is not self._error:
            self._error = error
            retry = f" (retry after {error.retry_after:.0f} s)" if error.retry_after else ""
            err.print(f"connection: {error}{retry}", markup=False)
        if events.connected and (not self._connected or events.reconnects != self._reconnects):
            again = " again" if events.reconnects else ""
            err.print(
                f"subscribed{again}: {events.session_id} {', '.join(events.data_types)}",
                markup=False,
            )
        elif self._connected and not events.connected:
            err.print("connection lost; reconnecting", markup=False)
        self._connected, self._reconnects = events.connected, events.reconnects

    async def watch(self) -> None:
        while True:
            self.check()
            await asyncio.sleep(0.1)


@realtime.command("listen")
@click.argument("session_id")
@click.option(
    "--type",
    "types",
    multiple=True,
    help=f"Data type to subscribe to (repeat; default gmail and calendar). {TYPE_HELP}",
)
@click.option("--agent-id", help="Connect as this agent.")
@click.option("--max-events", type=click.IntRange(1), help="Stop after this many events.")
@client_options
def listen(
    ctx: click.Context,
    session_id: str,
    types: tuple[str, ...],
    agent_id: str | None,
    max_events: int | None,
    url: str | None,
    as_json: bool,
) -> None:
    """Print SESSION_ID's stream_events live until Ctrl+C, reconnecting with backoff.

    Events go to stdout (one JSON line each with --json); connection news to stderr.
    """
    data_types = [_stream_type(ctx, t) for t in types] or ["gmail_messages", "calendar_events"]

    async def follow() -> None:
        async with (
            RealtimeClient(_url(ctx, url)) as client,
            client.events(session_id, data_types, agent_id=agent_id) as events,
        ):
            reporter = _Reporter(events)
            watching = asyncio.create_task(reporter.watch())
            seen = 0
            try:
                async for event in events:
                    message = event.model_dump()
                    click.echo(orjson.dumps(message).decode() if as_json else format_event(message))
                    seen += 1
                    if max_events is not None and seen >= max_events:
                        return
            finally:
                watching.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watching

    try:
        asyncio.run(follow())
    except RealtimeApiError as exc:
        _fail(ctx, str(exc))
    except KeyboardInterrupt:
        err.print("stopped", markup=False)
