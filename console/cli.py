"""The `streamops` command: the console, the headless backends, and thin scripting commands.

The scripting commands are clients like the console: they talk to a running
backend (`--url`, or `retail.url` from the config, or the well-known
`http://localhost:8000/api` that `streamops serve` listens on). The server side
(`backends.runtime`) is imported only by the commands that host it, so scripting
commands start fast.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.table import Table

from backends.endpoints import SERVICES, Endpoints
from backends.retail.client import RetailApiError, RetailClient
from backends.retail.models import DISRUPTION_TYPES, ConfigUpdate, DisruptionCreate, StartRequest
from backends.settings import Settings
from console.commands.export import export, streams
from console.commands.jobs import jobs
from console.commands.realtime import realtime
from console.commands.validate import validate, validate_merge
from console.config import ConfigError, load_settings

M = TypeVar("M", bound=BaseModel)
DEFAULT_RETAIL_URL = "http://localhost:8000/api"
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def _settings(ctx: click.Context) -> Settings:
    return ctx.find_object(Settings) or Settings()


@click.group(invoke_without_command=True)
@click.option(
    "--config", "config_path", type=click.Path(path_type=Path), help="TOML configuration file."
)
@click.option("--read-only", is_flag=True, help="Watch only: no start, stop or disruptions.")
@click.option("--retail-url", help="Use a remote retail API (e.g. http://host:8000/api).")
@click.version_option(package_name="streamops")
@click.pass_context
def cli(
    ctx: click.Context, config_path: Path | None, read_only: bool, retail_url: str | None
) -> None:
    """Operations console for streaming systems. With no command, opens the console."""
    try:
        settings = load_settings(config_path)
    except ConfigError as exc:
        err.print(str(exc), markup=False)
        ctx.exit(2)
    if read_only:
        settings.ui.read_only = True
    if retail_url:
        settings.retail.url = retail_url
    ctx.obj = settings
    if ctx.invoked_subcommand is None:
        _run_console(settings)


def _run_console(settings: Settings) -> None:
    from backends.runtime import BackendHost
    from console.app import StreamopsApp

    host = BackendHost(settings)
    endpoints = host.start()
    try:
        StreamopsApp(settings, endpoints).run()
    finally:
        host.stop()


# -- serve -------------------------------------------------------------------


def _describe_endpoints(
    endpoints: Endpoints, admin_key: str | None, jobs_secret: str | None = None
) -> dict[str, Any]:
    """URLs and demo credentials, as `--credentials-file` writes them for scripts."""
    described: dict[str, Any] = {}
    if endpoints.retail:
        described["retail"] = {"url": endpoints.retail}
    if endpoints.export:
        export: dict[str, Any] = {"url": endpoints.export}
        if endpoints.export_credentials:
            export.update(endpoints.export_credentials.model_dump())
        export["admin_key"] = admin_key
        described["export"] = export
    if endpoints.realtime:
        described["realtime"] = {
            "url": endpoints.realtime,
            "session_id": endpoints.realtime_session_id,
        }
    if endpoints.jobs:
        described["jobs"] = {
            "url": endpoints.jobs,
            "issuer": endpoints.jobs_issuer,
            "secret": jobs_secret,
            "token": endpoints.jobs_token,
        }
    return described


def _print_endpoints(described: dict[str, Any]) -> None:
    lines = [f"{name:<10} {info['url']}" for name, info in described.items()]
    export = described.get("export", {})
    if "api_key_id" in export:
        lines.append(f"{'':<10} X-API-Key: {export['api_key_id']}:{export['api_key_secret']}")
        lines += [
            f"{'':<10} {stream['data_type']:<14} consumer key {stream['consumer_key']}"
            for stream in export["streams"]
        ]
    if export.get("admin_key"):
        lines.append(f"{'':<10} X-Admin-Key: {export['admin_key']}")
    session = described.get("realtime", {}).get("session_id")
    if session:
        lines.append(f"{'':<10} demo session {session}")
    jobs = described.get("jobs", {})
    if jobs.get("token"):
        lines.append(f"{'':<10} issuer {jobs['issuer']}, demo token (?Authorization=):")
        lines.append(f"{'':<10} {jobs['token']}")
    for line in lines:
        out.print(line, markup=False, soft_wrap=True)


@cli.command()
@click.option("--only", help=f"Comma-separated services to run ({', '.join(SERVICES)}).")
@click.option("--host", "bind_host", help="Address to bind (default from config: 127.0.0.1).")
@click.option("--retail-port", type=int, help="Retail API port (default 8000).")
@click.option("--export-port", type=int, help="Export stream API port (default 8080).")
@click.option("--realtime-port", type=int, help="Realtime Socket.IO/REST port (default 5000).")
@click.option("--jobs-port", type=int, help="Jobs WebSocket port (default 8765).")
@click.option(
    "--credentials-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write URLs and demo credentials here as JSON (for scripts).",
)
@click.pass_context
def serve(
    ctx: click.Context,
    only: str | None,
    bind_host: str | None,
    retail_port: int | None,
    export_port: int | None,
    realtime_port: int | None,
    jobs_port: int | None,
    credentials_file: Path | None,
) -> None:
    """Run the backends headless on the specs' well-known ports until SIGINT/SIGTERM."""
    from backends.runtime import BackendHost

    settings = _settings(ctx).model_copy(deep=True)
    ports = {
        "retail": retail_port,
        "export": export_port,
        "realtime": realtime_port,
        "jobs": jobs_port,
    }
    for service in SERVICES:
        section = getattr(settings, service)
        section.url = None
        if bind_host:
            section.host = bind_host
        if ports.get(service) is not None:
            section.port = ports[service]
    chosen = [s.strip() for s in only.split(",") if s.strip()] if only else None
    try:
        host = BackendHost(settings, well_known_ports=True, only=chosen)
        endpoints = host.start()
    except (ValueError, OSError) as exc:
        err.print(f"error: {exc}", markup=False)
        ctx.exit(2)
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    described = _describe_endpoints(
        endpoints, host.settings.export.admin_key, host.settings.jobs.secret
    )
    _print_endpoints(described)
    if credentials_file is not None:
        credentials_file.write_text(json.dumps(described, indent=2) + "\n")
        out.print(f"credentials written to {credentials_file}", markup=False)
    out.print("serving; Ctrl+C to stop", markup=False)
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        host.stop()
        out.print("stopped", markup=False)


