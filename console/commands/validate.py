"""`streamops validate SOURCE` and `streamops validate-merge`: bounded validation for CI.

SOURCE is `kafka://b1:9092/topic`, `memory` (the retail memory sink, over `--retail-url`),
`redis://host:port/0?stream=KEY` or a JSON-lines file. Rules are the built-in retail
rule set unless `--rules FILE.toml`. The report goes to stdout (or `--output FILE`) as
a rich table (`text`), `json`, `md` or self-contained `html`.

Exit codes (for CI): 0 every rule below `--fail-on` passed; 1 a rule at or above
`--fail-on` failed (`--fail-on never` disables); 2 bad options or rule file; 3 the
source or the merge store failed (unreachable broker, missing file, members missing).

Scale-out through one Kafka consumer group: `--workers N` runs N member processes
here and merges their reports; or start `streamops validate kafka://… --group G
--merge redis://host:6379/0` on several machines: each publishes its partial report,
and `--expect N` (on any or every member) or `streamops validate-merge --group G
--merge … --expect N` waits for N and prints the merged report. A member without
`--expect` prints its partial report and exits 0 (unless the source or the store
failed): a partial cannot judge table rules such as `row_count`, so the verdict
belongs to the merge step. With `--workers`,
`--max-messages` is split between the workers.
"""

from __future__ import annotations

import asyncio
import io
import multiprocessing
import sys
import uuid
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from backends.validation.errors import SourceError
from backends.validation.report import SEVERITIES, ValidationReport, merge
from backends.validation.rules import RuleError, RuleSet, load_rules
from backends.validation.runner import Progress, run_validation
from backends.validation.scaleout import MergeError, open_merge_store, publish_and_merge

