"""The Jobs tab's pure parts: form checks, raw JSON, progress arithmetic, remembered jobs."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.screens.job_result import facts, result_location
from console.state import RememberedJob, StateStore
from console.widgets.job_form import parse_pairs, process_request, raw_request, report_request
from console.widgets.job_list import JobEntry, headline_metric, result_summary, size_text


def report(**overrides: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "start": "2024-01-01",
        "end": "2024-01-31",
        "fmt": "csv",
        "report_type": "monthly",
        "include_charts": False,
        "filters": "",
    }
    return fields | overrides


def test_report_form_builds_the_spec_payload() -> None:
    checked = report_request(**report(filters="category=sales, store_id = 12"))  # type: ignore[arg-type]
    assert checked.errors == []
    assert checked.request is not None
    assert checked.request.action == "generate_report"
    assert checked.request.label == "csv"
    assert checked.request.payload == {
        "start_date": "2024-01-01",
        "end_date": "2024-01-31",
        "format": "csv",
        "report_type": "monthly",
        "include_charts": False,
        "filters": {"category": "sales", "store_id": "12"},
    }


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"start": "01/20/2024"}, "start_date: a date as YYYY-MM-DD"),
        ({"end": "2024-02-30"}, "end_date: a date as YYYY-MM-DD"),
        ({"start": "2024-02-01", "end": "2024-01-31"}, "end_date: on or after start_date"),
        ({"filters": "category"}, "filters: key=value pairs separated by commas"),
        ({"filters": "region=north"}, "filters.region: Extra inputs are not permitted"),
        ({"filters": "category=electronics"}, "filters.category: Input should be"),
    ],
)
def test_report_form_errors(overrides: dict[str, object], error: str) -> None:
    checked = report_request(**report(**overrides))  # type: ignore[arg-type]
    assert checked.request is None
    assert any(e.startswith(error) for e in checked.errors), checked.errors


def test_report_form_reports_every_problem_at_once() -> None:
    checked = report_request(**report(start="x", end="y", filters="=1"))  # type: ignore[arg-type]
    assert len(checked.errors) == 3


def test_process_form_puts_the_source_under_its_type_key() -> None:
    checked = process_request(
        pipeline="clustering",
        source_type="query",
        source="SELECT * FROM events",
        output_format="parquet",
        destination="",
        options="max_iterations=100, confidence_threshold=0.8, n_clusters=4",
    )
    assert checked.request is not None
    assert checked.request.payload == {
        "pipeline": "clustering",
        "data_source": {"type": "query", "query": "SELECT * FROM events"},
        "output": {"format": "parquet"},
        "options": {"max_iterations": 100, "confidence_threshold": 0.8, "n_clusters": 4},
    }


def test_process_form_checks_options_with_the_server_model() -> None:
    checked = process_request(
        pipeline="anomaly",
        source_type="stream",
        source="retail",
        output_format="json",
        destination="",
        options="contamination=0.9, nonsense=1",
    )
    assert checked.request is None
    assert [e.split(":")[0] for e in checked.errors] == [
        "options.contamination",
        "options.nonsense",
    ]


def test_process_form_needs_a_source() -> None:
    checked = process_request(
        pipeline="anomaly",
        source_type="file",
        source=" ",
        output_format="json",
        destination="",
        options="",
    )
    assert checked.errors == ["data_source.path: required for a file source"]


def test_parse_pairs_types_values_only_when_asked() -> None:
    assert parse_pairs("a=1, b=true, c=null, d=0.5, e=text", "options", typed=True) == {
        "a": 1,
        "b": True,
        "c": None,
        "d": 0.5,
        "e": "text",
    }
    assert parse_pairs("a=1", "filters", typed=False) == {"a": "1"}
    assert parse_pairs(" , ", "filters", typed=False) == {}


def test_raw_request_takes_any_action_and_checks_only_shape() -> None:
    checked = raw_request('{"action": "no_such_action", "payload": {"x": 1}, "id": "mine-1"}')
    assert checked.request is not None
    assert (checked.request.action, checked.request.payload, checked.request.request_id) == (
        "no_such_action",
        {"x": 1},
        "mine-1",
    )
    assert raw_request('{"action": "health"}').request is not None


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('{"action": "health",', "raw JSON: line 1 column"),
        ("[1, 2]", "raw JSON: an object"),
        ('{"payload": {}}', 'raw JSON: "action" must be a non-empty string'),
        ('{"action": "health", "payload": []}', 'raw JSON: "payload" must be an object'),
        ('{"action": "health", "metadata": 1}', 'raw JSON: "metadata" must be an object'),
        ('{"action": "health", "id": 7}', 'raw JSON: "id" must be a non-empty string'),
        (" " * (1024 * 1024 + 1), "raw JSON: larger than the 1 MB"),
    ],
)
def test_raw_request_errors(text: str, error: str) -> None:
    checked = raw_request(text)
    assert checked.request is None
    assert checked.errors[0].startswith(error), checked.errors


def test_eta_from_progress_then_from_the_estimate() -> None:
    entry = JobEntry("rep-1", "generate_report", "pdf", started_at=100.0, status="queued")
    entry.estimated_duration = 120
    assert entry.eta(130.0) == 90
    entry.status, entry.percentage = "running", 25.0
    assert entry.eta(140.0) == 120  # 40 s for 25 % → 120 s for the other 75 %
    assert entry.times(140.0) == "00:40 · ETA 02:00"
    entry.status, entry.finished_at = "succeeded", 150.0
    assert entry.eta(500.0) is None
    assert entry.times(500.0) == "00:50"


def test_phase_line_shows_the_server_message_and_counts() -> None:
    entry = JobEntry("prc-1", "process_data", "anomaly", 0.0, status="running")
    entry.message, entry.records_processed, entry.records_total = "Feature engineering", 1500, 3000
    assert entry.phase() == "Feature engineering · 1,500/3,000 records"
    assert entry.status_text() == "  0 %"
    entry.percentage = 45.5
    assert entry.status_text() == " 45.5 %"


def test_result_summary_and_facts() -> None:
    data = {
        "url": "http://127.0.0.1:1/reports/r.csv",
        "records": 12500,
        "size_bytes": 2457600,
        "format": "csv",
        "stats": {"total_value": 1.5},
    }
    assert result_summary("generate_report", data) == ["12,500 records", "2.3 MB", "result ↗"]
    entry = JobEntry("rep-1", "generate_report", "csv", 0.0, status="succeeded", data=data)
    shown = dict(facts(entry))
    assert shown["location"] == data["url"]
    assert shown["records"] == "12,500"
    assert shown["size"] == "2.3 MB (2,457,600 bytes)"
    pipeline = {"summary": {"total_records": 50000, "metrics": {"f1_score": 0.93}}}
    assert result_summary("process_data", pipeline) == ["f1_score 0.930", "50,000 records"]
    anomaly = {"summary": {"total_records": 10, "metrics": {"anomalies": 2, "anomaly_rate": 0.2}}}
    assert result_summary("process_data", anomaly)[0] == "anomaly_rate 0.200"
    assert headline_metric({"anomalies": 2000}) == "anomalies 2,000"
    assert result_location({"output_location": "/tmp/out.json"}) == "/tmp/out.json"
    assert size_text(512) == "512 B"


def test_running_jobs_are_remembered_per_endpoint(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    store = StateStore(path)
    job = RememberedJob(
        endpoint="ws://a/production", action="generate_report", submitted_at="2024-01-15T10:30:00Z"
    )
    assert store.remember_job("rep-1", job)
    assert store.remember_job("rep-2", job.model_copy(update={"endpoint": "ws://b/production"}))
    again = StateStore(path)  # written at once, so a crash right after submitting keeps it
    assert list(again.jobs("ws://a/production")) == ["rep-1"]
    assert again.forget_job("rep-1")
    assert StateStore(path).jobs("ws://a/production") == {}
    assert list(StateStore(path).jobs("ws://b/production")) == ["rep-2"]
