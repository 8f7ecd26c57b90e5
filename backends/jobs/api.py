"""The runtime hook: `start_jobs` builds and starts the jobs server on the running loop.

Embedded defaults: the event source is the capture tapped on the embedded
`RetailService` (unless Kafka/Redis is the configured retail sink), and when
`data_dir` / `output_dir` are unset the backend makes both under one temporary
folder and removes it on close. With an HMAC algorithm and no `jobs.secret` the
runtime generates one; here a missing secret is an error (tests pass their own).
The demo token (for `demo_sub` / `demo_tenant`) is minted from that secret.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

from backends.common.clock import Clock
from backends.jobs.client import mint_token
from backends.jobs.files import FileRegistry
from backends.jobs.handlers import HandlerRegistry, JobResources, builtin_registry
from backends.jobs.server import JobsServer
from backends.jobs.sources import EventCapture, select_source
from backends.settings import JobsSettings, Settings

if TYPE_CHECKING:
    from backends.retail.service import RetailService


def _version() -> str:
    try:
        return version("streamops")
    except PackageNotFoundError:
        return "0.0.0"


@dataclass
class JobsBackend:
    server: JobsServer
    capture: EventCapture
    url: str
    demo_token: str | None
    secret: str | None
    issuer: str | None
    _cleanup: list[Callable[[], None]] = field(default_factory=list)

    async def aclose(self) -> None:
        await self.server.aclose()
        for cleanup in reversed(self._cleanup):
            cleanup()
        self._cleanup.clear()


def _folders(jobs: JobsSettings) -> tuple[Path, Path, Path | None]:
    """The data and output folders (made if missing), and the scratch folder made for them."""
    scratch = None
    if jobs.data_dir is None or jobs.output_dir is None:
        scratch = Path(tempfile.mkdtemp(prefix="streamops-jobs-"))
    data_dir = Path(jobs.data_dir) if jobs.data_dir else Path(str(scratch)) / "data"
    output_dir = Path(jobs.output_dir) if jobs.output_dir else Path(str(scratch)) / "output"
    data_dir.mkdir(parents=True, exist_ok=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    return data_dir, output_dir, scratch


async def start_jobs(
    settings: Settings,
    clock: Clock,
    retail_service: RetailService | None = None,
    *,
    registry: HandlerRegistry | None = None,
) -> JobsBackend:
    jobs = settings.jobs
    cleanup: list[Callable[[], None]] = []
    capture = EventCapture(jobs.capture_limit)
    if retail_service is not None and jobs.capture_limit:
        cleanup.append(retail_service.add_tap(capture))
    data_dir, output_dir, scratch = await asyncio.to_thread(_folders, jobs)
    if scratch is not None:
        cleanup.append(lambda: shutil.rmtree(scratch, ignore_errors=True))
    resources = JobResources(
        settings=jobs,
        clock=clock,
        data_dir=data_dir,
        output_dir=output_dir,
        events=select_source(settings, capture),
        files=FileRegistry(clock),
        version=_version(),
        extra={"stream_ids": {settings.kafka.topic, settings.redis.retail_stream}},
    )
    try:
        server = JobsServer(jobs, resources, registry or builtin_registry(), clock=clock)
        url = await server.start()
    except BaseException:
        for step in reversed(cleanup):
            step()
        raise
    demo = None
    if jobs.secret and any(a.startswith("HS") for a in jobs.algorithms):
        demo = mint_token(
            jobs,
            jobs.demo_sub,
            jobs.demo_tenant,
            permissions=list(jobs.default_permissions),
            lifetime_seconds=jobs.demo_token_lifetime_seconds,
            now=clock.now(),
        )
    return JobsBackend(server, capture, url, demo, jobs.secret, jobs.issuer, cleanup)