# -- client commands -----------------------------------------------------------


def _retail_url(ctx: click.Context, url: str | None) -> str:
    return url or _settings(ctx).retail.url or DEFAULT_RETAIL_URL


def _call(
    ctx: click.Context,
    url: str | None,
    action: Callable[[RetailClient], Awaitable[M]],
) -> M:
    async def run() -> M:
        async with RetailClient(_retail_url(ctx, url)) as client:
            return await action(client)

    try:
        return asyncio.run(run())
    except RetailApiError as exc:
        err.print(f"error: {exc}", markup=False)
        ctx.exit(1)
    raise AssertionError("unreachable")


def _emit(result: BaseModel, as_json: bool, human: Callable[[], None] | None = None) -> None:
    if as_json or human is None:
        click.echo(result.model_dump_json(indent=2))
    else:
        human()


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    return table


def _kv(title: str, data: dict[str, Any]) -> Table:
    return _table(title, ["field", "value"], [[k, v] for k, v in data.items()])


F = TypeVar("F", bound=Callable[..., Any])


def client_options(command: F) -> F:
    """`--url` and `--json`, and the click context: what every client command takes."""
    command = click.pass_context(command)
    command = click.option("--json", "as_json", is_flag=True, help="Print the raw JSON.")(command)
    return click.option("--url", help="Retail API base URL (default: config or :8000/api).")(
        command
    )


