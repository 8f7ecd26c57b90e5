"""`health`: synchronous, `{status, timestamp, version}` as the spec shows it."""

from __future__ import annotations

from typing import Any

from backends.common.clock import iso_z
from backends.jobs.handlers import HandlerRegistry, JobContext


def register_health(registry: HandlerRegistry) -> None:
    @registry.handler("health", sync=True, estimated_duration=0.01)
    async def health(ctx: JobContext, payload: None) -> dict[str, Any]:
        resources = ctx.resources
        return {
            "status": "healthy",
            "timestamp": iso_z(resources.clock.now()),
            "version": resources.version,
        }
