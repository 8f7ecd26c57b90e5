"""BackendHost: the embedded services on a thread and event loop of their own.

The console is only ever a client: it reaches embedded services over loopback
sockets exactly as it reaches remote ones, and load on a backend cannot stall the
UI's loop. A service whose section names a URL is remote and is not started here.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Collection, Coroutine
from typing import Any, TypeVar
from urllib.parse import urlsplit

from backends.common.clock import Clock, SystemClock
from backends.common.server import RunningServer, start_server
from backends.endpoints import SERVICES, Endpoints
from backends.retail.api import create_app as create_retail_app
from backends.retail.service import RetailService
from backends.settings import Settings

T = TypeVar("T")

WELL_KNOWN_PORTS: dict[str, int] = {"retail": 8000}


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
        self.settings = settings
        self.clock = clock or SystemClock()
        self._well_known = well_known_ports
        self._only = set(only) if only else set(SERVICES)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: list[RunningServer] = []
        self.retail: RetailService | None = None
        self.endpoints = Endpoints(mode="embedded")

    def _port(self, service: str, configured: int) -> int:
        if configured or not self._well_known:
            return configured
        return WELL_KNOWN_PORTS[service]

    def start(self, timeout: float = 30.0) -> Endpoints:
        """Start the embedded services; returns once every one accepts connections."""
        retail = self.settings.retail
        if retail.url:
            self.endpoints = Endpoints(mode=urlsplit(retail.url).netloc, retail=retail.url)
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

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = 30.0) -> T:
        """Run a coroutine on the backend loop from another thread and wait for it."""
        if self._loop is None:
            coro.close()
            raise RuntimeError("BackendHost is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _start_all(self) -> Endpoints:
        endpoints = Endpoints(mode="embedded")
        if "retail" in self._only:
            retail = self.settings.retail
            self.retail = RetailService(self.settings, clock=self.clock)
            app = create_retail_app(self.retail, clock=self.clock)
            server = await start_server(app, retail.host, self._port("retail", retail.port))
            self._servers.append(server)
            endpoints.retail = f"http://{server.host}:{server.port}/api"
        return endpoints

    async def _stop_all(self) -> None:
        if self.retail is not None:
            await self.retail.aclose()
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
