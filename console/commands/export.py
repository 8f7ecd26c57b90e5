"""`streamops streams …` (read an export stream) and `streamops export …` (create streams, keys).

Both are clients of the export API, like the spec's own `scambus streams` CLI. The
URL and credentials are taken from the flags, then the client's environment
variables (`STREAMOPS_EXPORT_URL`, `STREAMOPS_API_KEY_ID`/`_SECRET`, the spec's
`SCAMBUS_API_KEY_*`), then the config (`export.url`, `export.api_key_id`, …), then
the well-known `http://localhost:8080/api` of `streamops serve`: the environment wins
over the file, as everywhere in streamops. The admin key comes from `--admin-key`,
`STREAMOPS_ADMIN_KEY` or `export.admin_key`.

Human output goes through rich; `--json` prints what the server sent (one JSON
line per message for `listen`) for scripts. Errors are one line on stderr, exit 1.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import click
import orjson
from rich.console import Console
from rich.table import Table

from backends.export.client import (
    URL_ENV,
    ExportApiError,
    ExportStreamClient,
    ListenState,
    credentials_from_env,
)
from backends.export.models import DATA_TYPES
from backends.settings import ExportSettings, Settings

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
out = Console(highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)  # errors stay one line


def _export_settings(ctx: click.Context) -> ExportSettings:
    return (ctx.find_object(Settings) or Settings()).export


def _client(
    ctx: click.Context,
    url: str | None,
    key_id: str | None = None,
    key_secret: str | None = None,
) -> ExportStreamClient:
    config = _export_settings(ctx)
    env_id, env_secret = credentials_from_env()
    return ExportStreamClient(
        url or os.environ.get(URL_ENV) or config.url,
        key_id or env_id or config.api_key_id,
        key_secret or env_secret or config.api_key_secret,
    )


def _run(ctx: click.Context, client: ExportStreamClient, action: Callable[[], T]) -> T:
    """Run one request; an API error becomes `error: 401 …` and exit 1."""
    try:
        with client:
            return action()
    except ExportApiError as exc:
        err.print(f"error: {exc}", markup=False)
        ctx.exit(1)
    raise AssertionError("unreachable")


def _print_json(data: Any) -> None:
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


def _kv(title: str, data: dict[str, Any]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("field")
    table.add_column("value")
    for key, value in data.items():
        table.add_row(key, "" if value is None else str(value))
    return table


def _summary(message: dict[str, Any]) -> str:
    """What a human scans for: the identifier's value, else the journal entry's text."""
    if value := message.get("display_value"):
        return str(value)
    identifiers = message.get("identifiers") or []
    names = ", ".join(str(i.get("display_value", "")) for i in identifiers if isinstance(i, dict))
    description = str(message.get("description") or "")
    return " · ".join(part for part in (description, names) if part)


def _message_line(message: dict[str, Any]) -> str:
    test = "  [test]" if message.get("is_test") else ""
    cursor = message.get("cursor") or message.get("message_id") or ""
    return f"{cursor}  {message.get('type', '')}  {_summary(message)}{test}"


def consumer_options(command: F) -> F:
    """`--url`, `--key-id`, `--key-secret`, `--json`, and the click context."""
    command = click.pass_context(command)
    command = click.option("--json", "as_json", is_flag=True, help="Print the raw JSON.")(command)
    command = click.option("--key-secret", help="API key secret (default: env or config).")(command)
    command = click.option("--key-id", help="API key id (default: env or config).")(command)
    return click.option("--url", help="Export API base URL (default: env, config or :8080/api).")(
        command
    )


def admin_options(command: F) -> F:
    """`--url`, `--admin-key`, `--json`, and the click context."""
    command = click.pass_context(command)
    command = click.option("--json", "as_json", is_flag=True, help="Print the raw JSON.")(command)
    command = click.option(
        "--admin-key", envvar="STREAMOPS_ADMIN_KEY", help="Admin key (default: env or config)."
    )(command)
    return click.option("--url", help="Export API base URL (default: env, config or :8080/api).")(
        command
    )


@click.group("streams")
def streams() -> None:
    """Read export streams: poll, listen over SSE, inspect."""


@streams.command("consume")
@click.argument("consumer_key")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--cursor", help='"0" = beginning, "$" = new only, an id; none = resume.')
@click.option("--order", type=click.Choice(["asc", "desc"]), default="asc", show_default=True)
@click.option("--include-test", is_flag=True, help="Include test messages.")
@consumer_options
def streams_consume(
    ctx: click.Context,
    consumer_key: str,
    limit: int,
    cursor: str | None,
    order: str,
    include_test: bool,
    url: str | None,
    key_id: str | None,
    key_secret: str | None,
    as_json: bool,
) -> None:
    """Poll one batch of messages."""
    client = _client(ctx, url, key_id, key_secret)
    result = _run(
        ctx,
        client,
        lambda: client.consume_stream(
            consumer_key,
            cursor=cursor,
            order="desc" if order == "desc" else "asc",
            limit=limit,
            include_test=include_test,
        ),
    )
    if as_json:
        _print_json(result)
        return
    messages = result.get("messages", [])
    table = Table(title=f"{len(messages)} messages", title_justify="left")
    for column in ("cursor", "type", "value", "test"):
        table.add_column(column)
    for message in messages:
        table.add_row(
            str(message.get("cursor") or message.get("message_id") or ""),
            str(message.get("type", "")),
            _summary(message),
            "yes" if message.get("is_test") else "",
        )
    out.print(table)
    more = "yes" if result.get("has_more") else "no"
    out.print(f"next_cursor {result.get('next_cursor')}  has_more {more}", markup=False)


@streams.command("listen")
@click.argument("consumer_key")
@click.option("--cursor", default="$", show_default=True, help='"0" = beginning, or an id.')
@click.option("--include-test", is_flag=True, help="Include test messages.")
@click.option("--max-messages", type=click.IntRange(1), help="Stop after this many messages.")
@consumer_options
def streams_listen(
    ctx: click.Context,
    consumer_key: str,
    cursor: str,
    include_test: bool,
    max_messages: int | None,
    url: str | None,
    key_id: str | None,
    key_secret: str | None,
    as_json: bool,
) -> None:
    """Follow a stream over SSE until Ctrl+C, reconnecting from the last cursor.

    Messages go to stdout (one JSON line each with --json); connection news to stderr.
    """

    def report(state: ListenState) -> None:
        if state.status == "connected" and state.connected is not None:
            info = state.connected
            err.print(
                f"connected: {info.stream} ({info.data_type}) from cursor {state.cursor}",
                markup=False,
            )
        elif state.status == "reconnecting":
            err.print(
                f"reconnecting in {state.next_retry_in or 0:.1f} s "
                f"(attempt {state.attempt}): {state.last_error}",
                markup=False,
            )

    client = _client(ctx, url, key_id, key_secret)

    def follow() -> None:
        seen = 0
        with client.listen(consumer_key, cursor, include_test, on_state=report) as listener:
            for event in listener:
                if event.error is not None:
                    err.print(f"stream error: {event.error.code} {event.error.error}", markup=False)
                    continue
                batch = event.messages
                if max_messages is not None:
                    batch = batch[: max_messages - seen]
                if batch:
                    lines = [
                        orjson.dumps(m).decode() if as_json else _message_line(m) for m in batch
                    ]
                    click.echo("\n".join(lines))
                    seen += len(batch)
                if max_messages is not None and seen >= max_messages:
                    return

    try:
        _run(ctx, client, follow)
    except KeyboardInterrupt:
        err.print("stopped", markup=False)


@streams.command("info")
@click.argument("consumer_key")
@consumer_options
def streams_info(
    ctx: click.Context,
    consumer_key: str,
    url: str | None,
    key_id: str | None,
    key_secret: str | None,
    as_json: bool,
) -> None:
    """Stream metadata: cursors, message count, retention, suggested start cursors."""
    client = _client(ctx, url, key_id, key_secret)
    info = _run(ctx, client, lambda: client.get_stream_info(consumer_key))
    if as_json:
        _print_json(info.model_dump())
        return
    data = info.model_dump(exclude={"retention", "suggested_cursors"})
    data |= {f"retention.{k}": v for k, v in info.retention.model_dump().items()}
    data |= {f"suggested.{k}": v for k, v in info.suggested_cursors.model_dump().items()}
    out.print(_kv(f"stream {info.stream}", data))


@click.group("export")
def export() -> None:
    """Administer export streams: create streams and API keys (needs the admin key)."""


def _admin_key(ctx: click.Context, admin_key: str | None) -> str:
    key = admin_key or _export_settings(ctx).admin_key
    if key:
        return key
    err.print(
        "error: an admin key is needed: --admin-key, STREAMOPS_ADMIN_KEY or export.admin_key",
        markup=False,
    )
    ctx.exit(2)
    raise AssertionError("unreachable")


@export.command("create-stream")
@click.argument("name")
@click.option("--data-type", type=click.Choice(DATA_TYPES), default="identifier", show_default=True)
@click.option("--max-length", type=click.IntRange(1), help="Keep at most this many messages.")
@click.option("--max-age", type=click.IntRange(1), help="Keep messages this many seconds.")
@admin_options
def export_create_stream(
    ctx: click.Context,
    name: str,
    data_type: str,
    max_length: int | None,
    max_age: int | None,
    url: str | None,
    admin_key: str | None,
    as_json: bool,
) -> None:
    """Create a stream; prints its consumer key."""
    key = _admin_key(ctx, admin_key)
    client = _client(ctx, url)
    record = _run(
        ctx,
        client,
        lambda: client.create_stream(
            name,
            "journal_entry" if data_type == "journal_entry" else "identifier",
            max_length,
            max_age,
            admin_key=key,
        ),
    )
    if as_json:
        _print_json(record.model_dump())
    else:
        out.print(_kv(f"stream {name}", record.model_dump()))


@export.command("create-key")
@click.argument("name")
@click.option("--stream", "consumer_keys", multiple=True, help="Consumer key it may read (repeat).")
@admin_options
def export_create_key(
    ctx: click.Context,
    name: str,
    consumer_keys: tuple[str, ...],
    url: str | None,
    admin_key: str | None,
    as_json: bool,
) -> None:
    """Create an API key; the secret is shown this once (the server keeps a hash)."""
    key = _admin_key(ctx, admin_key)
    client = _client(ctx, url)
    created = _run(ctx, client, lambda: client.create_api_key(name, consumer_keys, admin_key=key))
    if as_json:
        _print_json(created.model_dump())
        return
    out.print(f"api_key_id     {created.api_key_id}", markup=False)
    out.print(f"api_key_secret {created.api_key_secret}", markup=False)
    err.print("the secret is shown only now: store it", markup=False)
