"""A live tail that stays smooth at thousands of messages a second; shared by every tail pane.

Why it is built this way (see DESIGN.md, "UI conventions"):

- `push` does O(1) work and touches no widget: it appends to a bounded ring
  buffer (for detail, filters and resume) and, while live, to a pending queue
  no longer than the visible lines. A `set_interval` flush every ~80 ms writes
  the queue with one `Log.write_lines` call, so redraws are capped at ~12/s
  whatever the message rate, and memory is capped by `buffer_size`.
- Each message is rendered to its line once, on arrival, and kept as JSON bytes
  (see `TailEntry`). Lines are plain strings (what `Log` absorbs fastest);
  highlights (test data, the cursor) are applied per visible row when drawn.
- Pausing freezes the view at the message it was showing while messages keep
  arriving and counting; resuming (or changing the filter) re-renders the view
  from the buffer, scanning newest-first and stopping once the view is full.
- `push` is called by async workers on the UI's own loop, so it needs no lock;
  a thread worker would have to go through `app.call_from_thread`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import orjson
from rich.json import JSON
from rich.segment import Segment
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.strip import Strip
from textual.timer import Timer
from textual.widgets import Input, Log, Select, Static

from backends.common.clock import Clock
from console.widgets import formatting as fmt
from console.widgets.filters import FilterError, TailFilter, parse_filter
from console.widgets.live_text import LiveText

Formatter = Callable[[dict[str, Any]], str]
"""One message as one line of text (no line breaks)."""
Marker = Callable[[dict[str, Any]], bool]
"""True for messages to highlight (test data, warnings)."""


def one_line(text: str) -> str:
    """`Log` splits on line breaks; a message must stay exactly one (non-empty) line."""
    if not text.isprintable():
        text = " ".join(text.splitlines())
    return text or " "


class TailEntry:
    """One received message, kept as its JSON bytes with its rendered line.

    Bytes, not the parsed dict: a buffer of 20k parsed messages is a million
    objects that every full garbage collection walks (measured: 300-400 ms UI
    stalls at a few thousand messages/s); bytes are not tracked by the collector.
    The dict is loaded again only for a detail view or a field filter.
    """

    __slots__ = ("line", "marked", "raw", "seq")

    def __init__(self, raw: bytes, seq: int, line: str, marked: bool) -> None:
        self.raw = raw
        self.seq = seq
        self.line = line
        self.marked = marked

    @property
    def message(self) -> dict[str, Any]:
        return orjson.loads(self.raw)

    def text(self) -> str:
        """What free-text filter terms search: the message's JSON, lower-cased."""
        return self.raw.decode().lower()


