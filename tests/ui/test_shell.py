"""The shell: header, number keys, help, command palette and the keymap's ids."""

from __future__ import annotations

from textual.binding import Binding
from textual.command import CommandList, CommandPalette
from textual.widgets import Input, Markdown, TabbedContent, TabPane

from console.app import StreamopsApp
from console.screens.confirm import ConfirmScreen
from console.screens.event_detail import EventDetailScreen
from console.screens.help import HelpScreen
from console.tabs.disruptions import DisruptionsTab
from console.tabs.streams import StreamsTab
from console.widgets.header import BackendDot
from tests.ui.helpers import wait_until

SIZE = (120, 40)


async def test_header_shows_mode_health_and_the_injected_clock(app: StreamopsApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        retail = app.query_one("#dot-retail", BackendDot)
        await wait_until(pilot, lambda: retail.state == "healthy", "retail health")
        assert retail.has_class("-good")
        assert str(app.query_one("#mode").render()) == "embedded"
        assert str(app.query_one("#clock").render()) == "10:30:00 UTC"
        for name in ("export", "realtime", "kafka"):
            dot = app.query_one(f"#dot-{name}", BackendDot)
            assert dot.has_class("-off") and str(dot.render()).endswith("○")
        jobs = app.query_one("#dot-jobs", BackendDot)  # the Jobs tab connects at start
        await wait_until(pilot, lambda: jobs.state == "healthy", "jobs connection")
        assert "kafka.bootstrap_servers" in str(app.query_one("#dot-kafka").tooltip)


async def test_a_number_key_at_start_switches_and_the_focus_follows(app: StreamopsApp) -> None:
    """Nothing takes the key before the shell is laid out, and focus lands in the new tab."""
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("5")
        assert app.query_one(TabbedContent).active == "validation"
        tab = app.query_one("#validation", TabPane)
        await wait_until(
            pilot, lambda: app.focused is not None and tab in app.focused.ancestors, "focus"
        )
        await pilot.pause(0.3)
        assert app.focused is not None and tab in app.focused.ancestors


async def test_number_keys_switch_tabs(app: StreamopsApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        tabs = app.query_one(TabbedContent)
        await pilot.press("2")
        assert tabs.active == "tails"
        await pilot.press("3")
        assert tabs.active == "jobs"
        await pilot.press("5")
        assert tabs.active == "validation"
        await pilot.press("4")
        assert tabs.active == "disruptions"
        await pilot.press("1")
        assert tabs.active == "streams"


async def test_help_shows_the_focused_widget_and_the_full_keymap(app: StreamopsApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        help_text = app.screen.query_one("#help-text", Markdown).source
        assert "Recent events" in help_text and "1 Streams" in help_text
        ids = {row.binding_id for row in app.keymap_rows()}
        assert {"streams.start", "disruptions.clear_all", "app.help", "app.tab.jobs"} <= ids
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_palette_lists_every_action_and_runs_them(app: StreamopsApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        names = {command.name for command in app.palette_commands()}
        assert {
            "Start stream",
            "Stop stream",
            "Test sink connection",
            "Create disruption…",
            "Inject disruption",
            "Cancel selected disruption",
            "Clear all disruptions",
            "Switch theme",
            "Go to Streams",
            "Go to Disruptions",
            "Show help",
        } <= names

        await pilot.press("ctrl+p")
        assert isinstance(app.screen, CommandPalette)
        app.screen.query_one(Input).value = "Create disruption"
        hits = app.screen.query_one(CommandList)
        await wait_until(pilot, lambda: hits.option_count > 0, "palette hits")
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.query_one(TabbedContent).active == "disruptions", "tab")
        await wait_until(pilot, lambda: app.focused is app.query_one("#d-type"), "the form")


def test_every_binding_has_an_id_and_a_description() -> None:
    owners = (
        StreamopsApp,
        StreamsTab,
        DisruptionsTab,
        HelpScreen,
        ConfirmScreen,
        EventDetailScreen,
    )
    for owner in owners:
        for binding in owner.BINDINGS:
            assert isinstance(binding, Binding)
            assert binding.id and binding.description, (owner.__name__, binding.key)


async def test_escape_leaves_a_form_field_so_keys_act_again(app: StreamopsApp) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.2)
        app.query_one("#interval", Input).focus()
        await pilot.press("escape")
        assert app.focused is app.query_one("#recent")
