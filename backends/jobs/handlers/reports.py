"""`generate_report`: retail events of a period, aggregated into CSV, XLSX or PDF.

Rows are (period bucket, category, event type) with the number of events and their
value. The bucket follows `report_type`: `monthly` → day, `quarterly` → ISO week,
`annual` → month, `custom` → the whole period. An event's value is its money field
(receipt total, line extended price, payment amount, promotion discount, ad cost;
0 for the others). `records` is the number of events summarised; `stats.total_value`
is the sales total (sum of `receipt_created.total`), `stats.categories_count` the
number of categories present. Events belong to the period by the date of their
`ingest_timestamp` (UTC), both ends inclusive.

Files: CSV (header `period,category,event_type,events,value`, value with two
decimals), XLSX (openpyxl: sheets `Report` and `Summary`, a bar chart per category
when `include_charts`), PDF (reportlab: summary, category totals, detail rows and,
when asked, a bar chart). The file is served by the jobs server at `url` until
`expires_at` (`report_ttl_seconds`).
"""

from __future__ import annotations

import asyncio
import csv
import io
import secrets
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from backends.common.clock import iso_z
from backends.jobs.handlers import HandlerRegistry, JobContext
from backends.jobs.models import EVENT_CATEGORIES, GenerateReportPayload, ReportResult, ReportStats

_VALUE_FIELD = {
    "receipt_created": "total",
    "receipt_line_added": "extended_price",
    "payment_processed": "amount",
    "promotion_applied": "discount_amount",
    "ad_impression": "cost",
}
_EXTENSIONS = {"csv": "csv", "excel": "xlsx", "pdf": "pdf"}
HEADER = ("period", "category", "event_type", "events", "value")
_CHUNK = 20_000


@dataclass
class Aggregate:
    rows: list[tuple[str, str, str, int, float]] = field(default_factory=list)
    records: int = 0
    total_value: float = 0.0

    @property
    def categories(self) -> dict[str, tuple[int, float]]:
        totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
        for _, category, _, count, value in self.rows:
            totals[category][0] += count
            totals[category][1] += value
        return {name: (int(c), round(v, 2)) for name, (c, v) in sorted(totals.items())}


def bucket(day: str, report_type: str, payload: GenerateReportPayload) -> str:
    if report_type == "monthly":
        return day
    if report_type == "annual":
        return day[:7]
    if report_type == "quarterly":
        year, week, _ = date.fromisoformat(day).isocalendar()
        return f"{year}-W{week:02d}"
    return f"{payload.start_date.isoformat()}..{payload.end_date.isoformat()}"


def in_report(event: dict[str, Any], start: str, end: str, payload: GenerateReportPayload) -> bool:
    day = str(event.get("ingest_timestamp", ""))[:10]
    if not start <= day <= end:
        return False
    filters = payload.filters
    event_type = event.get("event_type")
    if filters.event_type is not None and event_type != filters.event_type:
        return False
    if filters.category is not None and EVENT_CATEGORIES.get(event_type) != filters.category:
        return False
    if filters.store_id is not None:
        body = event.get("payload") or {}
        if body.get("store_id") != filters.store_id:
            return False
    return True


def event_value(event: dict[str, Any]) -> float:
    name = _VALUE_FIELD.get(event.get("event_type", ""))
    if name is None:
        return 0.0
    value = (event.get("payload") or {}).get(name)
    return float(value) if isinstance(value, int | float) else 0.0


class Aggregator:
    """Adds events (already filtered to the period) chunk by chunk, so progress is real."""

    def __init__(self, payload: GenerateReportPayload) -> None:
        self._payload = payload
        self._cells: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0, 0.0])
        self._records = 0
        self._total = 0.0

    def add(self, events: list[dict[str, Any]]) -> None:
        payload, cells = self._payload, self._cells
        for event in events:
            event_type = event["event_type"]
            value = event_value(event)
            key = (
                bucket(event["ingest_timestamp"][:10], payload.report_type, payload),
                EVENT_CATEGORIES.get(event_type, "other"),
                event_type,
            )
            cell = cells[key]
            cell[0] += 1
            cell[1] += value
            if event_type == "receipt_created":
                self._total += value
        self._records += len(events)

    def finish(self) -> Aggregate:
        rows = [(*key, int(c), round(v, 2)) for key, (c, v) in sorted(self._cells.items())]
        return Aggregate(rows, self._records, round(self._total, 2))


def aggregate(events: list[dict[str, Any]], payload: GenerateReportPayload) -> Aggregate:
    aggregator = Aggregator(payload)
    aggregator.add(events)
    return aggregator.finish()


def write_csv(agg: Aggregate) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HEADER)
    for period, category, event_type, count, value in agg.rows:
        writer.writerow((period, category, event_type, count, f"{value:.2f}"))
    return buffer.getvalue().encode()


