"""The report half of the Validation tab: summary, rules (failing first), inferred schema.

A report is drawn once when it arrives (it never changes afterwards), so plain
`Static`s and one `DataTable` are enough; samples are rendered only for the rule
that is opened (`SamplesScreen`). Every cell is `Text`, never markup: rule names and
values come from the data (`[`, `]` in a regex would be read as markup).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import orjson
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Static

from console.widgets import formatting as fmt

if TYPE_CHECKING:  # the engine imports polars: the console loads it off the UI loop
    from backends.validation.report import RuleResult, Sample, ValidationReport

SEVERITY_STYLE: dict[str, str] = {
    "critical": "bold red",
    "high": "red",
    "medium": "yellow",
    "low": "cyan",
}
SKIPPED_SHOWN = 3
FIRST_WIDTH = 28
NARROW_TABLE = 60
SHORT_SEVERITY = {"critical": "crit", "medium": "med"}
WHERE_WIDTH = 10
MIN_RULE_WIDTH = 14


def where(sample: Sample) -> str:
    """`p2@4412` — partition and offset; `row 17` for sources without partitions."""
    if sample.partition is None:
        return f"row {sample.offset}" if sample.offset is not None else "-"
    return f"p{sample.partition}@{sample.offset}"


def short_value(value: Any, limit: int = 40) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def percent_text(percent: float) -> str:
    if percent == 0:
        return "0 %"
    if percent < 0.01:
        return "<0.01 %"
    return f"{percent:.2f} %"


def compact_rate(rate: float) -> str:
    """`312k msg/s` as in the sketch; small rates keep a decimal."""
    if rate >= 10_000:
        return f"{rate / 1000:,.0f}k msg/s"
    return f"{fmt.rate(rate)} msg/s"


def ordered(report: ValidationReport) -> list[RuleResult]:
    """Failing rules by severity (then failures), then the passing ones in rule-set order."""
    return report.issues + [r for r in report.rules if r.passed]


def summary_text(report: ValidationReport) -> Text:
    """One fact per line, cut with an ellipsis rather than wrapped, so the columns stay put."""
    s = report.summary
    messages = fmt.count(s.messages)
    if s.max_messages:
        messages += f" of max {fmt.count(s.max_messages)}"
    lines: list[tuple[str, str]] = [
        ("source", s.source),
        ("rule set", s.rule_set),
        ("rules", f"{s.rules_total} run · {s.rules_failed} failed"),
        ("messages", messages),
        ("skipped", fmt.count(s.skipped_count)),
    ]
    lines += [("", f"p{m.partition}@{m.offset} {m.reason}") for m in s.skipped[:SKIPPED_SHOWN]]
    if s.skipped_count > SKIPPED_SHOWN:
        lines.append(("", f"… {fmt.count(s.skipped_count - SKIPPED_SHOWN)} more in the export"))
    lines += [
        ("duration", f"{s.duration_seconds:.2f} s · {compact_rate(s.messages_per_second)}"),
        ("started", s.started_at.replace("T", " ").removesuffix("Z")[:19]),
    ]
    if s.workers > 1:
        lines.append(("workers", str(s.workers)))
    text = Text(no_wrap=True, overflow="ellipsis")
    for label, value in lines:
        text.append(f"{label:<10}", style="dim")
        text.append(f"{value}\n")
    text.append("partition  messages  offsets\n", style="dim")
    for p in s.partitions:
        span = "-" if p.first_offset is None else f"{p.first_offset}..{p.last_offset}"
        text.append(f"p{p.partition:<9}{fmt.count(p.messages):>9}  {span}\n")
    text.rstrip()
    return text


def type_text(dtype: str) -> str:
    """`struct{…}` and `list[…]` instead of their members: the members have their own entries."""
    for prefix, close in (("struct", "{…}"), ("list", "[…]")):
        if dtype.startswith(prefix) and len(dtype) > len(prefix):
            return prefix + close
    return short_value(dtype, 30)


def schema_text(report: ValidationReport) -> Text:
    """Fields by name: readable, and the same whatever order the rows revealed them in."""
    text = Text()
    for i, field in enumerate(sorted(report.inferred_schema, key=lambda f: f.name)):
        if i:
            text.append(" · ", style="dim")
        text.append(field.name)
        text.append(":" + type_text(field.type), style="dim")  # no space: wraps with its name
    return text


class RulesTable(DataTable[Text]):
    """The rule rows; enter opens the selected rule's samples (shown in the footer)."""

    BINDINGS: ClassVar[list[Binding]] = [
        Binding(
            "enter",
            "select_cursor",
            "Samples",
            id="validation.samples",
            tooltip="Open the selected rule's failing samples",
        ),
    ]


