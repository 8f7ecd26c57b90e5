"""Wire encoding of websocket-jobs.md: the server's messages as bytes, requests as models.

Messages are built as plain dicts and dumped with orjson (progress is the hot path);
`models.py` holds the same shapes as pydantic models, which the tests and the
client parse with. Validation failures become the spec's `VALIDATION_ERROR` with
`field` / `expected` / `received` for the first problem and `errors` listing all.
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from backends.jobs.models import VALIDATION_ERROR, RequestMessage

M = TypeVar("M", bound=BaseModel)
_RECEIVED_MAX = 200


class JobsProtocolError(Exception):
    """A request the server answers with an `error` message (the connection lives on)."""

    def __init__(
        self,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
        self.request_id = request_id


def _received(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return text if len(text) <= _RECEIVED_MAX else text[:_RECEIVED_MAX] + "…"


def validation_error(
    exc: ValidationError, *, prefix: str = "", request_id: str | None = None
) -> JobsProtocolError:
    errors = []
    for error in exc.errors(include_url=False):
        field = ".".join(str(part) for part in (prefix, *error["loc"]) if part != "")
        message = error["msg"].removeprefix("Value error, ")
        errors.append({"field": field or prefix or "payload", "expected": message})
        if error["type"] != "missing":
            errors[-1]["received"] = _received(error.get("input"))
    first = errors[0]
    details: dict[str, Any] = {**first, "errors": errors} if len(errors) > 1 else dict(first)
    text = f"Invalid {first['field']}: {first['expected']}"
    return JobsProtocolError(VALIDATION_ERROR, text, details, request_id)


def parse_request(raw: str | bytes) -> RequestMessage:
    """A request message, or a `JobsProtocolError` carrying whatever id could be read."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise JobsProtocolError(
            VALIDATION_ERROR,
            "Message is not valid JSON",
            {"field": "message", "expected": "a JSON object", "received": str(exc)[:120]},
        ) from None
    if not isinstance(data, dict):
        raise JobsProtocolError(
            VALIDATION_ERROR,
            "Message must be a JSON object",
            {"field": "message", "expected": "a JSON object", "received": type(data).__name__},
        )
    request_id = data.get("id") if isinstance(data.get("id"), str) else None
    if "id" not in data and data.get("action") in ("subscribe", "cancel"):
        target = data.get("payload")
        if isinstance(target, dict) and isinstance(target.get("request_id"), str):
            data = {**data, "id": target["request_id"]}
    try:
        return RequestMessage.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, request_id=request_id) from None


def validate_payload(model: type[BaseModel], payload: dict[str, Any], request_id: str) -> BaseModel:
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise validation_error(exc, prefix="payload", request_id=request_id) from None


def dumps(message: dict[str, Any]) -> bytes:
    return orjson.dumps(message, option=orjson.OPT_SERIALIZE_NUMPY)


def response_success(
    request_id: str, data: Any, processing_time: float, **metadata: Any
) -> dict[str, Any]:
    return {
        "type": "response",
        "response": {
            "request_id": request_id,
            "status": "success",
            "data": data,
            "metadata": {"processing_time": round(processing_time, 6), **metadata},
        },
    }


def response_queued(request_id: str, estimated_duration: float | None) -> dict[str, Any]:
    return {
        "type": "response",
        "response": {
            "request_id": request_id,
            "status": "queued",
            "message": "Request queued for processing",
            "estimated_duration": estimated_duration,
        },
    }


def progress(
    request_id: str,
    percentage: float,
    message: str,
    timestamp: str,
    current_step: str | None = None,
    records_processed: int | None = None,
    records_total: int | None = None,
) -> dict[str, Any]:
    return {
        "type": "progress",
        "progress": {
            "request_id": request_id,
            "progress": round(percentage, 2),
            "message": message,
            "metadata": {
                "current_step": current_step,
                "records_processed": records_processed,
                "records_total": records_total,
            },
            "timestamp": timestamp,
        },
    }


def result(
    request_id: str, success: bool, data: Any, total_processing_time: float, handler: str
) -> dict[str, Any]:
    return {
        "type": "result",
        "result": {
            "request_id": request_id,
            "success": success,
            "data": data,
            "metadata": {
                "total_processing_time": round(total_processing_time, 6),
                "handler": handler,
            },
        },
    }


def error(
    request_id: str | None, code: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"request_id": request_id, "code": code, "message": message, "details": details},
    }


def error_from(exc: JobsProtocolError, request_id: str | None = None) -> dict[str, Any]:
    return error(exc.request_id or request_id, exc.code, exc.message, exc.details)
