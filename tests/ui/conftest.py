"""Console tests run against a real embedded backend on a ManualClock.

The backend runs on its own thread and loop (as in production), so these fixtures
are synchronous and serve both async pilot tests and the synchronous snapshot
tests (`snap_compare` runs the app on a loop of its own).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from backends.common.clock import ManualClock
from backends.endpoints import Endpoints
from backends.runtime import BackendHost
from backends.settings import Settings, UISettings
from console.app import StreamopsApp


@pytest.fixture(autouse=True)
def state_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every console under test keeps its UI state (cursors, saved filters) in a temp file."""
    path = tmp_path / "state" / "state.json"
    monkeypatch.setenv("STREAMOPS_STATE_FILE", str(path))
    return path


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def backend(clock: ManualClock) -> Iterator[Endpoints]:
    host = BackendHost(Settings(), clock=clock)
    endpoints = host.start()
    try:
        yield endpoints
    finally:
        host.stop()


@pytest.fixture
def settings() -> Settings:
    """Polling faster than the default keeps waits short; much faster would keep the process
    busy, and Pilot's key presses wait (up to 1 s each) for the whole process to go idle."""
    return Settings(ui=UISettings(refresh_ms=250))


@pytest.fixture
def app(settings: Settings, backend: Endpoints, clock: ManualClock) -> StreamopsApp:
    return StreamopsApp(settings, backend, clock=clock)
