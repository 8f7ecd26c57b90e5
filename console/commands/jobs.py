"""`streamops jobs …`: mint tokens and run, watch or cancel jobs on a jobs server.

The URL comes from `--url`, `STREAMOPS_JOBS_URL`, `jobs.url`, else the well-known
`ws://localhost:8765/production` of `streamops serve`. The token comes from
`--token`, `STREAMOPS_JOBS_TOKEN`, `jobs.token`, else one is minted for
`--sub`/`--tenant` with `jobs.secret` (or `STREAMOPS_JOBS__SECRET`), which is what
the credentials file of `streamops serve` lists. `run` shows a rich progress bar
(phase message, records) and prints the result; `--json` prints the server's
`data` only, for scripts. Errors are one line on stderr (`CODE: message`), exit 1.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import orjson
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from backends.jobs.client import (
    TOKEN_ENV,
    URL_ENV,
    JobHandle,
    JobsClient,
    JobsError,
    mint_token,
)
from backends.jobs.client import Progress as JobProgress
from backends.settings import JobsSettings, Settings

T = TypeVar("T")
DEFAULT_JOBS_URL = "ws://localhost:8765/production"
out = Console(highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _jobs_settings(ctx: click.Context) -> JobsSettings:
    return (ctx.find_object(Settings) or Settings()).jobs


def _fail(message: str) -> NoReturn:
    err.print(f"error: {message}", markup=False)
    raise SystemExit(1)


def _connection(
    ctx: click.Context, url: str | None, tok: str | None, sub: str, tenant: str
) -> tuple[str, str]:
    config = _jobs_settings(ctx)
    endpoint = url or os.environ.get(URL_ENV) or config.url or DEFAULT_JOBS_URL
    chosen = tok or os.environ.get(TOKEN_ENV) or config.token
    if chosen is None:
        if not config.secret:
            _fail("no token: pass --token, set STREAMOPS_JOBS_TOKEN, or configure jobs.secret")
        chosen = mint_token(config, sub, tenant)
    return endpoint, chosen


def _run(coro: Awaitable[T]) -> T:
    try:
        return asyncio.run(coro)  # type: ignore[arg-type]
    except JobsError as exc:
        _fail(f"{exc.code}: {exc.message}")


def connection_options(command: Any) -> Any:
    for option in reversed(
        [
            click.option("--url", help=f"Jobs WebSocket URL (default {DEFAULT_JOBS_URL})."),
            click.option("--token", "tok", help="JWT to connect with (default: minted)."),
            click.option("--sub", default="cli-user", show_default=True),
            click.option("--tenant", default=None, help="Tenant (default jobs.demo_tenant)."),
            click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts."),
        ]
    ):
        command = option(command)
    return command


@click.group()
def jobs() -> None:
    """WebSocket jobs: reports, ML pipelines, health (websocket-jobs.md)."""


@jobs.command("token")
@click.option("--sub", required=True, help="The user id (`sub` claim).")
@click.option("--tenant", required=True, help="The tenant (`tenant_id` claim).")
@click.option("--permission", "permissions", multiple=True, help="Repeat; default read, write.")
@click.option("--lifetime", type=int, default=3600, show_default=True, help="Seconds.")
@click.option("--secret", help="HMAC secret (default jobs.secret).")
@click.pass_context
def token(
    ctx: click.Context,
    sub: str,
    tenant: str,
    permissions: tuple[str, ...],
    lifetime: int,
    secret: str | None,
) -> None:
    """Mint a token for the configured secret (for demos and tests)."""
    config = _jobs_settings(ctx)
    if secret:
        config = config.model_copy(update={"secret": secret})
    if not config.secret:
        _fail("no secret: pass --secret or configure jobs.secret (see `streamops serve`)")
    click.echo(
        mint_token(
            config,
            sub,
            tenant,
            permissions=list(permissions or ("read", "write")),
            lifetime_seconds=lifetime,
        )
    )


def _payload(text: str) -> dict[str, Any]:
    try:
        raw = Path(text[1:]).read_bytes() if text.startswith("@") else text.encode()
        value = orjson.loads(raw)
    except (OSError, orjson.JSONDecodeError) as exc:
        _fail(f"--payload: {exc}")
    if not isinstance(value, dict):
        _fail("--payload must be a JSON object")
    return value


class _Bar:
    """A rich progress bar fed by a job's progress updates."""

    def __init__(self, label: str, enabled: bool) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>5.1f}%"),
            TextColumn("{task.fields[step]}"),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=err,
            disable=not enabled,
        )
        self.task: TaskID = self.progress.add_task(label, total=100, step="", detail="")

    def update(self, update: JobProgress) -> None:
        records = ""
        if update.records_processed is not None and update.records_total:
            records = f" ({update.records_processed}/{update.records_total})"
        self.progress.update(
            self.task,
            completed=update.percentage,
            step=update.current_step or "",
            detail=update.message + records,
        )


