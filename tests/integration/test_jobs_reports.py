"""generate_report end to end: the embedded retail service's events (and real Redis),
aggregated by the server, downloaded over HTTP and checked against those events."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from openpyxl import load_workbook
from pypdf import PdfReader
from websockets.asyncio.client import connect

from backends.common.clock import ManualClock
from backends.jobs.handlers.reports import aggregate, in_report, write_csv
from backends.jobs.models import GenerateReportPayload
from backends.retail.models import StartRequest
from backends.retail.service import RetailService
from tests.jobs_support import final_for, make_settings, recv_until, running_jobs, send, token

REPORT = {
    "start_date": "2024-01-15",
    "end_date": "2024-01-15",
    "report_type": "monthly",
    "include_charts": True,
}


async def stream_some(retail: RetailService, seconds: float = 0.3) -> None:
    await retail.start(StartRequest(emit_interval_ms=20, burst=300))
    await asyncio.sleep(seconds)
    await retail.stop()


def expected_csv(events: list[dict[str, Any]], **changes: Any) -> bytes:
    payload = GenerateReportPayload.model_validate({**REPORT, "format": "csv", **changes})
    start, end = payload.start_date.isoformat(), payload.end_date.isoformat()
    return write_csv(aggregate([e for e in events if in_report(e, start, end, payload)], payload))


async def run_report(url: str, rid: str, **payload: Any) -> tuple[dict, list[dict]]:
    async with connect(url) as ws:
        await send(ws, {"id": rid, "action": "generate_report", "payload": {**REPORT, **payload}})
        final, seen = await recv_until(ws, final_for(rid))
    return final, seen


async def test_reports_from_the_embedded_retail_service(tmp_path: Path) -> None:
    clock = ManualClock()
    settings = make_settings(tmp_path)
    retail = RetailService(settings, clock=clock)
    try:
        async with running_jobs(settings, clock, retail) as backend:
            await stream_some(retail)
            events = await backend.capture.read()
            assert len(events) >= 300
            url = f"{backend.url}?Authorization={token(settings, clock)}"

            final, seen = await run_report(url, "csv", format="csv")
            data = final["result"]["data"]
            async with httpx.AsyncClient() as http:
                csv_body = (await http.get(data["url"])).content
                excel, _ = await run_report(url, "xl", format="excel")
                xlsx_body = (await http.get(excel["result"]["data"]["url"])).content
                pdf, _ = await run_report(url, "pdf", format="pdf")
                pdf_response = await http.get(pdf["result"]["data"]["url"])
                empty, _ = await run_report(
                    url, "none", format="csv", start_date="2024-02-01", end_date="2024-02-02"
                )
                clock.advance(settings.jobs.report_ttl_seconds)
                expired = await http.get(data["url"])
    finally:
        await retail.aclose()

    assert csv_body == expected_csv(events)
    assert data["records"] == len(events) and data["size_bytes"] == len(csv_body)
    assert data["format"] == "csv"
    assert data["generated_at"] == "2024-01-15T10:30:00Z"
    assert data["expires_at"] == "2024-01-22T10:30:00Z"
    sales = sum(e["payload"]["total"] for e in events if e["event_type"] == "receipt_created")
    assert data["stats"]["total_value"] == pytest.approx(sales, abs=0.01)
    assert data["stats"]["categories_count"] == len(
        {line.split(b",")[1] for line in csv_body.splitlines()[1:]}
    )
    progress = [m["progress"] for m in seen if m["type"] == "progress"]
    steps = list(dict.fromkeys(p["metadata"]["current_step"] for p in progress))
    assert steps == ["querying_data", "aggregating", "generating_file", "finalizing"]
    percentages = [p["progress"] for p in progress]
    assert percentages == sorted(percentages) and percentages[-1] == 100
    assert any(p["metadata"]["records_total"] == len(events) for p in progress)

    book = load_workbook(io.BytesIO(xlsx_body))
    csv_rows = [line.split(",") for line in csv_body.decode().splitlines()]
    xlsx_rows = [list(map(str, r)) for r in book["Report"].iter_rows(values_only=True)]
    assert [r[:4] for r in xlsx_rows] == [r[:4] for r in csv_rows]
    assert excel["result"]["data"]["size_bytes"] == len(xlsx_body)

    assert pdf_response.headers["content-type"] == "application/pdf"
    text = PdfReader(io.BytesIO(pdf_response.content)).pages[0].extract_text()
    assert "Retail events report" in text and str(len(events)) in text

    assert empty["result"]["data"]["records"] == 0
    assert expired.status_code == 404


@pytest.mark.redis
async def test_report_reads_the_retail_redis_stream(
    tmp_path: Path, redis_url: str, redis_client: aioredis.Redis
) -> None:
    clock = ManualClock()
    settings = make_settings(tmp_path)
    settings.retail.sink = "redis"
    settings.redis.url = redis_url
    settings.redis.retail_stream = f"jobs-report-{tmp_path.name}"
    retail = RetailService(settings, clock=clock)
    try:
        async with running_jobs(settings, clock, retail) as backend:
            assert backend.server.resources.events.name == "redis"
            await stream_some(retail, 0.2)
            entries = await redis_client.xrange(settings.redis.retail_stream)
            events = [orjson.loads(fields[b"data"]) for _, fields in entries]
            url = f"{backend.url}?Authorization={token(settings, clock)}"
            final, _ = await run_report(url, "r", format="csv", filters={"category": "sales"})
            async with httpx.AsyncClient() as http:
                body = (await http.get(final["result"]["data"]["url"])).content
    finally:
        await retail.aclose()
    assert len(events) >= 200
    assert body == expected_csv(events, filters={"category": "sales"})
    assert set(line.split(b",")[1] for line in body.splitlines()[1:]) == {b"sales"}


@pytest.mark.kafka
async def test_report_reads_the_retail_kafka_topic(
    tmp_path: Path, kafka_bootstrap: str, kafka_topic: str
) -> None:
    clock = ManualClock()
    settings = make_settings(tmp_path)
    settings.retail.sink = "kafka"
    settings.kafka.bootstrap_servers = kafka_bootstrap
    settings.kafka.topic = kafka_topic
    retail = RetailService(settings, clock=clock)
    try:
        async with running_jobs(settings, clock, retail) as backend:
            assert backend.server.resources.events.name == "kafka"
            await stream_some(retail, 0.3)
            assert retail.statistics().events_sent_successfully == len(backend.capture)
            events = await backend.capture.read()  # every event the sink delivered
            url = f"{backend.url}?Authorization={token(settings, clock)}"
            final, _ = await run_report(url, "k", format="csv")
            async with httpx.AsyncClient() as http:
                body = (await http.get(final["result"]["data"]["url"])).content
    finally:
        await retail.aclose()
    assert len(events) >= 300
    assert final["result"]["data"]["records"] == len(events)
    assert body == expected_csv(events)


async def test_process_data_over_the_retail_stream_and_a_query(tmp_path: Path) -> None:
    clock = ManualClock()
    settings = make_settings(tmp_path)
    retail = RetailService(settings, clock=clock)
    try:
        async with running_jobs(settings, clock, retail) as backend:
            await stream_some(retail, 0.2)
            events = await backend.capture.read()
            url = f"{backend.url}?Authorization={token(settings, clock)}"
            stream_payload = {
                "pipeline": "anomaly",
                "data_source": {"type": "stream", "stream_id": "retail"},
                "output": {"format": "parquet"},
                "options": {"contamination": 0.05},
            }
            query_payload = {
                "pipeline": "regression",
                "data_source": {
                    "type": "query",
                    "query": "SELECT subtotal, tax, total FROM events "
                    "WHERE event_type = 'receipt_created'",
                },
                "output": {"format": "json"},
                "options": {"target": "total", "sample_size": 3},
            }
            async with connect(url) as ws:
                await send(ws, {"id": "s", "action": "process_data", "payload": stream_payload})
                streamed, _ = await recv_until(ws, final_for("s"))
                await send(ws, {"id": "q", "action": "process_data", "payload": query_payload})
                queried, _ = await recv_until(ws, final_for("q"))
    finally:
        await retail.aclose()
    summary = streamed["result"]["data"]["summary"]
    assert summary["total_records"] == len(events)
    assert summary["metrics"]["anomaly_rate"] == pytest.approx(0.05, abs=0.01)
    receipts = sum(e["event_type"] == "receipt_created" for e in events)
    data = queried["result"]["data"]
    assert data["summary"]["total_records"] == receipts
    metrics = data["summary"]["metrics"]  # total ≈ subtotal + tax (rounding aside)
    assert metrics["r2"] > 0.999
    assert metrics["coefficients"] == pytest.approx({"subtotal": 1.0, "tax": 1.0}, abs=0.05)
    assert len(data["data"]) == 3 and set(data["data"][0]) == {
        "subtotal",
        "tax",
        "total",
        "prediction",
    }
