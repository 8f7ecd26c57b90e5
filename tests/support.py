"""Helpers shared by the test suites."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll until `predicate()` is truthy and return it; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def assert_accounted(stats: dict[str, Any]) -> None:
    """The statistics invariant: every generated event is sent, failed or in flight."""
    assert stats["events_generated"] == (
        stats["events_sent_successfully"] + stats["events_failed"] + stats["events_in_flight"]
    ), stats


@contextlib.contextmanager
def serve(folder: Path, *options: str) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """`streamops serve OPTIONS` as a real process in `folder`, with no STREAMOPS_* from
    this environment; yields once it wrote its credentials file, SIGTERMs it after."""
    credentials = folder / "creds.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMOPS_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "console",
            "serve",
            *options,
            "--credentials-file",
            str(credentials),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=folder,
        env=env,
    )
    try:
        wait_for(lambda: credentials.exists() or process.poll() is not None, timeout=60)
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        yield process, credentials
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
