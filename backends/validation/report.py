"""`ValidationReport`: what a validation run saw and which rules failed, and its renderings.

One pydantic model for every consumer: the CLI (rich renderable, `--format
json|md|html`), the Validation tab, CI (`failed_at(severity)`), and the scale-out
merge (`merge(reports)`: the partial reports of consumer-group members become one).

Choices where the spec is silent:
- `rules` keep the rule-set order; renderers list failing rules first, by severity.
- Samples are capped at `SAMPLE_CAP` per rule (merge keeps the first by partition
  and offset), skipped messages at `SKIPPED_CAP` (`skipped_count` keeps the total).
- Merging adds row counts and re-judges each rule against its tolerance; table rules
  are re-judged on the merged figures (row count summed, newest timestamp = the
  newest of all, missing columns = those missing everywhere). `unique` cannot see a
  repeat split across two members, so a merged `unique` adds the members' repeats.
- HTML is one self-contained file (inline CSS, no scripts, everything escaped).
"""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any

import orjson
from pydantic import BaseModel, Field

from backends.validation.rules import SEVERITIES, Severity, severity_rank

SAMPLE_CAP = 5
SKIPPED_CAP = 100
REPORT_VERSION = 1


class Sample(BaseModel):
    partition: int | None = None
    offset: int | None = None
    value: Any = None


class RuleResult(BaseModel):
    name: str
    rule: str
    column: str | None = None
    severity: Severity
    mostly: float = 1.0
    passed: bool
    failed: int
    checked: int
    percent: float
    observed: str | None = None
    description: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    stats: dict[str, Any] = Field(default_factory=dict)
    samples: list[Sample] = Field(default_factory=list)


class PartitionSummary(BaseModel):
    partition: int
    messages: int
    first_offset: int | None = None
    last_offset: int | None = None


class SkippedMessage(BaseModel):
    partition: int
    offset: int
    reason: str


class SchemaField(BaseModel):
    name: str
    type: str


class RunSummary(BaseModel):
    source: str
    rule_set: str
    started_at: str
    duration_seconds: float
    messages: int
    messages_per_second: float
    max_messages: int | None = None
    partitions: list[PartitionSummary] = Field(default_factory=list)
    skipped: list[SkippedMessage] = Field(default_factory=list)
    skipped_count: int = 0
    rules_total: int = 0
    rules_passed: int = 0
    rules_failed: int = 0
    workers: int = 1


class ValidationReport(BaseModel):
    version: int = REPORT_VERSION
    summary: RunSummary
    inferred_schema: list[SchemaField] = Field(default_factory=list)
    rules: list[RuleResult] = Field(default_factory=list)

    @property
    def issues(self) -> list[RuleResult]:
        """Failing rules, most severe first (the spec's `report.issues`)."""
        return sorted(
            (r for r in self.rules if not r.passed),
            key=lambda r: (-severity_rank(r.severity), -r.failed),
        )

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rules)

    def failed_at(self, severity: str) -> list[RuleResult]:
        """Failing rules at or above `severity` (what `--fail-on` checks)."""
        floor = severity_rank(severity)
        return [r for r in self.issues if severity_rank(r.severity) >= floor]

    def to_json(self, *, indent: bool = True) -> str:
        option = orjson.OPT_INDENT_2 if indent else 0
        return orjson.dumps(self.model_dump(mode="json"), option=option).decode()

    @classmethod
    def from_json(cls, data: str | bytes) -> ValidationReport:
        return cls.model_validate_json(data)

    def to_markdown(self) -> str:
        return _markdown(self)

    def to_html(self) -> str:
        return _html(self)

    def __rich__(self) -> Any:
        return _rich(self)


def ordered_rules(report: ValidationReport) -> list[RuleResult]:
    """Failing rules by severity, then passing ones in rule-set order."""
    return report.issues + [r for r in report.rules if r.passed]


def summarize(rules: list[RuleResult]) -> tuple[int, int]:
    passed = sum(r.passed for r in rules)
    return passed, len(rules) - passed


# -- rendering helpers ------------------------------------------------------------


