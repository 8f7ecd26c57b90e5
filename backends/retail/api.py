"""HTTP adapter of the retail streaming spec over `RetailService` (FastAPI).

Thin by design: parse, rate-limit, call the service, return its model. Every error
leaves as the spec's `{"detail": "..."}` — request validation included, which
FastAPI would otherwise answer with 422 and a list; the spec says 400.

One endpoint beyond the spec (additive): `GET /api/stream/sink/events?after=SEQ&limit=N`
pages through what the memory sink holds (backends/retail/sinklog.py) as NDJSON, one
envelope per line, oldest first, events numbered from 1. `after` (default 0) is the
last sequence number already read, `limit` 1..10000 (default 1000). Headers:
`X-Sink-First-Seq` (number of the first line), `X-Sink-Oldest-Seq` (oldest held: a
reader whose `after` is older has lost events to retention), `X-Sink-Latest-Seq`
(newest appended). The Validation tab reads the `memory` source this way.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from backends.common.clock import Clock
from backends.common.errors import RateLimited, ServiceError
from backends.common.ratelimit import SlidingWindowLimiter
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
from backends.retail.service import RetailService

RATE_LIMITS: dict[str, tuple[int, float]] = {
    "stream_start": (5, 60.0),
    "stream_test": (10, 60.0),
    "disruption_create": (20, 60.0),
}


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        location = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query"))
        message = error.get("msg", "invalid value")
        parts.append(f"{location}: {message}" if location else message)
    return "; ".join(parts) or "Invalid request"


def _rate_limit(name: str, limiters: dict[str, SlidingWindowLimiter]) -> Any:
    limiter = limiters.get(name)

    async def check(request: Request) -> None:
        if limiter is None:
            return
        client = request.client.host if request.client else "unknown"
        retry_after = limiter.acquire(client)
        if retry_after:
            raise RateLimited(retry_after=retry_after)

    return Depends(check)


def create_app(service: RetailService, *, clock: Clock, rate_limits: bool = True) -> FastAPI:
    app = FastAPI(
        title="streamops retail streaming API",
        version="1.0",
        description="Real-time retail event streaming with supply-chain disruption injection.",
    )
    limiters = (
        {name: SlidingWindowLimiter(n, window, clock) for name, (n, window) in RATE_LIMITS.items()}
        if rate_limits
        else {}
    )

    @app.exception_handler(ServiceError)
    async def service_error(_: Request, exc: ServiceError) -> JSONResponse:
        headers = {}
        if isinstance(exc, RateLimited):
            headers["Retry-After"] = str(max(int(exc.retry_after + 0.999), 1))
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_message(exc)}, status_code=400)

    api = APIRouter(prefix="/api")

    @api.post(
        "/stream/start",
        response_model=StartResponse,
        dependencies=[_rate_limit("stream_start", limiters)],
    )
    async def start(request: Annotated[StartRequest | None, Body()] = None) -> StartResponse:
        return await service.start(request or StartRequest())

    @api.post("/stream/stop", response_model=StopResponse)
    async def stop() -> StopResponse:
        return await service.stop()

    @api.get("/stream/status", response_model=StatusResponse)
    async def status() -> StatusResponse:
        return service.status()

    @api.get("/stream/statistics", response_model=StatisticsResponse)
    async def statistics() -> StatisticsResponse:
        return service.statistics()

    @api.get("/stream/events/recent", response_model=RecentEventsResponse)
    async def recent(limit: Annotated[int, Query(ge=1, le=100)] = 100) -> RecentEventsResponse:
        return service.recent_events(limit)

    @api.get("/stream/sink/events", response_class=Response)
    async def sink_events(
        after: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> Response:
        page = service.sink_events(after, limit)
        dumps = orjson.dumps
        body = b"".join(dumps(event) + b"\n" for event in page.events)
        headers = {
            "X-Sink-First-Seq": str(page.first_seq),
            "X-Sink-Oldest-Seq": str(page.oldest_seq),
            "X-Sink-Latest-Seq": str(page.latest_seq),
        }
        return Response(body, media_type="application/x-ndjson", headers=headers)

    @api.get("/stream/health", response_model=HealthResponse)
    async def health() -> HealthResponse:
        return service.health()

    @api.get("/stream/config", response_model=ConfigResponse)
    async def get_config() -> ConfigResponse:
        return service.get_config()

    @api.put("/stream/config", response_model=SuccessResponse)
    async def put_config(update: ConfigUpdate) -> SuccessResponse:
        return service.update_config(update)

    @api.post(
        "/stream/test",
        response_model=SinkTestResponse,
        dependencies=[_rate_limit("stream_test", limiters)],
    )
    async def test_sink() -> SinkTestResponse:
        return await service.test_sink()

    @api.get("/stream/event-types", response_model=EventTypesResponse)
    async def event_types() -> EventTypesResponse:
        return service.event_types()

    @api.post(
        "/disruption/create",
        response_model=DisruptionCreated,
        dependencies=[_rate_limit("disruption_create", limiters)],
    )
    async def create_disruption(request: DisruptionCreate) -> DisruptionCreated:
        return service.create_disruption(request)

    @api.get("/disruption/list", response_model=DisruptionList)
    async def list_disruptions() -> DisruptionList:
        return service.list_disruptions()

    @api.post("/disruption/clear-all", response_model=SuccessResponse)
    async def clear_disruptions() -> SuccessResponse:
        return service.clear_disruptions()

    @api.delete("/disruption/{disruption_id}", response_model=OperationResponse)
    async def cancel_disruption(disruption_id: str) -> OperationResponse:
        return service.cancel_disruption(disruption_id)

    app.include_router(api)
    return app
