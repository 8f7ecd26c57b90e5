"""Jobs of every tenant: state, subscribers, and the last progress and final message.

A job belongs to the tenant of the token that submitted it and outlives the
connection: connections come and go as subscribers, the job keeps running, and its
final message (a `result` or an `error`) is kept `result_ttl_seconds` after it
ends so a client that reconnects can still collect it. Jobs are keyed by
(tenant, request id): another tenant asking for the same id is told NOT_FOUND,
exactly as for an id that never existed. Expired jobs are purged lazily on access
and by `purge()`, which the server calls periodically.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Protocol

from backends.common.clock import Clock
from backends.jobs.models import TERMINAL_STATUSES, JobStatus


class Subscriber(Protocol):
    def deliver(self, data: bytes, *, droppable: bool = False) -> None:
        """Queue one message without blocking; droppable ones may be shed when backed up."""
        ...


@dataclass(eq=False)
class Job:
    request_id: str
    tenant_id: str
    sub: str
    action: str
    estimated_duration: float | None
    started_mono: float
    status: JobStatus = "queued"
    last_progress: bytes | None = None
    progress: dict[str, Any] | None = None
    final: bytes | None = None
    finished_mono: float | None = None
    cancel_requested: bool = False
    task: asyncio.Task[None] | None = None
    subscribers: set[Subscriber] = field(default_factory=set)

    @property
    def done(self) -> bool:
        return self.status in TERMINAL_STATUSES


class DuplicateJob(Exception):
    pass


class JobStore:
    def __init__(self, clock: Clock, result_ttl_seconds: float) -> None:
        self._clock = clock
        self._ttl = result_ttl_seconds
        self._jobs: dict[tuple[str, str], Job] = {}

    def __len__(self) -> int:
        return len(self._jobs)

    def create(
        self, tenant_id: str, sub: str, request_id: str, action: str, estimated: float | None
    ) -> Job:
        key = (tenant_id, request_id)
        existing = self.get(tenant_id, request_id)
        if existing is not None:
            raise DuplicateJob(request_id)
        job = Job(request_id, tenant_id, sub, action, estimated, self._clock.monotonic())
        self._jobs[key] = job
        return job

    def get(self, tenant_id: str, request_id: str) -> Job | None:
        job = self._jobs.get((tenant_id, request_id))
        if job is not None and self._expired(job):
            del self._jobs[(tenant_id, request_id)]
            return None
        return job

    def running(self) -> list[Job]:
        return [job for job in self._jobs.values() if not job.done]

    def _expired(self, job: Job) -> bool:
        return job.finished_mono is not None and (
            self._clock.monotonic() - job.finished_mono >= self._ttl
        )

    def purge(self) -> int:
        expired = [key for key, job in self._jobs.items() if self._expired(job)]
        for key in expired:
            del self._jobs[key]
        return len(expired)

    @staticmethod
    def publish_progress(job: Job, data: bytes, body: dict[str, Any]) -> None:
        job.last_progress = data
        job.progress = body
        for subscriber in tuple(job.subscribers):
            subscriber.deliver(data, droppable=True)

    def finish(self, job: Job, status: JobStatus, data: bytes) -> None:
        job.status = status
        job.final = data
        job.finished_mono = self._clock.monotonic()
        for subscriber in tuple(job.subscribers):
            subscriber.deliver(data)
        job.subscribers.clear()