def rule_columns(width: int) -> list[tuple[str, str, int]]:
    """(label, key, width) of the rule columns fitting `width` cells without a horizontal
    scroll: the rule name takes what is left, the first sample only when there is room."""
    pad = 2  # DataTable's cell padding, one each side
    scrollbar = 1  # styles/validation.tcss
    severity = 8 if width >= NARROW_TABLE else 4  # `crit` / `med` below that
    fixed = [("severity" if severity == 8 else "sev", "severity", severity)]
    fixed += [("failed", "failed", 7), ("%", "percent", 7)]
    left = width - scrollbar - sum(w + pad for *_, w in fixed) - pad
    first = 0
    if left - FIRST_WIDTH - pad >= 40:
        first = FIRST_WIDTH  # where and the value
    elif left - WHERE_WIDTH - pad >= 26:
        first = WHERE_WIDTH  # where only: p2@4412
    rule = max(left - (first + pad if first else 0), MIN_RULE_WIDTH)
    columns = [fixed[0], ("rule", "rule", rule), fixed[1], fixed[2]]
    return columns + ([("first", "first", first)] if first else [])


class ReportView(Vertical):
    EMPTY = (
        "No report yet — press r to validate. The default source is the memory sink: "
        "start a stream in 1 Streams (s) first so it has events."
    )

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.report: ValidationReport | None = None
        self._rows: list[RuleResult] = []
        self._table_width = 0

    def compose(self) -> ComposeResult:
        with Horizontal(id="report-top"):
            with VerticalScroll(id="summary-panel") as summary:
                summary.border_title = "Summary"
                yield Static(self.EMPTY, id="summary", markup=False)
            with Vertical(id="rules-panel") as rules:
                rules.border_title = "Rules — failing first, by severity"
                rules.border_subtitle = "enter samples · e export · h history"
                yield RulesTable(id="rules", cursor_type="row")
        with VerticalScroll(id="schema-panel") as schema:
            schema.border_title = "Schema"
            yield Static("", id="schema", markup=False)

    def on_mount(self) -> None:
        self._fill_table()

    def show(self, report: ValidationReport, *, title: str = "") -> None:
        self.report = report
        self._rows = ordered(report)
        self.query_one("#summary", Static).update(summary_text(report))
        self.query_one("#summary-panel").border_title = f"Summary{f' — {title}' if title else ''}"
        self.query_one("#schema", Static).update(schema_text(report))
        self.query_one(
            "#schema-panel"
        ).border_title = f"Schema — {len(report.inferred_schema)} fields"
        self.query_one("#rules-panel").border_title = (
            f"Rules — {report.summary.rules_failed} failing of {report.summary.rules_total}, "
            "by severity"
        )
        self._fill_table(keep_cursor=False)

    def on_resize(self) -> None:
        if self.query_one(RulesTable).size.width != self._table_width:
            self._fill_table()

    def _fill_table(self, *, keep_cursor: bool = True) -> None:
        """Columns sized to the panel (names cut with …), rows failing first."""
        table = self.query_one(RulesTable)
        self._table_width = table.size.width
        cursor = table.cursor_row if keep_cursor else 0
        table.clear(columns=True)
        columns = rule_columns(self._table_width)
        widths = {key: width for _, key, width in columns}
        short = widths["severity"] < len("critical")
        for label, key, width in columns:
            table.add_column(label, key=key, width=width)
        for rule in self._rows:
            style = "dim" if rule.passed else ""
            first = rule.samples[0] if rule.samples else None
            cells = {
                "severity": Text(
                    SHORT_SEVERITY.get(rule.severity, rule.severity) if short else rule.severity,
                    style="dim" if rule.passed else SEVERITY_STYLE.get(rule.severity, ""),
                ),
                "rule": Text(rule.name, style=style),
                "failed": Text(fmt.count(rule.failed), style="dim" if rule.passed else "bold"),
                "percent": Text("" if rule.passed else percent_text(rule.percent)),
                "first": Text(
                    f"{where(first)} {short_value(first.value, 40)}".strip()
                    if first is not None
                    else ("ok" if rule.passed else (rule.observed or "")),
                    style=style,
                ),
            }
            row = []
            for key, width in widths.items():
                cell = cells[key]
                cell.truncate(width, overflow="ellipsis")
                row.append(cell)
            table.add_row(*row)
        if self._rows:
            table.move_cursor(row=min(max(cursor, 0), len(self._rows) - 1))

    def selected_rule(self) -> RuleResult | None:
        table = self.query_one(RulesTable)
        if not self._rows or not 0 <= table.cursor_row < len(self._rows):
            return None
        return self._rows[table.cursor_row]
