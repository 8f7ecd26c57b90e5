"""Waiting and recording helpers shared by the pilot and snapshot tests."""

from __future__ import annotations

import time
from collections.abc import Callable

from textual.message import Message
from textual.notifications import Notify
from textual.pilot import Pilot
from textual.widgets import Input

from console.widgets.header import BackendDot


async def wait_until(
    pilot: Pilot[None], condition: Callable[[], bool], what: str, seconds: float = 10.0
) -> None:
    """Let the app run until `condition` holds; the backend is real, so no fixed sleeps."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


async def wait_jobs_dot(pilot: Pilot[None]) -> None:
    """The Jobs tab connects at start; its header dot turns green once it has."""
    dot = pilot.app.query_one("#dot-jobs", BackendDot)
    await wait_until(pilot, lambda: dot.state == "healthy", "the jobs connection")


def stop_blinking(pilot: Pilot[None]) -> None:
    """A blinking cursor would make snapshots depend on timing."""
    for field in pilot.app.query(Input):
        field.cursor_blink = False


class Recorder:
    """A `message_hook` that keeps every message, to assert on what the app posted."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def __call__(self, message: Message) -> None:
        self.messages.append(message)

    def of(self, kind: type[Message]) -> list[Message]:
        return [m for m in self.messages if isinstance(m, kind)]

    def toasts(self) -> list[str]:
        """Every toast as `title: message`, in order."""
        return [
            f"{m.notification.title}: {m.notification.message}"
            for m in self.messages
            if isinstance(m, Notify)
        ]
