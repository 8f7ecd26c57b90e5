"""What every tab shares: one polling worker, guarded actions, outcome toasts, palette commands.

Tabs get their client and settings injected rather than reaching into the app,
so a tab can be mounted in a test app and so that embedded and remote backends
look identical to it. All network I/O happens in workers; results come back as
messages and are applied on the UI's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ClassVar

from textual import on, work
from textual.containers import Container
from textual.message import Message
from textual.notifications import SeverityLevel
from textual.widget import Widget
from textual.widgets import Input
from textual.worker import Worker, WorkerState

from backends.common.clock import Clock
from backends.retail.client import RetailApiError, RetailClient
from backends.settings import UISettings


@dataclass(frozen=True)
class Outcome:
    """What a completed backend call says to the user; `ok=False` for answers like a failed test."""

    message: str
    ok: bool = True


@dataclass(frozen=True)
class PaletteCommand:
    """One entry of the command palette; tabs list theirs so the palette follows the keymap."""

    name: str
    help: str
    callback: Callable[[], object]


def worker_error(event: Worker.StateChanged) -> BaseException | None:
    """The root cause of a failed worker (the first of nested exception groups), else None."""
    if event.state is not WorkerState.ERROR:
        return None
    error = event.worker.error
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


class TabContent(Container):
    """The body of one numbered tab, as the shell (help, palette, number keys) sees it."""

    HELP: ClassVar[str] = ""
    """Markdown shown by `?` when nothing more specific is focused."""
    WIDGET_HELP: ClassVar[dict[str, str]] = {}
    """Markdown shown by `?` for a focused widget, by widget id."""

    def commands(self) -> list[PaletteCommand]:
        return []

    def toast(
        self, message: str, *, title: str = "", severity: SeverityLevel = "information"
    ) -> None:
        """`notify` without markup: server details like `[101, 102]` must show verbatim."""
        self.notify(message, title=title, severity=severity, markup=False)

    def toast_worker_error(self, event: Worker.StateChanged) -> BaseException | None:
        """Toast the root cause of a failed worker (a bug or an unexpected answer) and return it.

        Returns None when the worker did not fail, so handlers read `if error is None: return`.
        """
        error = worker_error(event)
        if error is not None:
            self.toast(
                f"{type(error).__name__}: {error}", title="Unexpected error", severity="error"
            )
        return error

    def help_markdown(self, focused: Widget | None) -> str:
        """Help for the focused widget when it has some, else for the whole tab."""
        if focused is not None and focused.id in self.WIDGET_HELP:
            return f"{self.WIDGET_HELP[focused.id]}\n\n{self.HELP}"
        return self.HELP

    def focus_primary(self) -> None:
        """Focus the widget whose keys matter most, so single-key actions work right away."""
        for widget in self.query("*"):
            if widget.focusable:
                widget.focus()
                return

    def action_focus_primary(self) -> None:
        self.focus_primary()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Offer "esc leave field" only inside a form field, where letters are typed, not bound."""
        if action == "focus_primary":
            return isinstance(self.screen.focused, Input)
        return True


class ConsoleTab(TabContent):
    """Base of the tabs that talk to a backend."""

    class ActionCompleted(Message, bubble=False):
        def __init__(self, action: str, outcome: Outcome) -> None:
            super().__init__()
            self.action = action
            self.outcome = outcome

    class PollFailed(Message, bubble=False):
        def __init__(self, error: RetailApiError) -> None:
            super().__init__()
            self.error = error

    class ActionFailed(Message, bubble=False):
        def __init__(self, action: str, error: RetailApiError) -> None:
            super().__init__()
            self.action = action
            self.error = error

    def __init__(self, *, retail: RetailClient, ui: UISettings, clock: Clock, id: str) -> None:
        super().__init__(id=id)
        self.retail = retail
        self.ui = ui
        self.clock = clock
        self._wake = asyncio.Event()
        self._pending: set[str] = set()

    def on_mount(self) -> None:
        self.poll_loop()

    # -- polling -------------------------------------------------------------

    async def poll_once(self) -> None:
        """Fetch this tab's state and post it as messages; subclasses implement."""
        raise NotImplementedError

    @work(exclusive=True, group="poll", exit_on_error=False)
    async def poll_loop(self) -> None:
        """One long-lived loop per tab, so polls never overlap however slow the backend is."""
        while True:
            self._wake.clear()
            await self.poll_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.ui.refresh_ms / 1000)

    def wake(self) -> None:
        """Poll now instead of at the next tick, so an action's effect shows at once."""
        self._wake.set()

    # -- actions -------------------------------------------------------------

    def writable(self, what: str) -> bool:
        """False (with a toast saying why) when the console was started read-only."""
        if self.ui.read_only:
            self.toast(
                f"{what} is disabled: the console runs read-only (--read-only / ui.read_only).",
                title="Read-only",
                severity="warning",
            )
            return False
        return True

    def perform(self, action: str, call: Callable[[], Awaitable[Outcome]]) -> None:
        """Run one backend call in a worker unless the same action is still in flight."""
        if action in self._pending:
            self.toast(f"{action} is already in progress", severity="warning")
            return
        self._pending.add(action)
        self._perform(action, call)

    @work(group="action", exit_on_error=False)
    async def _perform(self, action: str, call: Callable[[], Awaitable[Outcome]]) -> None:
        try:
            outcome = await call()
        except RetailApiError as err:
            self.post_message(self.ActionFailed(action, err))
        else:
            self.post_message(self.ActionCompleted(action, outcome))
        finally:
            self._pending.discard(action)

    @on(ActionCompleted)
    def _action_completed(self, event: ActionCompleted) -> None:
        severity: SeverityLevel = "information" if event.outcome.ok else "error"
        self.toast(event.outcome.message, title=event.action, severity=severity)
        self.wake()

    @on(ActionFailed)
    def _action_failed(self, event: ActionFailed) -> None:
        self.toast(str(event.error), title=f"{event.action} failed", severity="error")
        self.wake()

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        """A bug or a malformed answer: say so in a toast and keep polling, never a traceback."""
        if self.toast_worker_error(event) is None:
            return
        if event.worker.group == "poll":
            self.set_timer(self.ui.refresh_ms / 1000, self.poll_loop)
