"""BackendHost: the embedded services on a thread and event loop of their own.

The console is only ever a client: it reaches embedded services over loopback
sockets exactly as it reaches remote ones, and load on a backend cannot stall the
UI's loop. A service whose section names a URL is remote and is not started here.
When no admin key is configured for the export API, the host makes one up (so
`streamops serve` can hand it out) rather than leaving the admin routes disabled.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Awaitable, Callable, Collection, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from backends.common.clock import Clock, SystemClock
from backends.common.server import RunningServer, start_server
from backends.endpoints import SERVICES, Endpoints, ExportCredentials
from backends.retail.api import create_app as create_retail_app
from backends.retail.service import RetailService
from backends.settings import Settings

if TYPE_CHECKING:
    from backends.export.service import ExportService
    from backends.jobs.api import JobsBackend
    from backends.realtime.api import RealtimeBackend

T = TypeVar("T")

WELL_KNOWN_PORTS: dict[str, int] = {"retail": 8000, "export": 8080, "realtime": 5000, "jobs": 8765}


class BackendHost:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        well_known_ports: bool = False,
        only: Collection[str] | None = None,
    ) -> None:
        unknown = set(only or ()) - set(SERVICES)
        if unknown:
            raise ValueError(f"unknown service(s): {', '.join(sorted(unknown))}")
        self.settings = settings.model_copy(deep=True)
        if self.settings.export.admin_key is None:
            self.settings.export.admin_key = secrets.token_urlsafe(24)
        jobs = self.settings.jobs
        if jobs.secret is None and any(a.startswith("HS") for a in jobs.algorithms):
            jobs.secret = secrets.token_urlsafe(48)
        self.clock = clock or SystemClock()
        self._well_known = well_known_ports
        self._only = set(only) if only else set(SERVICES)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: list[RunningServer] = []
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self.retail: RetailService | None = None
        self.export: ExportService | None = None
        self.jobs: JobsBackend | None = None
        self.realtime: RealtimeBackend | None = None
        self.endpoints = Endpoints(mode="embedded")

    def _remote_url(self, service: str) -> str | None:
        return getattr(self.settings, service).url

    def _embedded(self, service: str) -> bool:
        return service in self._only and self._remote_url(service) is None

    def _port(self, service: str, configured: int) -> int:
        if configured or not self._well_known:
            return configured
        return WELL_KNOWN_PORTS[service]

    def start(self, timeout: float = 30.0) -> Endpoints:
        """Start the embedded services; returns once every one accepts connections."""
        if not any(self._embedded(service) for service in SERVICES):
            self.endpoints = self._remote_endpoints()
            return self.endpoints
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="streamops-backends", daemon=True
        )
        self._thread.start()
        try:
            self.endpoints = self.call(self._start_all(), timeout=timeout)
        except BaseException:
            self.stop()
            raise
        return self.endpoints

    def _remote_endpoints(self) -> Endpoints:
        """Where the services configured with a URL are; the mode names the first host."""
        settings = self.settings
        urls = [url for url in (self._remote_url(service) for service in SERVICES) if url]
        endpoints = Endpoints(
            mode="embedded" if len(urls) < len(SERVICES) else urlsplit(urls[0]).netloc,
            retail=settings.retail.url,
            export=settings.export.url,
            realtime=settings.realtime.url,
            realtime_session_id=(
                settings.realtime.demo_session_id if settings.realtime.url else None
            ),
            jobs=settings.jobs.url,
            jobs_token=settings.jobs.token if settings.jobs.url else None,
            jobs_issuer=settings.jobs.issuer if settings.jobs.url else None,
        )
        export = settings.export
        if export.url and export.api_key_id and export.api_key_secret:
            endpoints.export_credentials = ExportCredentials(
                api_key_id=export.api_key_id, api_key_secret=export.api_key_secret
            )
        return endpoints

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = 30.0) -> T:
        """Run a coroutine on the backend loop from another thread and wait for it."""
        if self._loop is None:
            coro.close()
            raise RuntimeError("BackendHost is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _start_all(self) -> Endpoints:
        endpoints = self._remote_endpoints()
        settings = self.settings
        if self._embedded("retail"):
            self.retail = RetailService(settings, clock=self.clock)
            app = create_retail_app(self.retail, clock=self.clock)
            endpoints.retail = await self._serve("retail", app, settings.retail) + "/api"
        if self._embedded("export"):
            from backends.export.api import start_export

            backend = await start_export(settings, self.clock)
            self._closers.append(backend.aclose)
            self.export = backend.service
            endpoints.export = await self._serve("export", backend.app, settings.export) + "/api"
            endpoints.export_credentials = backend.credentials
        if self._embedded("realtime"):
            from backends.realtime.api import start_realtime

            realtime = self.realtime = await start_realtime(settings, self.clock)
            self._closers.append(realtime.aclose)
            endpoints.realtime = await self._serve("realtime", realtime.app, settings.realtime)
            endpoints.realtime_session_id = realtime.demo_session_id
        if self._embedded("jobs"):
            from backends.jobs.api import start_jobs

            jobs_settings = settings.model_copy(deep=True)
            jobs_settings.jobs.port = self._port("jobs", settings.jobs.port)
            self.jobs = await start_jobs(jobs_settings, self.clock, self.retail)
            self._closers.append(self.jobs.aclose)
            endpoints.jobs = self.jobs.url
            endpoints.jobs_token = self.jobs.demo_token
            endpoints.jobs_issuer = self.jobs.issuer
        return endpoints

    async def _serve(self, service: str, app: Any, section: Any) -> str:
        server = await start_server(app, section.host, self._port(service, section.port))
        self._servers.append(server)
        return f"http://{server.host}:{server.port}"

    async def _stop_all(self) -> None:
        if self.retail is not None:
            await self.retail.aclose()
        for close in reversed(self._closers):
            await close()
        self._closers.clear()
        for server in reversed(self._servers):
            await server.stop()
        self._servers.clear()

    def stop(self, timeout: float = 10.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            if loop.is_running():
                self.call(self._stop_all(), timeout=timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
            loop.close()
            self._loop = self._thread = None

    def __enter__(self) -> BackendHost:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
