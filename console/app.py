"""The streamops console: shell, tabs, command palette and help.

Structure (after Harlequin): the App owns the one `RetailClient` and hands it to
the tabs; every network call runs in a worker (one polling worker per tab, one
for the header's health dots, one per user action) that posts typed messages
back to the UI loop, so the UI never waits on a backend. Time comes from the
injected clock, which makes the header and countdowns reproducible in snapshots.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, TabbedContent, TabPane, Tabs
from textual.worker import Worker, WorkerState

from backends.common.clock import Clock, SystemClock
from backends.endpoints import Endpoints
from backends.retail.client import RetailApiError, RetailClient
from backends.settings import Settings
from console.screens.help import HelpScreen, KeymapRow
from console.state import StateStore, default_state_path
from console.tabs.base import PaletteCommand, TabContent
from console.tabs.disruptions import DisruptionsTab
from console.tabs.jobs import JobsTab
from console.tabs.streams import StreamsTab
from console.tabs.tails import TailsTab
from console.tabs.validation import ValidationTab
from console.widgets.header import ShellHeader

STYLES = Path(__file__).resolve().parent.parent / "styles"
TABS: dict[str, str] = {
    "streams": "Streams",
    "tails": "Tails",
    "jobs": "Jobs",
    "disruptions": "Disruptions",
    "validation": "Validation",
}


class StreamopsCommands(Provider):
    """Every action of the shell and of every tab, by name (the keymap and palette share them)."""

    def _commands(self) -> list[PaletteCommand]:
        app = self.app
        return app.palette_commands() if isinstance(app, StreamopsApp) else []

    async def discover(self) -> Hits:
        for command in self._commands():
            yield DiscoveryHit(command.name, command.callback, help=command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in self._commands():
            score = matcher.match(command.name)
            if score > 0:
                yield Hit(
                    score, matcher.highlight(command.name), command.callback, help=command.help
                )


class ShellScreen(Screen[None]):
    """The tabs' screen, which focuses the Streams table (the first tab's primary widget)
    while it is composed. Focusing it any later, as Textual's default auto-focus of the
    first focusable widget followed by a deferred `focus_primary` did, lets a number key
    typed at start switch tabs before the focus lands: the focus then brings its own
    tab back (TabbedContent activates the pane of a focused widget)."""

    AUTO_FOCUS = "#recent"


class StreamopsApp(App[None]):
    TITLE = "streamops"
    CSS_PATH: ClassVar[list[str | Path]] = [
        STYLES / "app.tcss",
        STYLES / "streams.tcss",
        STYLES / "disruptions.tcss",
        STYLES / "tails.tcss",
        STYLES / "jobs.tcss",
        STYLES / "validation.tcss",
    ]
    COMMANDS = App.COMMANDS | {StreamopsCommands}
    # 80x24 over SSH is a first-class size: `-narrow` tightens the layout below 110 columns.
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-narrow"), (110, "-wide")]
    BINDINGS: ClassVar[list[Binding]] = [
        *(
            Binding(str(n), f"show_tab('{key}')", title, id=f"app.tab.{key}", show=False)
            for n, (key, title) in enumerate(TABS.items(), start=1)
        ),
        Binding("question_mark", "help", "Help", id="app.help", key_display="?"),
        Binding("f1", "help", "Help", id="app.help_f1", show=False, priority=True),
        Binding(
            "ctrl+p", "command_palette", "Palette", id="app.palette", show=False, priority=True
        ),
        Binding("q", "quit", "Quit", id="app.quit"),
    ]

    class HealthChanged(Message, bubble=False):
        def __init__(self, backend: str, state: str, detail: str) -> None:
            super().__init__()
            self.backend = backend
            self.state = state
            self.detail = detail

    def __init__(
        self,
        settings: Settings,
        endpoints: Endpoints,
        *,
        clock: Clock | None = None,
        ui_state: StateStore | None = None,
    ) -> None:
        if endpoints.retail is None:
            raise ValueError("no retail endpoint: set retail.url or run the embedded backends")
        super().__init__()
        self.settings = settings
        self.endpoints = endpoints
        self.clock: Clock = clock or SystemClock()
        self.retail = RetailClient(endpoints.retail)
        self.ui_state = ui_state or StateStore(default_state_path())
        # Held directly: health and clock updates may land while a modal or shutdown owns the DOM.
        kafka = settings.kafka.bootstrap_servers
        self.header = ShellHeader(
            mode=endpoints.mode,
            read_only=settings.ui.read_only,
            backends={
                "retail": ("unknown", "connecting…"),
                "export": (
                    ("idle", "configured — not tailing (2 Tails, r connects)")
                    if endpoints.export
                    else ("off", 'not configured — set export.url = "http://host:8080/api"')
                ),
                "realtime": (
                    ("idle", "configured — not connected (2 Tails, p Socket.IO, r connects)")
                    if endpoints.realtime
                    else ("off", 'not configured — set realtime.url = "http://host:5000"')
                ),
                "jobs": (
                    ("unknown", "connecting…")
                    if endpoints.jobs
                    else ("off", 'not configured — set jobs.url = "ws://host:8765/production"')
                ),
                "kafka": (
                    ("configured", f"bootstrap_servers = {kafka}")
                    if kafka
                    else ("off", 'not configured — set kafka.bootstrap_servers = "host:9092"')
                ),
            },
        )

    @property
    def read_only(self) -> bool:
        return self.settings.ui.read_only

    @property
    def main(self) -> Screen[None]:
        """The shell's screen: `App.query_one` would search whatever modal is on top."""
        return self.screen_stack[0]

    def get_default_screen(self) -> Screen[None]:
        return ShellScreen(id="_default")

    def compose(self) -> ComposeResult:
        yield self.header
        ui = self.settings.ui
        with TabbedContent(initial="streams", id="tabs"):
            for n, (key, title) in enumerate(TABS.items(), start=1):
                with TabPane(f"{n} {title}", id=key):
                    if key == "streams":
                        yield StreamsTab(retail=self.retail, ui=ui, clock=self.clock)
                    elif key == "disruptions":
                        yield DisruptionsTab(retail=self.retail, ui=ui, clock=self.clock)
                    elif key == "tails":
                        yield TailsTab(
                            endpoints=self.endpoints,
                            store=self.ui_state,
                            clock=self.clock,
                            report_health=lambda state, detail: self.header.set_health(
                                "export", state, detail
                            ),
                            report_realtime_health=lambda state, detail: self.header.set_health(
                                "realtime", state, detail
                            ),
                        )
                    elif key == "jobs":
                        yield JobsTab(
                            endpoint=self.endpoints.jobs,
                            token=self.endpoints.jobs_token,
                            ui=ui,
                            clock=self.clock,
                            store=self.ui_state,
                            report_health=lambda state, detail: self.header.set_health(
                                "jobs", state, detail
                            ),
                        )
                    elif key == "validation":
                        yield ValidationTab(
                            settings=self.settings,
                            endpoints=self.endpoints,
                            store=self.ui_state,
                            clock=self.clock,
                        )
        yield Footer(compact=True)

    def on_mount(self) -> None:
        if self.settings.ui.theme in self.available_themes:
            self.theme = self.settings.ui.theme
        # Number keys switch tabs; a focusable tab strip would only swallow the tab's own keys.
        self.main.query_one(Tabs).can_focus = False
        self._tick_clock()
        self.set_interval(1.0, self._tick_clock)
        self.watch_health()

    async def on_unmount(self) -> None:
        await self.retail.aclose()

    def _tick_clock(self) -> None:
        self.header.set_time(self.clock.now().strftime("%H:%M:%S UTC"))

    def _focus_active_tab(self) -> None:
        """The tab active when the refresh comes, should keys have switched again meanwhile."""
        self._active_tab().focus_primary()

    def _active_tab(self) -> TabContent:
        return self.main.query_one(
            f"#{self.main.query_one(TabbedContent).active}", TabPane
        ).query_one(TabContent)

    @work(exclusive=True, group="health", exit_on_error=False)
    async def watch_health(self) -> None:
        """Header dots from `/stream/health`; an unreachable backend is red with the reason."""
        interval = self.settings.ui.refresh_ms / 1000
        while True:
            try:
                health = await self.retail.health()
            except RetailApiError as err:
                self.post_message(self.HealthChanged("retail", "unreachable", str(err)))
            else:
                self.post_message(self.HealthChanged("retail", health.status, health.status))
            await asyncio.sleep(interval)

    @on(Worker.StateChanged)
    def _health_worker_failed(self, event: Worker.StateChanged) -> None:
        """A malformed health answer turns the dot red with the reason; polling resumes."""
        if event.state is WorkerState.ERROR and event.worker.group == "health":
            error = event.worker.error
            self.header.set_health("retail", "error", f"{type(error).__name__}: {error}")
            self.set_timer(self.settings.ui.refresh_ms / 1000, self.watch_health)

    @on(HealthChanged)
    def _health_changed(self, event: HealthChanged) -> None:
        self.header.set_health(event.backend, event.state, event.detail)

    # -- actions -------------------------------------------------------------

    def action_show_tab(self, key: str) -> None:
        self.main.query_one(TabbedContent).active = key
        self.call_after_refresh(self._focus_active_tab)

    def action_create_disruption(self) -> None:
        self.main.query_one(TabbedContent).active = "disruptions"
        self.call_after_refresh(self.main.query_one(DisruptionsTab).action_new)

    def action_help(self) -> None:
        active = self.main.query_one(TabbedContent).active
        self.push_screen(
            HelpScreen(
                title=TABS.get(active, "streamops"),
                help_markdown=self._active_tab().help_markdown(self.screen.focused),
                keymap=self.keymap_rows(),
            )
        )

    def keymap_rows(self) -> list[KeymapRow]:
        """Every binding of the shell and of every tab, whether or not it is focused now."""
        scopes: list[tuple[str, list[Binding]]] = [("everywhere", list(self.BINDINGS))]
        for key, title in TABS.items():
            tab = self.main.query_one(f"#{key}", TabPane).query_one(TabContent)
            bindings = [b for b in tab.BINDINGS if isinstance(b, Binding)]
            if bindings:
                scopes.append((title, bindings))
        return [
            KeymapRow(scope, self.get_key_display(binding), binding.description, binding.id or "")
            for scope, bindings in scopes
            for binding in bindings
        ]

    def palette_commands(self) -> list[PaletteCommand]:
        """The active tab's commands first: they are the likeliest to be wanted."""
        active = self._active_tab()
        commands = list(active.commands())
        for tab in self.main.query(TabContent):
            if tab is not active:
                commands.extend(tab.commands())
        commands.append(
            PaletteCommand(
                "Create disruption…", "Open the disruption form", self.action_create_disruption
            )
        )
        for key, title in TABS.items():
            commands.append(
                PaletteCommand(
                    f"Go to {title}", f"Show the {title} tab", lambda k=key: self.action_show_tab(k)
                )
            )
        commands += [
            PaletteCommand("Switch theme", "Pick another colour theme", self.action_change_theme),
            PaletteCommand(
                "Show help", "Help for the focused widget and the keymap", self.action_help
            ),
            PaletteCommand("Quit", "Leave streamops", self.action_quit),
        ]
        return commands