def _print_result(data: Any, as_json: bool) -> None:
    if as_json or not isinstance(data, dict):
        click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2 if not as_json else 0))
        return
    table = Table(show_header=False, box=None)
    table.add_column("key")
    table.add_column("value", overflow="fold")  # urls must stay whole to be copied
    for key, value in data.items():
        shown = orjson.dumps(value).decode() if isinstance(value, dict | list) else str(value)
        table.add_row(f"[bold]{key}", shown if len(shown) < 400 else shown[:400] + "…")
    out.print(table)


async def _watch(handle: JobHandle, bar: _Bar) -> Any:
    with bar.progress:
        if handle.last_progress is not None:
            bar.update(handle.last_progress)
        handle.add_progress_callback(bar.update)
        result = await handle.result()
        bar.progress.update(bar.task, completed=100)
    return result.result.data


@jobs.command("run")
@click.argument("action")
@click.option("--payload", default="{}", show_default=True, help="JSON, or @file with JSON.")
@connection_options
@click.pass_context
def run(
    ctx: click.Context,
    action: str,
    payload: str,
    url: str | None,
    tok: str | None,
    sub: str,
    tenant: str | None,
    as_json: bool,
) -> None:
    """Run ACTION with --payload, showing its progress, and print the result."""
    body = _payload(payload)
    endpoint, chosen = _connection(ctx, url, tok, sub, tenant or _jobs_settings(ctx).demo_tenant)

    async def go() -> Any:
        async with JobsClient(endpoint, chosen, reconnect=True, backoff_max=5) as client:
            handle = await client.submit(action, body)
            if handle.sync:
                return (await handle.result()).result.data
            if not as_json:
                err.print(f"queued {handle.request_id}", markup=False)
            return await _watch(handle, _Bar(action, enabled=not as_json))

    _print_result(_run(go()), as_json)


@jobs.command("subscribe")
@click.argument("request_id")
@connection_options
@click.pass_context
def subscribe(
    ctx: click.Context,
    request_id: str,
    url: str | None,
    tok: str | None,
    sub: str,
    tenant: str | None,
    as_json: bool,
) -> None:
    """Re-attach to a job of your tenant: its progress, then its result."""
    endpoint, chosen = _connection(ctx, url, tok, sub, tenant or _jobs_settings(ctx).demo_tenant)

    async def go() -> Any:
        async with JobsClient(endpoint, chosen) as client:
            handle = await client.subscribe(request_id)
            return await _watch(handle, _Bar(handle.action or request_id, enabled=not as_json))

    _print_result(_run(go()), as_json)


@jobs.command("cancel")
@click.argument("request_id")
@connection_options
@click.pass_context
def cancel(
    ctx: click.Context,
    request_id: str,
    url: str | None,
    tok: str | None,
    sub: str,
    tenant: str | None,
    as_json: bool,
) -> None:
    """Cancel a running job of your tenant."""
    endpoint, chosen = _connection(ctx, url, tok, sub, tenant or _jobs_settings(ctx).demo_tenant)

    async def go() -> None:
        async with JobsClient(endpoint, chosen, reconnect=False) as client:
            await client.cancel(request_id)

    _run(go())
    if as_json:
        click.echo(orjson.dumps({"request_id": request_id, "status": "cancelled"}))
    else:
        out.print(f"cancelled {request_id}", markup=False)
