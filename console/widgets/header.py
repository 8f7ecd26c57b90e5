"""The one-line shell header: mode, one health dot per backend, and the (injected) clock."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from console.widgets.formatting import tone_of
from console.widgets.live_text import LiveText


class BackendDot(Static):
    """`name ●` coloured by health; grey `○` while a backend is unavailable or unconfigured."""

    def __init__(self, name: str, state: str, detail: str) -> None:
        super().__init__(id=f"dot-{name}", classes="backend-dot", markup=False)
        self.backend = name
        self.set_state(state, detail)

    def set_state(self, state: str, detail: str) -> None:
        """Tone classes (not inline colours) so themes and 16-colour terminals both work."""
        self.state = state
        self.detail = detail
        tone = tone_of(state)
        for name in ("good", "warn", "bad", "off"):
            self.set_class(tone == name, f"-{name}")
        self.update(f"{self.backend} {'○' if tone == 'off' else '●'}", layout=False)
        self.tooltip = f"{self.backend}: {detail}"


class ShellHeader(Horizontal):
    """Replaces Textual's Header: ops consoles need status at a glance, not a title bar."""

    def __init__(
        self,
        *,
        mode: str,
        backends: dict[str, tuple[str, str]],
        read_only: bool,
    ) -> None:
        super().__init__(id="shell-header")
        self._mode = mode
        self._read_only = read_only
        # Held directly, not queried: updates may still arrive while the app tears the DOM down.
        self._dots = {name: BackendDot(name, *status) for name, status in backends.items()}
        self._clock = LiveText("", id="clock", markup=False)

    def compose(self) -> ComposeResult:
        yield Static("streamops", id="brand", markup=False)
        yield Static(self._mode, id="mode", markup=False)
        if self._read_only:
            yield Static("read-only", id="read-only-badge", markup=False)
        yield from self._dots.values()
        yield Static("", id="header-fill")
        yield self._clock

    def set_health(self, backend: str, state: str, detail: str) -> None:
        self._dots[backend].set_state(state, detail)

    def set_time(self, text: str) -> None:
        self._clock.show(text)