def write_xlsx(agg: Aggregate, payload: GenerateReportPayload, generated_at: str) -> bytes:
    from openpyxl import Workbook
    from openpyxl.chart import BarChart, Reference

    book = Workbook()
    sheet = book.active
    sheet.title = "Report"
    sheet.append(list(HEADER))
    for row in agg.rows:
        sheet.append(list(row))
    summary = book.create_sheet("Summary")
    for key, value in _summary_lines(agg, payload, generated_at):
        summary.append([key, value])
    summary.append([])
    start = summary.max_row + 1
    summary.append(["category", "events", "value"])
    for name, (count, value) in agg.categories.items():
        summary.append([name, count, value])
    if payload.include_charts and agg.categories:
        chart = BarChart()
        chart.title = "Events per category"
        chart.y_axis.title = "events"
        end = summary.max_row
        chart.add_data(
            Reference(summary, min_col=2, min_row=start, max_row=end), titles_from_data=True
        )
        chart.set_categories(Reference(summary, min_col=1, min_row=start + 1, max_row=end))
        summary.add_chart(chart, "E2")
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def write_pdf(agg: Aggregate, payload: GenerateReportPayload, generated_at: str) -> bytes:
    from reportlab.graphics.charts.barcharts import VerticalBarChart
    from reportlab.graphics.shapes import Drawing
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    grid = TableStyle(
        [
            ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
            ("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey),
            ("FONTSIZE", (0, 0), (-1, -1), 8),
        ]
    )
    story: list[Any] = [Paragraph("Retail events report", styles["Title"])]
    story.append(Table([list(line) for line in _summary_lines(agg, payload, generated_at)]))
    story.append(Spacer(1, 12))
    categories = agg.categories
    story.append(Paragraph("Totals per category", styles["Heading2"]))
    story.append(
        Table(
            [["category", "events", "value"]]
            + [[n, str(c), f"{v:.2f}"] for n, (c, v) in categories.items()],
            style=grid,
        )
    )
    if payload.include_charts and categories:
        story.append(Spacer(1, 12))
        drawing = Drawing(420, 220)
        chart = VerticalBarChart()
        chart.x, chart.y, chart.width, chart.height = 40, 30, 360, 170
        chart.data = [[count for count, _ in categories.values()]]
        chart.categoryAxis.categoryNames = list(categories)
        chart.valueAxis.valueMin = 0
        chart.bars[0].fillColor = colors.steelblue
        drawing.add(chart)
        story.append(Paragraph("Events per category", styles["Heading2"]))
        story.append(drawing)
    story.append(Paragraph("Detail", styles["Heading2"]))
    detail = [list(HEADER)] + [[p, c, t, str(n), f"{v:.2f}"] for p, c, t, n, v in agg.rows]
    story.append(Table(detail, style=grid, repeatRows=1))
    out = io.BytesIO()
    title = f"Retail events report {payload.start_date}..{payload.end_date}"
    SimpleDocTemplate(out, pagesize=A4, title=title, author="streamops").build(story)
    return out.getvalue()


def _summary_lines(
    agg: Aggregate, payload: GenerateReportPayload, generated_at: str
) -> list[tuple[str, Any]]:
    return [
        ("period", f"{payload.start_date.isoformat()} to {payload.end_date.isoformat()}"),
        ("report_type", payload.report_type),
        ("records", agg.records),
        ("total_value", agg.total_value),
        ("categories", len(agg.categories)),
        ("generated_at", generated_at),
    ]


def render(agg: Aggregate, payload: GenerateReportPayload, generated_at: str) -> bytes:
    if payload.format == "csv":
        return write_csv(agg)
    if payload.format == "excel":
        return write_xlsx(agg, payload, generated_at)
    return write_pdf(agg, payload, generated_at)


def register_generate_report(registry: HandlerRegistry) -> None:
    @registry.handler(
        "generate_report", payload=GenerateReportPayload, estimated_duration=120, permission="read"
    )
    async def generate_report(ctx: JobContext, payload: GenerateReportPayload) -> dict[str, Any]:
        resources = ctx.resources
        source = resources.events
        step = "querying_data"
        await ctx.progress(0, f"Querying events from {source.name}", step=step)

        async def fetched(count: int) -> None:
            await ctx.progress(
                15, f"Read {count} events from {source.name}", step=step, processed=count
            )

        events = await source.read(fetched)
        start, end = payload.start_date.isoformat(), payload.end_date.isoformat()
        selected = [e for e in events if in_report(e, start, end, payload)]
        total = len(selected)
        await ctx.progress(
            30,
            f"{total} of {len(events)} events in the period",
            step=step,
            processed=total,
            total=total,
        )

        step = "aggregating"
        aggregator = Aggregator(payload)
        for done in range(0, total, _CHUNK):
            aggregator.add(selected[done : done + _CHUNK])
            processed = min(done + _CHUNK, total)
            await ctx.progress(
                30 + 30 * processed / total,
                f"Aggregated {processed}/{total} events",
                step=step,
                processed=processed,
                total=total,
            )
            await asyncio.sleep(0)
        agg = aggregator.finish()
        await ctx.progress(
            60, f"{len(agg.rows)} rows aggregated", step=step, processed=total, total=total
        )

        step = "generating_file"
        generated_at = iso_z(resources.clock.now())
        await ctx.progress(60, f"Writing {payload.format} report", step=step)
        content = await asyncio.to_thread(render, agg, payload, generated_at)
        await ctx.progress(90, f"{len(content)} bytes written", step=step)

        step = "finalizing"
        folder = resources.output_dir / "reports" / secrets.token_hex(8)
        name = f"report-{start}-{end}-{payload.report_type}.{_EXTENSIONS[payload.format]}"
        path = await asyncio.to_thread(_save, folder / name, content)
        url, expires = resources.files.publish(path, resources.settings.report_ttl_seconds)
        await ctx.progress(100, "Report ready", step=step, processed=total, total=total)
        return ReportResult(
            url=url,
            records=agg.records,
            size_bytes=len(content),
            format=payload.format,
            generated_at=generated_at,
            expires_at=iso_z(expires),
            stats=ReportStats(
                total_value=agg.total_value,
                categories_count=len(agg.categories),
                event_types_count=len({row[2] for row in agg.rows}),
                rows=len(agg.rows),
            ),
        ).model_dump()


def _save(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path
