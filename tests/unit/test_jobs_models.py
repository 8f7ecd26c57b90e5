"""Payload validation and the protocol's parse errors (the spec's VALIDATION_ERROR shape)."""

from __future__ import annotations

from typing import Any

import pytest

from backends.jobs import protocol
from backends.jobs.models import (
    GenerateReportPayload,
    ProcessDataPayload,
    ProgressMessage,
    ResponseMessage,
    ResultMessage,
)
from backends.jobs.protocol import JobsProtocolError

REPORT = {
    "start_date": "2024-01-01",
    "end_date": "2024-01-31",
    "format": "pdf",
    "report_type": "monthly",
}


def report_error(**changes: Any) -> JobsProtocolError:
    payload = {**REPORT, **changes}
    with pytest.raises(JobsProtocolError) as caught:
        protocol.validate_payload(GenerateReportPayload, payload, "r1")
    assert caught.value.code == "VALIDATION_ERROR"
    assert caught.value.request_id == "r1"
    return caught.value


def test_spec_report_payload_is_valid() -> None:
    payload = GenerateReportPayload.model_validate(
        {**REPORT, "include_charts": True, "filters": {"category": "sales"}}
    )
    assert payload.include_charts and payload.filters.category == "sales"


def test_date_format_error_has_field_expected_received() -> None:
    error = report_error(start_date="01/20/2024")
    assert error.details == {
        "field": "payload.start_date",
        "expected": "expected YYYY-MM-DD",
        "received": "01/20/2024",
    }


def test_impossible_date_and_reversed_range() -> None:
    assert report_error(end_date="2024-02-30").details["field"] == "payload.end_date"
    error = report_error(start_date="2024-02-01", end_date="2024-01-01")
    assert "end_date must not be before start_date" in error.message


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"format": "docx"}, "payload.format"),
        ({"report_type": "weekly"}, "payload.report_type"),
        ({"filters": {"region": "north-america"}}, "payload.filters.region"),
        ({"filters": {"event_type": "nope"}}, "payload.filters.event_type"),
        ({"start_date": None}, "payload.start_date"),
    ],
)
def test_report_fields(changes: dict[str, Any], field: str) -> None:
    assert report_error(**changes).details["field"] == field


def test_missing_field_lists_every_problem() -> None:
    with pytest.raises(JobsProtocolError) as caught:
        protocol.validate_payload(GenerateReportPayload, {}, "r")
    details = caught.value.details
    assert details is not None
    fields = {e["field"] for e in details["errors"]}
    assert fields == {f"payload.{name}" for name in REPORT}


def test_process_data_needs_the_source_field_of_its_type() -> None:
    ok = ProcessDataPayload.model_validate(
        {
            "pipeline": "classification",
            "data_source": {"type": "file", "path": "/data/input.csv"},
            "output": {"format": "json"},
            "options": {"confidence_threshold": 0.8, "max_iterations": 100},
        }
    )
    assert ok.options.max_iterations == 100
    with pytest.raises(JobsProtocolError) as caught:
        protocol.validate_payload(
            ProcessDataPayload,
            {"pipeline": "regression", "data_source": {"type": "query"}, "output": {}},
            "p",
        )
    assert "data_source.query is required" in caught.value.message


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("{not json", "a JSON object"),
        ("[1, 2]", "a JSON object"),
        ('{"action": "health"}', "Field required"),
        ('{"id": 5, "action": "health"}', "Input should be a valid string"),
    ],
)
def test_parse_errors(raw: str, expected: str) -> None:
    with pytest.raises(JobsProtocolError) as caught:
        protocol.parse_request(raw)
    assert caught.value.code == "VALIDATION_ERROR"
    assert expected in caught.value.details["expected"]


def test_subscribe_without_id_takes_the_target_id() -> None:
    request = protocol.parse_request('{"action": "subscribe", "payload": {"request_id": "x1"}}')
    assert (request.id, request.action) == ("x1", "subscribe")


def test_built_messages_parse_as_the_spec_models() -> None:
    ResponseMessage.model_validate(protocol.response_success("a", {"k": 1}, 0.2))
    queued = ResponseMessage.model_validate(protocol.response_queued("a", 120))
    assert queued.response.status == "queued"
    progress = ProgressMessage.model_validate(
        protocol.progress("a", 45.5, "batch 3/7", "2024-01-20T10:30:45Z", "data_processing", 1, 2)
    )
    assert progress.progress.metadata.records_total == 2
    result = ResultMessage.model_validate(protocol.result("a", True, {}, 1.5, "generate_report"))
    assert result.result.metadata == {"total_processing_time": 1.5, "handler": "generate_report"}