FORMATS = ("text", "json", "md", "html")
FAIL_ON = (*SEVERITIES, "never")
out = Console(highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(ctx: click.Context, message: str, code: int) -> None:
    err.print(f"error: {message}", markup=False)
    ctx.exit(code)


def _render(report: ValidationReport, fmt: str) -> str:
    if fmt == "json":
        return report.to_json() + "\n"
    if fmt == "md":
        return report.to_markdown()
    if fmt == "html":
        return report.to_html()
    buffer = io.StringIO()
    Console(file=buffer, width=120, highlight=False).print(report)
    return buffer.getvalue()


def _emit(
    ctx: click.Context, report: ValidationReport, fmt: str, output: Path | None, fail_on: str
) -> None:
    if output is not None:
        output.write_text(_render(report, fmt), encoding="utf-8")
        failed = len(report.issues)
        err.print(f"report written to {output} ({failed} rule(s) failed)", markup=False)
    elif fmt == "text":
        out.print(report)
    else:
        click.echo(_render(report, fmt), nl=False)
    if fail_on != "never" and report.failed_at(fail_on):
        ctx.exit(1)


def _progress_printer() -> Any:
    """A one-line progress on stderr when it is a terminal; nothing in pipes and CI logs."""
    if not sys.stderr.isatty():
        return None

    def show(p: Progress) -> None:
        target = f"/{p.target:,}" if p.target else ""
        err.print(f"\r{p.consumed:,}{target} messages, {p.rate:,.0f}/s", end="", markup=False)

    return show


def _source_options(group: str | None, retail_url: str | None, timeout: float | None) -> dict:
    options: dict[str, Any] = {}
    if group:
        options.update(group_id=group, use_group_assignment=True)
    if retail_url:
        options["retail_url"] = retail_url
    if timeout is not None:
        options["consume_timeout"] = timeout
    return options


def _worker(
    source: str, rules: RuleSet | None, max_messages: int | None, options: dict, results: Any
) -> None:
    """One consumer-group member in its own process: validate, send back the report JSON."""
    try:
        report = asyncio.run(
            run_validation(source, rules=rules, max_messages=max_messages, **options)
        )
        results.put(("ok", report.to_json(indent=False)))
    except Exception as exc:  # the parent reports it and exits 3
        results.put(("error", f"{type(exc).__name__}: {exc}"))


def _run_workers(
    source: str, rules: RuleSet | None, max_messages: int | None, workers: int, options: dict
) -> ValidationReport:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    shares = (
        [None] * workers
        if max_messages is None
        else [
            max_messages // workers + (1 if i < max_messages % workers else 0)
            for i in range(workers)
        ]
    )
    processes = [
        context.Process(target=_worker, args=(source, rules, share, options, results))
        for share in shares
    ]
    for process in processes:
        process.start()
    reports, errors = [], []
    for _ in processes:
        status, payload = results.get()
        if status == "ok":
            reports.append(ValidationReport.from_json(payload))
        else:
            errors.append(payload)
    for process in processes:
        process.join()
    if errors:
        raise SourceError("; ".join(errors))
    return merge(reports)


@click.command("validate")
@click.argument("source")
@click.option(
    "--rules",
    "rules_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="TOML rule file (default: the built-in retail rules).",
)
@click.option("--max-messages", type=click.IntRange(min=1), help="Stop after N messages.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the report here instead of stdout.",
)
@click.option(
    "--fail-on",
    type=click.Choice(FAIL_ON),
    default="high",
    show_default=True,
    help="Exit 1 when a rule of this severity or above fails.",
)
@click.option("--group", help="Consume as a member of this Kafka consumer group.")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Member processes in one consumer group (Kafka); reports merged.",
)
@click.option(
    "--merge",
    "merge_url",
    help="Publish this member's report to redis://host:port/db or kafka://host/topic.",
)
@click.option(
    "--expect",
    type=click.IntRange(min=1),
    help="With --merge: wait for N members' reports and output the merged report.",
)
@click.option(
    "--merge-timeout",
    type=float,
    default=300.0,
    show_default=True,
    help="Seconds to wait for the other members.",
)
@click.option(
    "--timeout",
    "consume_timeout",
    type=float,
    help="Stop after this many seconds without a message.",
)
@click.option("--retail-url", help="Retail API of the `memory` source (default :8000/api).")
@click.pass_context
def validate(
    ctx: click.Context,
    source: str,
    rules_file: Path | None,
    max_messages: int | None,
    fmt: str,
    output: Path | None,
    fail_on: str,
    group: str | None,
    workers: int,
    merge_url: str | None,
    expect: int | None,
    merge_timeout: float,
    consume_timeout: float | None,
    retail_url: str | None,
) -> None:
    """Validate up to --max-messages of SOURCE against rules; report; exit 1 on failures."""
    if expect is not None and not merge_url:
        _fail(ctx, "--expect needs --merge", 2)
    if merge_url and not group:
        _fail(ctx, "--merge needs --group (the consumer group the members share)", 2)
    if workers > 1 and not source.startswith("kafka://"):
        _fail(ctx, "--workers needs a kafka:// source (members of one consumer group)", 2)
    if group and not source.startswith("kafka://"):
        _fail(ctx, "--group needs a kafka:// source", 2)
    if workers > 1 and max_messages is not None and max_messages < workers:
        _fail(ctx, "--max-messages must be at least --workers (it is split between them)", 2)
    try:
        rules = load_rules(rules_file) if rules_file else None
    except RuleError as exc:
        _fail(ctx, str(exc), 2)
        return
    if workers > 1 and not group:
        group = f"streamops-validate-{uuid.uuid4().hex[:8]}"
    options = _source_options(group, retail_url, consume_timeout)
    try:
        if workers > 1:
            report = _run_workers(source, rules, max_messages, workers, options)
        else:
            report = asyncio.run(
                run_validation(
                    source,
                    rules=rules,
                    max_messages=max_messages,
                    on_progress=_progress_printer(),
                    **options,
                )
            )
            if sys.stderr.isatty():
                err.print("")
        if merge_url and group:
            store = open_merge_store(merge_url)
            merged = asyncio.run(
                publish_and_merge(store, group, report, expect=expect, wait_seconds=merge_timeout)
            )
            if merged is None:  # the verdict belongs to the merge step
                err.print(f"partial report of group {group} published to {merge_url}", markup=False)
                fail_on = "never"
            else:
                report = merged
    except (SourceError, MergeError, OSError, ValueError) as exc:
        _fail(ctx, str(exc), 3)
        return
    _emit(ctx, report, fmt, output, fail_on)


@click.command("validate-merge")
@click.option(
    "--merge",
    "merge_url",
    required=True,
    help="The store the members published to: redis://… or kafka://host/topic.",
)
@click.option("--group", required=True, help="The members' consumer group.")
@click.option(
    "--expect",
    type=click.IntRange(min=1),
    required=True,
    help="How many members' reports to wait for.",
)
@click.option("--timeout", "merge_timeout", type=float, default=300.0, show_default=True)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option("--output", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--fail-on", type=click.Choice(FAIL_ON), default="high", show_default=True)
@click.pass_context
def validate_merge(
    ctx: click.Context,
    merge_url: str,
    group: str,
    expect: int,
    merge_timeout: float,
    fmt: str,
    output: Path | None,
    fail_on: str,
) -> None:
    """Merge the partial reports of a scaled-out validation into one."""
    try:
        store = open_merge_store(merge_url)
        report = merge(asyncio.run(store.collect(group, expect, merge_timeout)))
    except (MergeError, OSError, ValueError) as exc:
        _fail(ctx, str(exc), 3)
        return
    _emit(ctx, report, fmt, output, fail_on)