class TailView(Log):
    """The visible lines, aligned one-to-one with `entries`, with a keyboard cursor."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"tail-view--cursor", "tail-view--marked"}
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("up,k", "move(-1)", "Up", id="tail.up", show=False),
        Binding("down,j", "move(1)", "Down", id="tail.down", show=False),
        Binding("pageup", "page(-1)", "Page up", id="tail.page_up", show=False),
        Binding("pagedown", "page(1)", "Page down", id="tail.page_down", show=False),
        Binding("home,g", "move_to(0)", "Oldest", id="tail.oldest", show=False),
        Binding("end,G", "move_to(-1)", "Newest", id="tail.newest", show=False),
        Binding("enter", "select", "Detail", id="tail.detail"),
    ]

    class Navigated(Message):
        """The user moved the cursor: the owner freezes the view so the row stays put."""

    class Selected(Message):
        def __init__(self, message: dict[str, Any]) -> None:
            super().__init__()
            self.message = message

    def __init__(self, *, max_lines: int, classes: str | None = None) -> None:
        super().__init__(max_lines=max_lines, classes=classes)
        self.entries: deque[TailEntry] = deque(maxlen=max_lines)
        self.cursor: int | None = None
        """Index into `entries`; None follows the newest line."""
        self._at_end = True
        """Follow new lines, unless the user scrolled up (mouse wheel, scrollbar).

        Tracked here rather than asked of `Log` at each write: the horizontal scrollbar
        appears once line widths are measured, which raises `max_scroll_y` under an
        unchanged `scroll_y`, and `Log` would then stop following for good."""

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if new_value < old_value:
            self._at_end = False
        if new_value >= self.max_scroll_y:
            self._at_end = True

    def watch_show_horizontal_scrollbar(self, shown: bool) -> None:
        if shown and self._at_end and self.cursor is None:
            self.call_after_refresh(self.scroll_end, animate=False, immediate=True, x_axis=False)

    @property
    def cursor_index(self) -> int:
        return len(self.entries) - 1 if self.cursor is None else self.cursor

    def append(self, entries: list[TailEntry]) -> None:
        """Lines of already-rendered entries, in one `write_lines`; keeps the cursor's entry."""
        overflow = len(self.entries) + len(entries) - (self.max_lines or 0)
        if self.cursor is not None and overflow > 0:
            self.cursor = max(0, self.cursor - overflow)
        self.entries.extend(entries)
        follow = self._at_end and self.cursor is None
        self.write_lines([entry.line for entry in entries], scroll_end=follow)

    def reset(self, entries: list[TailEntry]) -> None:
        self.clear()
        self.entries.clear()
        self.cursor = None
        self.append(entries)
        self.scroll_end(animate=False, immediate=True, x_axis=False)

    def render_line(self, y: int) -> Strip:
        strip = super().render_line(y)
        index = self.scroll_offset.y + y
        if index >= len(self.entries):
            return strip
        style = None
        if self.entries[index].marked:
            style = self.get_component_rich_style("tail-view--marked", partial=True)
        if self.has_focus and index == self.cursor_index:
            cursor = self.get_component_rich_style("tail-view--cursor", partial=True)
            style = cursor if style is None else style + cursor
        if style is None:
            return strip
        return Strip(Segment.apply_style(iter(strip), post_style=style), strip.cell_length)

    def _set_cursor(self, index: int) -> None:
        if not self.entries:
            return
        self.cursor = min(max(index, 0), len(self.entries) - 1)
        top, height = self.scroll_offset.y, max(self.size.height, 1)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False, immediate=True)
        self.refresh()
        self.post_message(self.Navigated())

    def action_move(self, delta: int) -> None:
        self._set_cursor(self.cursor_index + delta)

    def action_page(self, direction: int) -> None:
        self._set_cursor(self.cursor_index + direction * max(self.size.height - 1, 1))

    def action_move_to(self, index: int) -> None:
        self._set_cursor(index if index >= 0 else len(self.entries) - 1)

    def action_select(self) -> None:
        if self.entries:
            self.post_message(self.Selected(self.entries[self.cursor_index].message))