def _value(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _where(sample: Sample) -> str:
    if sample.partition is None:
        return f"row {sample.offset}"
    return f"p{sample.partition}@{sample.offset}"


def _offsets(report: ValidationReport) -> str:
    parts = [
        f"p{p.partition}: {p.first_offset}..{p.last_offset}"
        for p in report.summary.partitions
        if p.first_offset is not None
    ]
    return ", ".join(parts) or "-"


def _skipped(report: ValidationReport) -> str:
    shown = ", ".join(f"p{m.partition}@{m.offset}" for m in report.summary.skipped[:5])
    more = ", …" if report.summary.skipped_count > 5 else ""
    return f"{report.summary.skipped_count:,}" + (f" ({shown}{more})" if shown else "")


def _headline(report: ValidationReport) -> list[tuple[str, str]]:
    s = report.summary
    return [
        ("source", s.source),
        ("rule set", s.rule_set),
        ("started", s.started_at),
        ("messages", f"{s.messages:,}" + (f" (max {s.max_messages:,})" if s.max_messages else "")),
        ("partitions", ", ".join(f"p{p.partition}: {p.messages:,}" for p in s.partitions) or "-"),
        ("offsets", _offsets(report)),
        ("skipped", _skipped(report)),
        ("rules", f"{s.rules_passed} passed, {s.rules_failed} failed of {s.rules_total}"),
        ("duration", f"{s.duration_seconds:.2f} s"),
        ("rate", f"{s.messages_per_second:,.0f} messages/s"),
    ] + ([("workers", str(s.workers))] if s.workers > 1 else [])


def _pct(percent: float) -> str:
    """Two decimals, but a failure never reads as 0.00."""
    return "<0.01" if 0 < percent < 0.005 else f"{percent:.2f}"


def _status(rule: RuleResult) -> str:
    return "pass" if rule.passed else "FAIL"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown(report: ValidationReport) -> str:
    lines = [f"# Validation report: {report.summary.source}", ""]
    lines += ["| | |", "|---|---|"]
    lines += [f"| {k} | {_md_cell(v)} |" for k, v in _headline(report)]
    lines += ["", "## Rules", ""]
    lines += ["| status | severity | rule | failed | % | observed |", "|---|---|---|---:|---:|---|"]
    for r in ordered_rules(report):
        lines.append(
            f"| {_status(r)} | {r.severity} | {_md_cell(r.name)} | {r.failed:,} | "
            f"{_pct(r.percent)} | {_md_cell(r.observed or '')} |"
        )
    failing = [r for r in report.issues if r.samples]
    if failing:
        lines += ["", "## Samples of failing values", ""]
        for r in failing:
            lines.append(f"**{_md_cell(r.name)}**")
            lines.append("")
            lines += [f"- `{_where(s)}`: `{_value(s.value)}`" for s in r.samples]
            lines.append("")
    if report.summary.skipped:
        lines += ["", "## Skipped messages", ""]
        lines += [f"- `p{m.partition}@{m.offset}`: {m.reason}" for m in report.summary.skipped]
    lines += ["", "## Inferred schema", "", "| field | type |", "|---|---|"]
    lines += [f"| `{f.name}` | `{_md_cell(f.type)}` |" for f in report.inferred_schema]
    return "\n".join(lines).rstrip() + "\n"


_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem;
text-align:left;vertical-align:top}th{background:#f3f3f3}.num{text-align:right}
.FAIL{color:#b00020;font-weight:bold}.pass{color:#1b7f3b}.sev-critical{background:#fde0e0}
.sev-high{background:#fdeedd}.sev-medium{background:#fdf8dd}.sev-low{background:#eef5fd}
code{font-size:.9em}ul{margin:0;padding-left:1.2rem}
"""


def _html(report: ValidationReport) -> str:
    e = html.escape
    head = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in _headline(report))
    rows = []
    for r in ordered_rules(report):
        samples = "".join(
            f"<li><code>{e(_where(s))}</code> <code>{e(_value(s.value))}</code></li>"
            for s in r.samples
        )
        rows.append(
            f'<tr class="sev-{r.severity}"><td class="{_status(r)}">{_status(r)}</td>'
            f"<td>{r.severity}</td><td>{e(r.name)}</td><td class=num>{r.failed:,}</td>"
            f"<td class=num>{_pct(r.percent)}</td><td>{e(r.observed or '')}</td>"
            f"<td><ul>{samples}</ul></td></tr>"
        )
    skipped = "".join(
        f"<li><code>p{m.partition}@{m.offset}</code> {e(m.reason)}</li>"
        for m in report.summary.skipped
    )
    schema = "".join(
        f"<tr><td><code>{e(f.name)}</code></td><td><code>{e(f.type)}</code></td></tr>"
        for f in report.inferred_schema
    )
    title = e(f"Validation report: {report.summary.source}")
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{_CSS}</style></head><body><h1>{title}</h1><table>{head}</table>"
        "<h2>Rules</h2><table><tr><th>status</th><th>severity</th><th>rule</th><th>failed</th>"
        f"<th>%</th><th>observed</th><th>samples</th></tr>{''.join(rows)}</table>"
        + (f"<h2>Skipped messages</h2><ul>{skipped}</ul>" if skipped else "")
        + f"<h2>Inferred schema</h2><table><tr><th>field</th><th>type</th></tr>{schema}</table>"
        "</body></html>\n"
    )


_SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan"}


def _rich(report: ValidationReport) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    for key, value in _headline(report):
        head.add_row(key, value)
    rules = Table(title="rules", title_justify="left")
    for column, justify in (
        ("", "left"),
        ("severity", "left"),
        ("rule", "left"),
        ("failed", "right"),
        ("%", "right"),
        ("samples / observed", "left"),
    ):
        rules.add_column(column, justify=justify)  # type: ignore[arg-type]
    shown = [r for r in ordered_rules(report) if not r.passed or r.failed or r.observed]
    for r in shown:
        detail = r.observed or ""
        if r.samples:
            detail = "; ".join(f"{_where(s)} {_value(s.value, 40)}" for s in r.samples[:3])
        rules.add_row(
            Text("✗" if not r.passed else "✓", style="bold red" if not r.passed else "green"),
            Text(r.severity, style=_SEVERITY_STYLE[r.severity]),
            r.name,
            f"{r.failed:,}",
            f"{_pct(r.percent)}",
            Text(detail, overflow="ellipsis", no_wrap=True),
        )
    clean = len(report.rules) - len(shown)
    verdict = (
        Text("all rules passed", style="bold green")
        if report.passed
        else Text(f"{len(report.issues)} rule(s) failed", style="bold red")
    )
    if clean:
        verdict.append(f"; {clean} more rule(s) passed with no failing value", style="")
    return Group(head, rules, verdict)


# -- merge --------------------------------------------------------------------------


def merge(reports: list[ValidationReport]) -> ValidationReport:
    """One report from the partial reports of consumer-group members (scale-out)."""
    from backends.validation.check import judge_table  # the rule engine re-judges table rules

    if not reports:
        raise ValueError("merge needs at least one report")
    if len(reports) == 1:
        return reports[0]
    first = reports[0]
    names = [r.name for r in first.rules]
    for other in reports[1:]:
        if [r.name for r in other.rules] != names:
            raise ValueError("cannot merge reports of different rule sets")
    summaries = [r.summary for r in reports]
    partitions: dict[int, PartitionSummary] = {}
    for s in summaries:
        for p in s.partitions:
            seen = partitions.get(p.partition)
            if seen is None:
                partitions[p.partition] = p.model_copy()
                continue
            seen.messages += p.messages
            seen.first_offset = _min(seen.first_offset, p.first_offset)
            seen.last_offset = _max(seen.last_offset, p.last_offset)
    messages = sum(s.messages for s in summaries)
    skipped = sorted(
        (m for s in summaries for m in s.skipped), key=lambda m: (m.partition, m.offset)
    )
    started = min(summaries, key=lambda s: _ts(s.started_at)).started_at
    ends = [_ts(s.started_at) + s.duration_seconds for s in summaries]
    duration = max(ends) - _ts(started)
    rules: list[RuleResult] = []
    for index, base in enumerate(first.rules):
        parts = [r.rules[index] for r in reports]
        if base.rule in ("required_columns", "row_count", "freshness"):
            rules.append(judge_table(base, [p.stats for p in parts], messages))
            continue
        failed = sum(p.failed for p in parts)
        checked = sum(p.checked for p in parts)
        samples = sorted(
            (s for p in parts for s in p.samples),
            key=lambda s: (s.partition if s.partition is not None else -1, s.offset or 0),
        )[:SAMPLE_CAP]
        rules.append(
            base.model_copy(
                update={
                    "failed": failed,
                    "checked": checked,
                    "percent": _percent(failed, checked),
                    "passed": passes(failed, checked, base.mostly),
                    "samples": samples,
                }
            )
        )
    passed, failed_rules = summarize(rules)
    summary = first.summary.model_copy(
        update={
            "started_at": started,
            "duration_seconds": round(duration, 6),
            "messages": messages,
            "messages_per_second": round(messages / duration, 1) if duration > 0 else 0.0,
            "max_messages": _sum_opt([s.max_messages for s in summaries]),
            "partitions": [partitions[p] for p in sorted(partitions)],
            "skipped": skipped[:SKIPPED_CAP],
            "skipped_count": sum(s.skipped_count for s in summaries),
            "rules_passed": passed,
            "rules_failed": failed_rules,
            "workers": sum(s.workers for s in summaries),
        }
    )
    return ValidationReport(
        summary=summary,
        inferred_schema=merge_schema([r.inferred_schema for r in reports]),
        rules=rules,
    )


def merge_schema(schemas: list[list[SchemaField]]) -> list[SchemaField]:
    """Union of fields; a field seen with different types shows them all (`i64 | str`)."""
    types: dict[str, list[str]] = {}
    for schema in schemas:
        for f in schema:
            seen = types.setdefault(f.name, [])
            for t in f.type.split(" | "):
                if t not in seen:
                    seen.append(t)
    return [SchemaField(name=name, type=" | ".join(ts)) for name, ts in types.items()]


def passes(failed: int, checked: int, mostly: float) -> bool:
    if checked == 0:
        return True
    return (checked - failed) / checked >= mostly - 1e-12


def _percent(failed: int, checked: int) -> float:
    return round(100.0 * failed / checked, 4) if checked else 0.0


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _min(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def _sum_opt(values: list[int | None]) -> int | None:
    return None if any(v is None for v in values) else sum(v for v in values if v is not None)


__all__ = [
    "SEVERITIES",
    "PartitionSummary",
    "RuleResult",
    "RunSummary",
    "Sample",
    "SchemaField",
    "SkippedMessage",
    "ValidationReport",
    "merge",
]
