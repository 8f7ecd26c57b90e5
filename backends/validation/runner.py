"""`run_validation`: consume a bounded source batch by batch, check every batch, report.

The source (`open_source(spec)` or any `ValidationSource`) yields decoded batches;
each goes through the `Checker` in one pass and is dropped, so memory stays at a
batch whatever `max_messages` is. `on_progress` gets a `Progress` (consumed, target,
rate) whenever the source reports, rate measured on the injected clock. Rules are a
`RuleSet`, a TOML path, a `{column: [rules]}` dict, or None for the built-in retail
rules.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from backends.common.clock import Clock, SystemClock, iso_z
from backends.validation.check import Checker
from backends.validation.report import (
    SKIPPED_CAP,
    PartitionSummary,
    RunSummary,
    SkippedMessage,
    ValidationReport,
    summarize,
)
from backends.validation.rules import RuleSet, load_rules, rules_from_columns, ruleset

DEFAULT_BATCH_SIZE = 50_000


@dataclass(frozen=True)
class Progress:
    consumed: int
    target: int | None
    rate: float  # messages per second since the run started


def resolve_rules(rules: RuleSet | Path | str | Mapping[str, Any] | None) -> RuleSet:
    """A RuleSet from any accepted form; None is the built-in retail envelope rule set."""
    if rules is None:
        from backends.validation.retail_rules import retail_rules

        return retail_rules()
    if isinstance(rules, RuleSet):
        return rules
    if isinstance(rules, Mapping):
        return ruleset(rules_from_columns(rules))
    return load_rules(rules)


def report_from_checker(
    checker: Checker,
    *,
    source: str,
    started: datetime,
    duration: float,
    messages: int | None = None,
    max_messages: int | None = None,
    partitions: list[PartitionSummary] | None = None,
    skipped: list[SkippedMessage] | None = None,
    skipped_count: int = 0,
) -> ValidationReport:
    results = checker.results()
    passed, failed = summarize(results)
    count = checker.rows if messages is None else messages
    return ValidationReport(
        summary=RunSummary(
            source=source,
            rule_set=checker.rules.name,
            started_at=iso_z(started, millis=True),
            duration_seconds=round(duration, 6),
            messages=count,
            messages_per_second=round(count / duration, 1) if duration > 0 else 0.0,
            max_messages=max_messages,
            partitions=partitions or [],
            skipped=skipped or [],
            skipped_count=skipped_count,
            rules_total=len(results),
            rules_passed=passed,
            rules_failed=failed,
        ),
        inferred_schema=checker.schema(),
        rules=results,
    )


async def run_validation(
    source: Any,
    *,
    rules: RuleSet | Path | str | Mapping[str, Any] | None = None,
    max_messages: int | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    clock: Clock | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    **source_options: Any,
) -> ValidationReport:
    """Validate up to `max_messages` of `source` (a spec string or a `ValidationSource`)."""
    clock = clock or SystemClock()
    rule_set = resolve_rules(rules)  # a bad rule file fails before anything connects
    if isinstance(source, str):
        from backends.validation.sources import open_source

        name = source
        src = open_source(source, **source_options)
    else:
        name = getattr(getattr(source, "stats", None), "source", None) or type(source).__name__
        src = source
    checker = Checker(rule_set, clock=clock)
    started, t0 = clock.now(), clock.monotonic()

    def progress(consumed: int, target: int | None) -> None:
        if on_progress is not None:
            elapsed = clock.monotonic() - t0
            on_progress(Progress(consumed, target, consumed / elapsed if elapsed > 0 else 0.0))

    async with src:
        async for batch in src.batches(
            max_messages=max_messages, batch_size=batch_size, on_progress=progress
        ):
            if batch.frame.height:
                # In a thread: polars releases the GIL, so the client keeps fetching the
                # next batch meanwhile, and a console's event loop never stalls on a check.
                await asyncio.to_thread(checker.feed, batch.frame, batch.partitions, batch.offsets)
        stats = src.stats
    duration = clock.monotonic() - t0
    return report_from_checker(
        checker,
        source=stats.source or name,
        started=started,
        duration=duration,
        messages=stats.messages,
        max_messages=max_messages,
        partitions=[
            PartitionSummary(
                partition=p.partition,
                messages=p.messages,
                first_offset=p.first_offset,
                last_offset=p.last_offset,
            )
            for p in sorted(stats.partitions.values(), key=lambda p: p.partition)
        ],
        skipped=[
            SkippedMessage(partition=s.partition, offset=s.offset, reason=s.reason)
            for s in stats.skipped[:SKIPPED_CAP]
        ],
        skipped_count=len(stats.skipped),
    )