class Tail(Vertical):
    """Status line, filter bar (with saved filters) and the view; feed it with `push`.

    Its keys work wherever it is mounted; a tab may repeat them in its own BINDINGS
    (acting on its active tail) so they also show in the keymap.
    """

    BINDINGS: ClassVar[list[Binding]] = [
        Binding("space", "toggle_pause", "Pause", id="tail.pause", tooltip="Pause/live"),
        Binding("slash", "filter", "Filter", id="tail.filter", key_display="/"),
        Binding("s", "save_filter", "Save filter", id="tail.save_filter"),
    ]

    class FilterSaved(Message):
        def __init__(self, name: str, source: str) -> None:
            super().__init__()
            self.name = name
            self.source = source

    def __init__(
        self,
        *,
        formatter: Formatter,
        marker: Marker,
        clock: Clock,
        saved_filters: dict[str, str],
        max_lines: int = 5_000,
        buffer_size: int = 20_000,
        flush_seconds: float = 0.08,
        rate_window: float = 2.0,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id, classes="tail -empty")
        self._formatter = formatter
        self._marker = marker
        self._clock = clock
        self._saved = dict(saved_filters)
        self.max_lines = max_lines
        self._flush_seconds = flush_seconds
        self._rate_window = rate_window
        self._buffer: deque[TailEntry] = deque(maxlen=buffer_size)
        self._pending: deque[TailEntry] = deque(maxlen=max_lines)
        self._samples: deque[tuple[float, int]] = deque(maxlen=256)
        self._filter = TailFilter()
        self._filter_timer: Timer | None = None
        self.received = 0
        self.paused = False
        self._paused_at = 0
        self.rate = 0.0
        self._status = LiveText("", classes="tail-status")
        self._filter_input = Input(
            placeholder="/ filter: text  field=value  a.b=value",
            compact=True,
            classes="tail-filter",
        )
        self._saved_select: Select[str] = Select(
            self._saved_options(), prompt="saved filters", compact=True, classes="tail-saved"
        )
        self._hint = Static("", classes="tail-hint", markup=False)
        self._hint_text = ""
        self._hint_shown = ""
        self.view = TailView(max_lines=max_lines, classes="tail-view")

    # -- composition ------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield self._status
        with Horizontal(classes="tail-filter-row"):
            yield self._filter_input
            yield self._saved_select
        yield self._hint
        yield self.view

    def on_mount(self) -> None:
        self.set_interval(self._flush_seconds, self.flush)
        self.flush()

    def _saved_options(self) -> list[tuple[str, str]]:
        return [(name, name) for name in sorted(self._saved)]

    # -- feeding ----------------------------------------------------------------

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    @property
    def dropped(self) -> int:
        """Messages the ring buffer no longer holds because of its cap."""
        return self.received - len(self._buffer)

    @property
    def behind(self) -> int:
        return self.received - self._paused_at if self.paused else 0

    @property
    def shown(self) -> list[dict[str, Any]]:
        """The messages of the visible lines, oldest first (what a snapshot or test sees)."""
        return [entry.message for entry in self.view.entries]

    @property
    def filter(self) -> TailFilter:
        return self._filter

    def push(self, message: dict[str, Any]) -> None:
        entry = TailEntry(
            orjson.dumps(message, default=str),
            self.received,
            one_line(self._formatter(message)),
            self._marker(message),
        )
        self.received += 1
        self._buffer.append(entry)
        if not self.paused and (not self._filter or self._filter.matches(message, entry.text)):
            self._pending.append(entry)

    def push_many(self, messages: Iterable[dict[str, Any]]) -> None:
        for message in messages:
            self.push(message)

    def clear(self) -> None:
        """Forget everything: a different stream starts from zero, live."""
        self._buffer.clear()
        self._pending.clear()
        self._samples.clear()
        self.paused = False
        self.received = self._paused_at = 0
        self.rate = 0.0
        self.view.reset([])
        self.flush()

    def set_hint(self, text: str) -> None:
        """What the empty tail says to do next (unless a filter is what hides everything)."""
        self._hint_text = text
        self._show_empty()

    def _show_empty(self) -> None:
        empty = not self.view.entries
        self.set_class(empty, "-empty")
        if not empty:
            return
        text = self._hint_text
        if self._filter and self.received:
            text = f"No message matches {self._filter.source} — / edits the filter."
        if text != self._hint_shown:
            self._hint_shown = text
            self._hint.update(text)

    def _matches(self, entry: TailEntry) -> bool:
        if not self._filter:
            return True
        loaded: list[dict[str, Any]] = []

        def message() -> dict[str, Any]:
            if not loaded:
                loaded.append(entry.message)
            return loaded[0]

        return self._filter.matches_lazy(message, entry.text)

    def flush(self) -> None:
        """The one redraw per tick: write what queued up, refresh counters and the rate."""
        now = self._clock.monotonic()
        samples = self._samples
        samples.append((now, self.received))
        while len(samples) > 2 and samples[1][0] <= now - self._rate_window:
            samples.popleft()
        first_at, first_count = samples[0]
        self.rate = (self.received - first_count) / (now - first_at) if now > first_at else 0.0
        if self._pending:
            batch = list(self._pending)
            self._pending.clear()
            self.view.append(batch)
        self._show_empty()
        self._show_status()

    def _rerender(self) -> None:
        """Fill the view from the buffer: newest matches first, up to the pause point."""
        upto = self._paused_at if self.paused else self.received
        chosen: list[TailEntry] = []
        for entry in reversed(self._buffer):
            if entry.seq >= upto or not self._matches(entry):
                continue
            chosen.append(entry)
            if len(chosen) == self.max_lines:
                break
        chosen.reverse()
        self._pending.clear()
        self.view.reset(chosen)
        self._show_empty()
        self._show_status()

    def _show_status(self) -> None:
        if self.paused:
            head = f"[$warning]‖ paused — {fmt.count(self.behind)} behind[/]"
        else:
            head = f"{fmt.dot('running')} live"
        parts = [
            head,
            f"{fmt.rate(self.rate)} msg/s",
            f"{fmt.count(self.received)} received",
        ]
        if self.dropped:
            parts.append(f"{fmt.count(self.dropped)} dropped (cap {fmt.count(self.buffered)})")
        if self._filter:
            parts.append(f"{fmt.count(len(self.view.entries))} shown")
        self._status.show(" · ".join(parts))

    # -- pause / live -----------------------------------------------------------

    def pause(self) -> None:
        if not self.paused:
            self.paused = True
            self._paused_at = self.received
            self._pending.clear()
            self._show_status()

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            self._rerender()

    def toggle_pause(self) -> None:
        if self.paused:
            self.resume()
        else:
            self.pause()

    def action_toggle_pause(self) -> None:
        self.toggle_pause()

    def action_filter(self) -> None:
        self.focus_filter()

    def action_save_filter(self) -> None:
        self.save_filter()

    @on(TailView.Navigated)
    def _navigated(self) -> None:
        self.pause()

    # -- filters ----------------------------------------------------------------

    def focus_filter(self) -> None:
        self._filter_input.focus()

    def apply_filter(self, source: str) -> bool:
        """Apply at once; an unparsable filter keeps the previous one and marks the field."""
        try:
            parsed = parse_filter(source)
        except FilterError as exc:
            self._filter_input.add_class("-invalid")
            self._filter_input.tooltip = str(exc)
            return False
        self._filter_input.remove_class("-invalid")
        self._filter_input.tooltip = None
        if self._filter_input.value != source:
            self._filter_input.value = source
        if parsed != self._filter:
            self._filter = parsed
            self._rerender()
        return True

    @on(Input.Changed, ".tail-filter")
    def _filter_typed(self, event: Input.Changed) -> None:
        """Filter as you type, once typing pauses: each re-render scans the buffer."""
        event.stop()
        if self._filter_timer is not None:
            self._filter_timer.stop()
        # The field's value when the timer fires, not the event's: programmatic changes
        # (a saved filter picked meanwhile) queue Changed events with stale values.
        self._filter_timer = self.set_timer(
            0.2, lambda: self.apply_filter(self._filter_input.value)
        )

    @on(Input.Submitted, ".tail-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self._filter_timer is not None:
            self._filter_timer.stop()
        if self.apply_filter(event.value):
            self.view.focus()

    @on(Select.Changed, ".tail-saved")
    def _saved_chosen(self, event: Select.Changed) -> None:
        event.stop()
        if isinstance(event.value, str) and event.value in self._saved:
            self.apply_filter(self._saved[event.value])

    def save_filter(self) -> None:
        """Ask for a name, then keep the current filter under it (the owner persists it)."""
        if not self._filter:
            self.notify("Type a filter first (/), then save it.", severity="warning")
            return
        source = self._filter.source
        suggested = next((name for name, text in self._saved.items() if text == source), "")

        def saved(name: str | None) -> None:
            if not name:
                return
            self.add_saved_filter(name, source)
            self._saved_select.value = name
            self.post_message(self.FilterSaved(name, source))

        self.app.push_screen(NamePrompt("Save filter as", source, suggested), saved)

    def add_saved_filter(self, name: str, source: str) -> None:
        """Offer a saved filter in the list (the tails share theirs: one saved, all offer it)."""
        if self._saved.get(name) != source:
            self._saved[name] = source
            self._saved_select.set_options(self._saved_options())


class NamePrompt(ModalScreen[str | None]):
    """One line of input: enter answers, esc cancels."""

    BINDINGS: ClassVar[list[Binding]] = [
        Binding("escape", "cancel", "Cancel", id="name-prompt.cancel", key_display="esc"),
    ]

    def __init__(self, title: str, subject: str, suggested: str = "") -> None:
        super().__init__()
        self._title = title
        self._subject = subject
        self._suggested = suggested

    def compose(self) -> ComposeResult:
        with Vertical(id="name-prompt") as dialog:
            dialog.border_title = self._title
            dialog.border_subtitle = "enter saves · esc cancels"
            yield Static(self._subject, id="name-prompt-subject", markup=False)
            yield Input(self._suggested, placeholder="name", id="name-prompt-input")

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        name = event.value.strip()
        if name:
            self.dismiss(name)

    def action_cancel(self) -> None:
        self.dismiss(None)


class DetailScreen(ModalScreen[None]):
    """Pretty JSON of one message, section by section; only the selected message is rendered."""

    BINDINGS: ClassVar[list[Binding]] = [
        Binding("escape,enter,q", "dismiss", "Close", id="tail-detail.close", key_display="esc"),
        Binding("c", "copy", "Copy JSON", id="tail-detail.copy"),
    ]

    def __init__(self, title: str, sections: list[tuple[str, Any]], raw: dict[str, Any]) -> None:
        super().__init__()
        self._title = title
        self._sections = sections
        self._raw = raw

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="tail-detail") as scroll:
            scroll.border_title = self._title
            scroll.border_subtitle = "esc closes · c copies the JSON · ↑↓ scroll"
            for heading, data in self._sections:
                yield Static(heading, classes="tail-detail-heading", markup=False)
                yield Static(JSON.from_data(data, indent=2, sort_keys=False))

    def on_mount(self) -> None:
        self.query_one("#tail-detail", VerticalScroll).focus()

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(orjson.dumps(self._raw, option=orjson.OPT_INDENT_2).decode())
        self.notify("Message JSON copied to the clipboard", title="Copied", markup=False)
