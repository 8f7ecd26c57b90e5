"""Report contents against the events they summarise: CSV exact, XLSX read back, PDF text."""

from __future__ import annotations

import io
import random
from collections import Counter, defaultdict
from typing import Any

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

from backends.common.clock import ManualClock
from backends.jobs.handlers.reports import aggregate, in_report, render, write_csv
from backends.jobs.models import EVENT_CATEGORIES, GenerateReportPayload
from backends.retail.generator import RetailGenerator
from backends.retail.world import World


def event(kind: str, ts: str, **payload: Any) -> dict[str, Any]:
    return {"event_type": kind, "ingest_timestamp": ts, "trace_id": "t", "payload": payload}


EVENTS = [
    event("receipt_created", "2024-01-01T10:00:00.000Z", store_id=1, total=10.5),
    event("receipt_created", "2024-01-01T11:00:00.000Z", store_id=2, total=4.25),
    event("receipt_line_added", "2024-01-01T11:00:00.000Z", extended_price=3.0),
    event("ad_impression", "2024-01-02T09:00:00.000Z", cost=0.125),
    event("store_opened", "2024-01-02T08:00:00.000Z", store_id=1),
    event("receipt_created", "2024-01-03T08:00:00.000Z", store_id=1, total=99.0),  # outside
    event("receipt_created", "2023-12-31T23:59:59.999Z", store_id=1, total=7.0),  # outside
]


def payload(**changes: Any) -> GenerateReportPayload:
    base = {
        "start_date": "2024-01-01",
        "end_date": "2024-01-02",
        "format": "csv",
        "report_type": "monthly",
    }
    return GenerateReportPayload.model_validate({**base, **changes})


def selected(p: GenerateReportPayload, events: list[dict[str, Any]] = EVENTS) -> list[dict]:
    start, end = p.start_date.isoformat(), p.end_date.isoformat()
    return [e for e in events if in_report(e, start, end, p)]


def test_csv_is_exactly_the_daily_aggregation() -> None:
    p = payload()
    agg = aggregate(selected(p), p)
    assert write_csv(agg).decode() == (
        "period,category,event_type,events,value\n"
        "2024-01-01,sales,receipt_created,2,14.75\n"
        "2024-01-01,sales,receipt_line_added,1,3.00\n"
        "2024-01-02,marketing,ad_impression,1,0.12\n"
        "2024-01-02,store,store_opened,1,0.00\n"
    )
    assert (agg.records, agg.total_value, len(agg.categories)) == (5, 14.75, 3)


@pytest.mark.parametrize(
    ("report_type", "periods"),
    [
        ("annual", {"2024-01"}),
        ("quarterly", {"2024-W01"}),
        ("custom", {"2024-01-01..2024-01-02"}),
    ],
)
def test_report_type_sets_the_bucket(report_type: str, periods: set[str]) -> None:
    p = payload(report_type=report_type)
    assert {row[0] for row in aggregate(selected(p), p).rows} == periods


def test_filters() -> None:
    p = payload(filters={"category": "sales"})
    assert {row[2] for row in aggregate(selected(p), p).rows} == {
        "receipt_created",
        "receipt_line_added",
    }
    p = payload(filters={"store_id": 2})
    assert aggregate(selected(p), p).rows == [("2024-01-01", "sales", "receipt_created", 1, 4.25)]


def generated_events(n: int = 5000) -> list[dict[str, Any]]:
    clock = ManualClock()
    world = World.build(random.Random(7))
    generator = RetailGenerator(world=world, clock=clock, rng=random.Random(8))
    events: list[dict[str, Any]] = []
    while len(events) < n:
        events += generator.generate(500)
        clock.advance(3600 * 5)  # spread over several days
    return events


def test_generated_events_total_independently_recomputed() -> None:
    events = generated_events()
    p = payload(start_date="2024-01-15", end_date="2024-01-31")
    rows = aggregate(selected(p, events), p).rows
    counts: Counter[tuple[str, str]] = Counter()
    values: dict[tuple[str, str], float] = defaultdict(float)
    money = {"receipt_created": "total", "receipt_line_added": "extended_price"}
    money |= {"payment_processed": "amount", "promotion_applied": "discount_amount"}
    money |= {"ad_impression": "cost"}
    for e in events:
        day = e["ingest_timestamp"][:10]
        if "2024-01-15" <= day <= "2024-01-31":
            key = (day, e["event_type"])
            counts[key] += 1
            values[key] += float(e["payload"].get(money.get(e["event_type"], ""), 0) or 0)
    assert {(r[0], r[2]): r[3] for r in rows} == dict(counts)
    for period, category, kind, _, value in rows:
        assert category == EVENT_CATEGORIES[kind]
        assert value == pytest.approx(values[(period, kind)], abs=0.01)


def test_xlsx_reads_back_with_openpyxl() -> None:
    p = payload(format="excel", include_charts=True)
    agg = aggregate(selected(p), p)
    book = load_workbook(io.BytesIO(render(agg, p, "2024-01-20T10:45:00Z")))
    rows = [tuple(r) for r in book["Report"].iter_rows(values_only=True)]
    assert rows[0] == ("period", "category", "event_type", "events", "value")
    assert rows[1:] == agg.rows
    summary = {r[0]: r[1] for r in book["Summary"].iter_rows(values_only=True) if r[0]}
    assert summary["records"] == 5 and summary["total_value"] == 14.75
    assert len(book["Summary"]._charts) == 1


def test_pdf_is_a_pdf_with_the_figures() -> None:
    p = payload(format="pdf", include_charts=True)
    agg = aggregate(selected(p), p)
    content = render(agg, p, "2024-01-20T10:45:00Z")
    assert content.startswith(b"%PDF-")
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)
    assert "Retail events report" in text
    assert "2024-01-01 to 2024-01-02" in text
    assert "14.75" in text and "receipt_line_added" in text
    assert "Events per category" in text
    no_chart = render(agg, payload(format="pdf"), "2024-01-20T10:45:00Z")
    assert "Events per category" not in PdfReader(io.BytesIO(no_chart)).pages[0].extract_text()
