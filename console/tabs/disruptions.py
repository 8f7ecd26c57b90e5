"""4 Disruptions: inject supply-chain disruptions into the generator and manage the active ones.

The form is checked client-side first (clear messages, no round trip); what the
server still rejects comes back as a toast with its status and detail. Time left
counts down between polls from the server's `time_remaining_minutes` and the
injected clock's monotonic time, so clock skew with a remote server cannot show.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.markup import escape
from textual.message import Message
from textual.validation import Function, Integer, Number
from textual.widgets import Button, DataTable, Input, Label, Select, Static

from backends.common.clock import Clock
from backends.retail.client import RetailApiError, RetailClient
from backends.retail.models import DISRUPTION_TYPES, DisruptionCreate, DisruptionList
from backends.settings import UISettings
from console.screens.confirm import ConfirmScreen
from console.tabs.base import ConsoleTab, Outcome, PaletteCommand
from console.widgets import formatting as fmt
from console.widgets.severity import SeverityMeter

MAX_MINUTES = 7 * 24 * 60
TARGET_HINTS: dict[str, str] = {
    "dc_outage": "distribution center id",
    "inventory_shortage": "store id",
    "truck_breakdown": "truck id",
    "weather_delay": "store id",
}


def parse_products(text: str) -> list[int] | None:
    """`101, 102 103` → [101, 102, 103]; empty → None (all products). Raises ValueError."""
    parts = text.replace(",", " ").split()
    return [int(part) for part in parts] if parts else None


def short_id(disruption_id: str) -> str:
    """`disruption_x7y8z9` → `disr_x7y8z9`: the prefix is the same on every row."""
    return disruption_id.replace("disruption_", "disr_", 1)


def severity_text(severity: float) -> str:
    """One decimal like the form (`1.0`, `0.7`), two only when the server has them (`0.75`)."""
    return f"{severity:.1f}" if round(severity, 1) == severity else f"{severity:.2f}"


def _products_valid(text: str) -> bool:
    try:
        parse_products(text)
    except ValueError:
        return False
    return True


def _parse_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


class DisruptionsTab(ConsoleTab):
    HELP = """\
### 4 Disruptions

Injects **supply-chain disruptions** into the retail generator and lists the
active ones; their effect shows on Streams (stockouts and reorders climb).

- Fill the **Inject** form and press **enter** in a field, the button, or
  **i** from the table. Severity runs from 0.0 to 1.0; products is an optional
  comma list (empty = all).
