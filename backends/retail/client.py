"""Typed async client of the retail streaming API (`api.py` or any service following the spec).

The console and the CLI use it for embedded and remote backends alike. Errors come
back as `RetailApiError` carrying the server's status code and `detail`, so the UI
can show "429 Rate limit exceeded. Try again later." verbatim.
"""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from backends.common.http_client import JsonApiClient
from backends.retail.models import (
    ConfigResponse,
    ConfigUpdate,
    DisruptionCreate,
    DisruptionCreated,
    DisruptionList,
    EventTypesResponse,
    HealthResponse,
    OperationResponse,
    RecentEventsResponse,
    SinkTestResponse,
    StartRequest,
    StartResponse,
    StatisticsResponse,
    StatusResponse,
    StopResponse,
    SuccessResponse,
)

M = TypeVar("M", bound=BaseModel)


class RetailApiError(Exception):
    """A non-2xx answer, or no answer at all (`status_code` 0)."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(f"{status_code} {detail}" if status_code else detail)
        self.status_code = status_code
        self.detail = detail


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text or response.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):  # FastAPI-style validation errors from another server
        return "; ".join(str(item.get("msg", item)) for item in detail)
    return str(detail) if detail is not None else response.reason_phrase


class RetailClient(JsonApiClient):
    def _no_answer(self, code: str, message: str) -> Exception:
        return RetailApiError(0, message)

    async def _call(
        self,
        method: str,
        path: str,
        model: type[M],
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> M:
        response = await self._send(method, path, json=json, params=params)
        if response.is_error:
            raise RetailApiError(response.status_code, _detail(response))
        return model.model_validate(response.json())

    async def start(self, request: StartRequest | None = None, **fields: Any) -> StartResponse:
        body = (request or StartRequest(**fields)).model_dump(exclude_unset=True)
        return await self._call("POST", "/stream/start", StartResponse, json=body)

    async def stop(self) -> StopResponse:
        return await self._call("POST", "/stream/stop", StopResponse)

    async def status(self) -> StatusResponse:
        return await self._call("GET", "/stream/status", StatusResponse)

    async def statistics(self) -> StatisticsResponse:
        return await self._call("GET", "/stream/statistics", StatisticsResponse)

    async def recent_events(self, limit: int = 100) -> RecentEventsResponse:
        return await self._call(
            "GET", "/stream/events/recent", RecentEventsResponse, params={"limit": limit}
        )

    async def health(self) -> HealthResponse:
        return await self._call("GET", "/stream/health", HealthResponse)

    async def get_config(self) -> ConfigResponse:
        return await self._call("GET", "/stream/config", ConfigResponse)

    async def update_config(
        self, update: ConfigUpdate | None = None, **fields: Any
    ) -> SuccessResponse:
        body = (update or ConfigUpdate(**fields)).model_dump(exclude_unset=True)
        return await self._call("PUT", "/stream/config", SuccessResponse, json=body)

    async def test_connection(self) -> SinkTestResponse:
        return await self._call("POST", "/stream/test", SinkTestResponse)

    async def event_types(self) -> EventTypesResponse:
        return await self._call("GET", "/stream/event-types", EventTypesResponse)

    async def create_disruption(
        self, request: DisruptionCreate | None = None, **fields: Any
    ) -> DisruptionCreated:
        body = (request or DisruptionCreate(**fields)).model_dump(exclude_none=True)
        return await self._call("POST", "/disruption/create", DisruptionCreated, json=body)

    async def list_disruptions(self) -> DisruptionList:
        return await self._call("GET", "/disruption/list", DisruptionList)

    async def cancel_disruption(self, disruption_id: str) -> OperationResponse:
        return await self._call("DELETE", f"/disruption/{disruption_id}", OperationResponse)

    async def clear_disruptions(self) -> SuccessResponse:
        return await self._call("POST", "/disruption/clear-all", SuccessResponse)