@cli.group()
def stream() -> None:
    """Control and inspect the retail event stream."""


@stream.command("start")
@click.option("--interval-ms", type=int, help="Milliseconds between bursts.")
@click.option("--burst", type=int, help="Events per burst.")
@click.option("--duration", "duration_minutes", type=int, help="Stop after N minutes.")
@click.option("--event-type", "event_types", multiple=True, help="Only these types (repeat).")
@client_options
def stream_start(
    ctx: click.Context,
    interval_ms: int | None,
    burst: int | None,
    duration_minutes: int | None,
    event_types: tuple[str, ...],
    url: str | None,
    as_json: bool,
) -> None:
    """Start streaming."""
    fields: dict[str, Any] = {"duration_minutes": duration_minutes}
    if interval_ms is not None:
        fields["emit_interval_ms"] = interval_ms
    if burst is not None:
        fields["burst"] = burst
    if event_types:
        fields["event_types"] = list(event_types)
    request = _validated(ctx, StartRequest, fields)
    result = _call(ctx, url, lambda c: c.start(request))
    _emit(result, as_json, lambda: out.print(f"{result.message}: {result.operation_id}"))


def _validated(ctx: click.Context, model: type[M], fields: dict[str, Any]) -> M:
    try:
        return model(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        err.print(f"error: {'.'.join(map(str, first['loc']))}: {first['msg']}", markup=False)
        ctx.exit(2)
    raise AssertionError("unreachable")


@stream.command("stop")
@client_options
def stream_stop(ctx: click.Context, url: str | None, as_json: bool) -> None:
    """Stop streaming."""
    result = _call(ctx, url, lambda c: c.stop())
    _emit(result, as_json, lambda: out.print(f"{result.message}: {result.operation_id}"))


@stream.command("status")
@client_options
def stream_status(ctx: click.Context, url: str | None, as_json: bool) -> None:
    """Is it streaming, for how long, how fast."""
    result = _call(ctx, url, lambda c: c.status())
    _emit(result, as_json, lambda: out.print(_kv("status", result.model_dump())))


@stream.command("stats")
@client_options
def stream_stats(ctx: click.Context, url: str | None, as_json: bool) -> None:
    """Detailed statistics: counts by type, errors, failures."""
    result = _call(ctx, url, lambda c: c.statistics())

    def human() -> None:
        data = result.model_dump()
        counts, errors = data.pop("event_type_counts"), data.pop("error_counts")
        out.print(_kv("statistics", data))
        rows = sorted(counts.items(), key=lambda kv: -kv[1])
        out.print(_table("event types", ["event type", "count"], [list(r) for r in rows]))
        if errors:
            out.print(_table("errors", ["kind", "count"], [list(r) for r in errors.items()]))

    _emit(result, as_json, human)


@stream.command("events")
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True)
@client_options
def stream_events(ctx: click.Context, limit: int, url: str | None, as_json: bool) -> None:
    """The most recent events, newest first."""
    result = _call(ctx, url, lambda c: c.recent_events(limit))

    def human() -> None:
        rows = [
            [
                e.get("ingest_timestamp", ""),
                e.get("event_type", ""),
                e.get("partition_key", ""),
                e.get("trace_id", ""),
            ]
            for e in result.events
        ]
        out.print(_table("recent events", ["time", "type", "key", "trace id"], rows))

    _emit(result, as_json, human)


@stream.command("config")
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="KEY=VALUE",
    help="Change a setting, e.g. --set burst=50 --set sink=kafka.",
)
@client_options
def stream_config(
    ctx: click.Context, assignments: tuple[str, ...], url: str | None, as_json: bool
) -> None:
    """Show the configuration, or change it with --set (only while stopped)."""
    if assignments:
        fields: dict[str, Any] = {}
        for item in assignments:
            key, sep, value = item.partition("=")
            if not sep:
                err.print(f"error: --set takes KEY=VALUE, got {item!r}", markup=False)
                ctx.exit(2)
            fields[key.strip()] = value.strip()
        update = _validated(ctx, ConfigUpdate, fields)
        result = _call(ctx, url, lambda c: c.update_config(update))
        _emit(result, as_json, lambda: out.print(result.message))
        return
    shown = _call(ctx, url, lambda c: c.get_config())
    _emit(shown, as_json, lambda: out.print(_kv("config", shown.realtime.model_dump())))