- In **Active**, *left* counts down live and *hit* is `events_affected`.
- **del** cancels the selected disruption; **C** clears them all after asking.
- **n** jumps to the form, **esc** leaves a field.
"""
    WIDGET_HELP: ClassVar[dict[str, str]] = {
        "d-type": "**type**: `dc_outage` (a DC), `inventory_shortage` (a store), "
        "`truck_breakdown` (a truck), `weather_delay` (a store).",
        "d-target": "**target**: id of the DC, store or truck the disruption hits.",
        "d-severity": "**severity**: 0.0 (mild) to 1.0 (total).",
        "d-minutes": f"**minutes**: how long it lasts, 1-{MAX_MINUTES:,}.",
        "d-products": "**products**: optional product ids, e.g. `101, 102, 103`.",
        "active": "**Active**: **del** cancels the selected row, **C** clears all.",
    }
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("i", "inject", "Inject", id="disruptions.inject", tooltip="Inject from the form"),
        Binding(
            "delete,backspace",
            "cancel_selected",
            "Cancel",
            id="disruptions.cancel",
            key_display="del",
        ),
        Binding("C", "clear_all", "Clear all", id="disruptions.clear_all", tooltip="Asks first"),
        Binding("n", "new", "New", id="disruptions.new", tooltip="Go to the inject form"),
        Binding(
            "escape",
            "focus_primary",
            "Leave field",
            id="disruptions.leave_field",
            key_display="esc",
        ),
    ]

    class Listed(Message, bubble=False):
        def __init__(self, disruptions: DisruptionList, at: float) -> None:
            super().__init__()
            self.disruptions = disruptions
            self.at = at

    def __init__(self, *, retail: RetailClient, ui: UISettings, clock: Clock) -> None:
        super().__init__(retail=retail, ui=ui, clock=clock, id="disruptions-tab")
        self.disruptions: DisruptionList | None = None
        self._remaining: dict[str, tuple[float, float]] = {}
        self._unreachable = False

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="inject-form") as form:
            form.border_title = "Inject"
            with Horizontal(classes="field"):
                yield Label("type", classes="field-label")
                yield Select(
                    [(name, name) for name in DISRUPTION_TYPES],
                    value="truck_breakdown",
                    allow_blank=False,
                    compact=True,
                    id="d-type",
                )
            with Horizontal(classes="field"):
                yield Label("target", classes="field-label")
                yield Input(
                    "5",
                    placeholder="id",
                    type="integer",
                    validators=[Integer(0, failure_description="target: a whole number ≥ 0")],
                    compact=True,
                    id="d-target",
                    classes="inject-input",
                )
            yield Static(TARGET_HINTS["truck_breakdown"], id="target-hint", markup=False)
            with Horizontal(classes="field"):
                yield Label("severity", classes="field-label")
                yield Input(
                    "0.7",
                    placeholder="0.0-1.0",
                    type="number",
                    validators=[
                        Number(0, 1, failure_description="severity: a number from 0.0 to 1.0")
                    ],
                    compact=True,
                    id="d-severity",
                    classes="inject-input",
                )
                yield SeverityMeter(id="severity-meter")
            with Horizontal(classes="field"):
                yield Label("minutes", classes="field-label")
                yield Input(
                    "30",
                    placeholder=f"1-{MAX_MINUTES}",
                    type="integer",
                    validators=[
                        Integer(1, MAX_MINUTES, failure_description=f"minutes: 1-{MAX_MINUTES:,}")
                    ],
                    compact=True,
                    id="d-minutes",
                    classes="inject-input",
                )
            with Horizontal(classes="field"):
                yield Label("products", classes="field-label")
                yield Input(
                    placeholder="101, 102 (empty = all)",
                    validators=[
                        Function(
                            _products_valid,
                            "products: whole numbers separated by commas, e.g. 101, 102",
                        )
                    ],
                    compact=True,
                    id="d-products",
                    classes="inject-input",
                )
            yield Static("", id="inject-errors", markup=False)
            yield Button("Inject", id="inject", variant="warning", compact=True)
        with Vertical(id="active-panel", classes="-empty") as panel:
            panel.border_title = "Active"
            panel.border_subtitle = "del cancel · C clear all (asks first)"
            table: DataTable[str] = DataTable(id="active", cursor_type="row")
            for label in ("id", "type", "target", "sev"):
                table.add_column(label, key=label)
            # Fixed widths: these cells change every second and must not trigger a re-layout.
            table.add_column("left", key="left", width=8)
            table.add_column("hit", key="hit", width=9)
            yield table
            yield Static(
                "No active disruptions — fill the form and press enter (or i here)",
                id="active-empty",
            )

    def on_mount(self) -> None:
        # Textual also runs ConsoleTab.on_mount (handlers run along the MRO): that starts polling.
        self.query_one(SeverityMeter).show(0.7)
        self.set_interval(1.0, self._count_down)

    def focus_primary(self) -> None:
        self.query_one("#active", DataTable).focus()

    def action_new(self) -> None:
        self.query_one("#d-type", Select).focus()

    def commands(self) -> list[PaletteCommand]:
        return [
            PaletteCommand(
                "Inject disruption", "Inject the disruption in the form", self.action_inject
            ),
            PaletteCommand(
                "Cancel selected disruption",
                "Cancel the selected active one",
                self.action_cancel_selected,
            ),
            PaletteCommand(
                "Clear all disruptions", "Cancel every active one (asks)", self.action_clear_all
            ),
        ]

    # -- polling -------------------------------------------------------------

    async def poll_once(self) -> None:
        try:
            listed = await self.retail.list_disruptions()
        except RetailApiError as err:
            self.post_message(self.PollFailed(err))
            return
        self.post_message(self.Listed(listed, self.clock.monotonic()))

    @on(ConsoleTab.PollFailed)
    def _poll_failed(self, event: ConsoleTab.PollFailed) -> None:
        # The shell's header and the Streams tab already toast an unreachable backend.
        self._unreachable = True
        self.query_one("#active-panel").border_title = f"Active — {escape(str(event.error))}"

    @on(Listed)
    def _listed(self, event: Listed) -> None:
        if self._unreachable:
            self._unreachable = False
            self.query_one("#active-panel").border_title = "Active"
        self.disruptions = event.disruptions
        table = self.query_one("#active", DataTable)
        current = {d.disruption_id: d for d in event.disruptions.disruptions}
        for key in [key for key in table.rows if key.value not in current]:
            table.remove_row(key)
        self._remaining = {
            d.disruption_id: (d.time_remaining_minutes * 60, event.at) for d in current.values()
        }
        for ident, d in current.items():
            left = fmt.mmss(d.time_remaining_minutes * 60)
            if ident in table.rows:
                table.update_cell(ident, "left", left)
                table.update_cell(ident, "hit", fmt.count(d.events_affected))
            else:
                table.add_row(  # Text, not str: DataTable parses strings as markup.
                    Text(short_id(ident)),
                    Text(d.type),
                    str(d.target_id),
                    severity_text(d.severity),
                    left,
                    fmt.count(d.events_affected),
                    key=ident,
                )
        self.query_one("#active-panel").set_class(not current, "-empty")

    def _count_down(self) -> None:
        table = self.query_one("#active", DataTable)
        now = self.clock.monotonic()
        for ident, (seconds, at) in self._remaining.items():
            if ident in table.rows:
                table.update_cell(ident, "left", fmt.mmss(seconds - (now - at)))

    # -- actions -------------------------------------------------------------

    def _disruption_request(self) -> DisruptionCreate | None:
        """The form as a request, or None after showing what to fix (inline and as a toast)."""
        errors: list[str] = []
        for widget in self.query(".inject-input").results(Input):
            result = widget.validate(widget.value)
            if result is not None and not result.is_valid:
                errors.extend(result.failure_descriptions)
        shown = self.query_one("#inject-errors", Static)
        shown.update("\n".join(errors))
        shown.display = bool(errors)
        if errors:
            self.toast("\n".join(errors), title="Cannot inject", severity="error")
            return None
        return DisruptionCreate(
            disruption_type=str(self.query_one("#d-type", Select).value),
            target_id=int(self.query_one("#d-target", Input).value),
            severity=float(self.query_one("#d-severity", Input).value),
            duration_minutes=int(self.query_one("#d-minutes", Input).value),
            product_ids=parse_products(self.query_one("#d-products", Input).value),
        )

    def action_inject(self) -> None:
        if not self.writable("Inject disruption"):
            return
        request = self._disruption_request()
        if request is None:
            return

        async def create() -> Outcome:
            created = await self.retail.create_disruption(request)
            return Outcome(f"{created.message} ({created.disruption_id})")

        self.perform("Inject disruption", create)

    def action_cancel_selected(self) -> None:
        if not self.writable("Cancel disruption"):
            return
        table = self.query_one("#active", DataTable)
        if not table.row_count:
            self.toast("No active disruption to cancel", severity="warning")
            return
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        ident = str(row_key.value)

        async def cancel() -> Outcome:
            return Outcome((await self.retail.cancel_disruption(ident)).message)

        self.perform("Cancel disruption", cancel)

    def action_clear_all(self) -> None:
        if not self.writable("Clear all disruptions"):
            return
        active = self.query_one("#active", DataTable).row_count
        if not active:
            self.toast("No active disruptions to clear", severity="warning")
            return

        def answered(confirmed: bool | None) -> None:
            if confirmed:
                self.perform("Clear all disruptions", clear)

        async def clear() -> Outcome:
            return Outcome((await self.retail.clear_disruptions()).message)

        noun = "disruption" if active == 1 else "disruptions"
        self.app.push_screen(
            ConfirmScreen(f"Clear all {active} active {noun}?", confirm_label="Clear all"), answered
        )

    @on(Button.Pressed, "#inject")
    def _inject_pressed(self) -> None:
        self.action_inject()

    @on(Input.Submitted, ".inject-input")
    def _submitted(self) -> None:
        self.action_inject()

    @on(Input.Changed, "#d-severity")
    def _severity_changed(self, event: Input.Changed) -> None:
        self.query_one(SeverityMeter).show(_parse_float(event.value))

    @on(Select.Changed, "#d-type")
    def _type_changed(self, event: Select.Changed) -> None:
        self.query_one("#target-hint", Static).update(TARGET_HINTS.get(str(event.value), ""))
