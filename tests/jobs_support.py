"""Shared pieces of the jobs tests: settings, test handlers, a running server, raw frames."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel
from websockets.asyncio.client import ClientConnection

from backends.common.clock import Clock
from backends.jobs.api import JobsBackend, start_jobs
from backends.jobs.client import mint_token
from backends.jobs.handlers import HandlerRegistry, JobContext, builtin_registry
from backends.settings import Settings

SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"


def make_settings(tmp_path: Path, **jobs: Any) -> Settings:
    settings = Settings()
    values = {
        "secret": SECRET,
        "data_dir": str(tmp_path / "data"),
        "output_dir": str(tmp_path / "output"),
        "progress_interval_ms": 0,
        **jobs,
    }
    settings.jobs = settings.jobs.model_copy(update=values)
    return settings


class WaitPayload(BaseModel):
    steps: int = 5
    delay: float = 0.01
    gate: bool = False


def make_registry() -> HandlerRegistry:
    """The built-in handlers plus `wait` (steps with progress, optionally held at a gate
    until `resources.extra["gate"]` is set) and `boom` (raises)."""
    registry = builtin_registry().copy()

    @registry.handler("wait", payload=WaitPayload, estimated_duration=1.0)
    async def wait(ctx: JobContext, payload: WaitPayload) -> dict[str, Any]:
        for step in range(payload.steps):
            await ctx.progress(
                100 * step / payload.steps,
                f"step {step + 1}/{payload.steps}",
                step=f"s{step}",
                processed=step,
                total=payload.steps,
            )
            if payload.gate and step == 0:
                await ctx.resources.extra["gate"].wait()
            await asyncio.sleep(payload.delay)
        await ctx.progress(100, "done", step="end", processed=payload.steps, total=payload.steps)
        return {"steps": payload.steps, "tenant": ctx.principal.tenant_id}

    @registry.handler("boom")
    async def boom(ctx: JobContext, payload: None) -> None:
        raise RuntimeError("secret internals")

    return registry


@asynccontextmanager
async def running_jobs(
    settings: Settings, clock: Clock, retail: Any = None, registry: HandlerRegistry | None = None
) -> AsyncIterator[JobsBackend]:
    backend = await start_jobs(settings, clock, retail, registry=registry or make_registry())
    backend.server.resources.extra["gate"] = asyncio.Event()
    try:
        yield backend
    finally:
        await backend.aclose()


def token(settings: Settings, clock: Clock, tenant: str = "t1", sub: str = "u1", **kw: Any) -> str:
    return mint_token(settings.jobs, sub, tenant, now=clock.now(), **kw)


def url_with(backend: JobsBackend, tok: str) -> str:
    return f"{backend.url}?Authorization={tok}"


async def recv(ws: ClientConnection, within: float = 10.0) -> dict[str, Any]:
    return orjson.loads(await asyncio.wait_for(ws.recv(), within))


async def recv_until(
    ws: ClientConnection, predicate: Callable[[dict[str, Any]], bool], within: float = 20.0
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The first message matching `predicate`, and every message before it."""
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(within):
        while True:
            message = orjson.loads(await ws.recv())
            if predicate(message):
                return message, seen
            seen.append(message)


async def send(ws: ClientConnection, message: dict[str, Any]) -> None:
    await ws.send(orjson.dumps(message).decode())


def final_for(request_id: str) -> Callable[[dict[str, Any]], bool]:
    def match(message: dict[str, Any]) -> bool:
        body = message.get(message["type"], {})
        return message["type"] in ("result", "error") and body.get("request_id") == request_id

    return match
