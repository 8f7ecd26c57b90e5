"""The handler registry: adding an action is one decorated function.

    @registry.handler("generate_report", payload=GenerateReportPayload, estimated_duration=120)
    async def generate_report(ctx: JobContext, payload: GenerateReportPayload) -> dict: ...

A `sync` handler answers with a `response` (`status: success`); any other is queued
(`status: queued`, then `progress` and a final `result`). Handlers report progress
through `ctx.progress(...)`, which batches updates to one per
`progress_interval_ms` (a new step, 0 % and 100 % always pass). `permission`
names the token permission a caller needs. `builtin_registry()` holds `health`,
`generate_report` and `process_data`; servers take a registry, so tests and the
bench add their own actions to a copy without touching the built-in one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from backends.common.clock import Clock, iso_z
from backends.jobs import protocol
from backends.jobs.auth import Principal
from backends.jobs.store import Job, JobStore
from backends.settings import JobsSettings

if TYPE_CHECKING:
    from backends.jobs.files import FileRegistry
    from backends.jobs.sources import EventSource

HandlerFunc = Callable[["JobContext", Any], Awaitable[Any]]
RESERVED_ACTIONS = frozenset({"subscribe", "cancel"})


@dataclass(frozen=True)
class HandlerSpec:
    name: str
    func: HandlerFunc
    payload: type[BaseModel] | None
    sync: bool
    estimated_duration: float | None
    permission: str | None


class HandlerRegistry:
    def __init__(self) -> None:
        self._handlers: dict[str, HandlerSpec] = {}

    def handler(
        self,
        name: str,
        *,
        payload: type[BaseModel] | None = None,
        sync: bool = False,
        estimated_duration: float | None = None,
        permission: str | None = None,
    ) -> Callable[[HandlerFunc], HandlerFunc]:
        if name in RESERVED_ACTIONS:
            raise ValueError(f"{name!r} is a reserved action")

        def register(func: HandlerFunc) -> HandlerFunc:
            self._handlers[name] = HandlerSpec(
                name, func, payload, sync, estimated_duration, permission
            )
            return func

        return register

    def get(self, name: str) -> HandlerSpec | None:
        return self._handlers.get(name)

    def names(self) -> list[str]:
        return sorted(self._handlers)

    def copy(self) -> HandlerRegistry:
        clone = HandlerRegistry()
        clone._handlers = dict(self._handlers)
        return clone


@dataclass
class JobResources:
    """What handlers may use: settings, clock, folders, the event source, downloads."""

    settings: JobsSettings
    clock: Clock
    data_dir: Path
    output_dir: Path
    events: EventSource
    files: FileRegistry
    version: str = "0.1.0"
    extra: dict[str, Any] = field(default_factory=dict)


class JobContext:
    def __init__(
        self,
        request_id: str,
        principal: Principal,
        resources: JobResources,
        job: Job | None = None,
        store: JobStore | None = None,
    ) -> None:
        self.request_id = request_id
        self.principal = principal
        self.resources = resources
        self.clock = resources.clock
        self._job = job
        self._store = store
        self._interval = resources.settings.progress_interval_ms / 1000
        self._last_sent = float("-inf")
        self._last_step: str | None = None

    async def progress(
        self,
        percentage: float,
        message: str,
        *,
        step: str | None = None,
        processed: int | None = None,
        total: int | None = None,
    ) -> None:
        """Publish a progress update (batched); a no-op for sync handlers."""
        job, store = self._job, self._store
        if job is None or store is None:
            return
        percentage = min(max(percentage, 0.0), 100.0)
        now = self.clock.monotonic()
        edge = step != self._last_step or percentage in (0.0, 100.0)
        if not edge and now - self._last_sent < self._interval:
            return
        self._last_sent, self._last_step = now, step
        message_dict = protocol.progress(
            self.request_id,
            percentage,
            message,
            iso_z(self.clock.now()),
            step,
            processed,
            total,
        )
        store.publish_progress(job, protocol.dumps(message_dict), message_dict["progress"])


def builtin_registry() -> HandlerRegistry:
    from backends.jobs.handlers.health import register_health
    from backends.jobs.handlers.pipelines import register_process_data
    from backends.jobs.handlers.reports import register_generate_report

    registry = HandlerRegistry()
    register_health(registry)
    register_generate_report(registry)
    register_process_data(registry)
    return registry