@stream.command("test")
@client_options
def stream_test(ctx: click.Context, url: str | None, as_json: bool) -> None:
    """Test the configured sink with a real round trip."""
    result = _call(ctx, url, lambda c: c.test_connection())
    _emit(result, as_json, lambda: out.print(_kv("sink test", result.model_dump())))
    if not result.success:
        ctx.exit(1)


@cli.group()
def disrupt() -> None:
    """Inject and manage supply-chain disruptions."""


@disrupt.command("create")
@click.argument("disruption_type", type=click.Choice(DISRUPTION_TYPES))
@click.argument("target_id", type=int)
@click.option("--severity", type=float, default=0.5, show_default=True)
@click.option("--minutes", "duration_minutes", type=int, default=30, show_default=True)
@click.option("--products", help="Comma-separated product ids.")
@client_options
def disrupt_create(
    ctx: click.Context,
    disruption_type: str,
    target_id: int,
    severity: float,
    duration_minutes: int,
    products: str | None,
    url: str | None,
    as_json: bool,
) -> None:
    """Create a disruption: TYPE TARGET_ID."""
    try:
        product_ids = [int(p) for p in products.split(",") if p.strip()] if products else None
    except ValueError:
        err.print(f"error: --products must be comma-separated integers, got {products!r}")
        ctx.exit(2)
    request = _validated(
        ctx,
        DisruptionCreate,
        {
            "disruption_type": disruption_type,
            "target_id": target_id,
            "severity": severity,
            "duration_minutes": duration_minutes,
            "product_ids": product_ids,
        },
    )
    result = _call(ctx, url, lambda c: c.create_disruption(request))
    _emit(result, as_json, lambda: out.print(f"{result.message}: {result.disruption_id}"))


@disrupt.command("list")
@client_options
def disrupt_list(ctx: click.Context, url: str | None, as_json: bool) -> None:
    """Active disruptions with time left and events affected."""
    result = _call(ctx, url, lambda c: c.list_disruptions())

    def human() -> None:
        rows = [
            [
                d.disruption_id,
                d.type,
                d.target_id,
                d.severity,
                f"{d.time_remaining_minutes:.1f} min",
                d.events_affected,
            ]
            for d in result.disruptions
        ]
        columns = ["id", "type", "target", "severity", "left", "affected"]
        out.print(_table(f"{result.count} active disruptions", columns, rows))

    _emit(result, as_json, human)


@disrupt.command("cancel")
@click.argument("disruption_id")
@client_options
def disrupt_cancel(ctx: click.Context, disruption_id: str, url: str | None, as_json: bool) -> None:
    """Cancel one disruption."""
    result = _call(ctx, url, lambda c: c.cancel_disruption(disruption_id))
    _emit(result, as_json, lambda: out.print(result.message))


@disrupt.command("clear")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@client_options
def disrupt_clear(ctx: click.Context, yes: bool, url: str | None, as_json: bool) -> None:
    """Cancel every active disruption."""
    if not yes and sys.stdin.isatty():
        click.confirm("Clear all active disruptions?", abort=True)
    result = _call(ctx, url, lambda c: c.clear_disruptions())
    _emit(result, as_json, lambda: out.print(result.message))


cli.add_command(streams)
cli.add_command(export)
cli.add_command(realtime)
cli.add_command(validate)
cli.add_command(validate_merge)
cli.add_command(jobs)


def main() -> None:
    cli(prog_name="streamops")
