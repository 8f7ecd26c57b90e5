"""The tail under a flood: messages/s through the Tails widget and the UI loop's lag.

SSE batches can bring thousands of messages a second; the console must keep
answering keys. `Tail` buffers what arrives (bounded), formats it once, and redraws
at most every `flush_seconds`. This pushes `--messages` synthetic-feed messages in
batches of `--batch` as fast as the loop allows, and reports the time until the last
one is on screen, msg/s, and how late a 20 ms timer fires on the UI loop (what a key
press would wait): median, p99, max.

Baseline, same run: textual's own `Log` fed the same formatted lines, one
`write_lines` per batch (the obvious widget for a tail, with no buffer, no filter and
no detail view). Headless app (`run_test`), 120x40.

    .venv/bin/python bench/tail.py [--messages 100000] [--batch 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

from textual.app import App, ComposeResult
from textual.widgets import Log
from uilag import LagProbe, lag_line  # bench/, on the path of a script run from it

from backends.common.clock import ManualClock, SystemClock
from backends.export.feed import SyntheticFeed
from console.tabs.tails import format_message, is_test_message
from console.widgets.tail import Tail, one_line

Batch = list[dict[str, Any]]


class TailBench(App[None]):
    def __init__(self, widget: Tail | Log) -> None:
        super().__init__()
        self.widget = widget

    def compose(self) -> ComposeResult:
        yield self.widget


def messages(count: int) -> list[dict[str, Any]]:
    feed = SyntheticFeed(random.Random(7), ManualClock(), test_share=0.05)
    kinds = ("identifier", "journal_entry")
    out = []
    for n in range(count):
        cursor = f"1705314600000-{n}"
        out.append({"message_id": cursor, "cursor": cursor, **feed.message(kinds[n % 2])})
    return out


async def flood(
    widget: Tail | Log,
    feed: Callable[[Batch], None],
    done: Callable[[], bool],
    batches: list[Batch],
) -> tuple[float, dict]:
    """Feed every batch as fast as the loop allows; time until `done`, with the UI lag."""
    app = TailBench(widget)
    async with app.run_test(size=(120, 40)):
        probe = LagProbe(app)
        probe.start()
        started = time.perf_counter()
        for batch in batches:
            feed(batch)
            await asyncio.sleep(0)
        while not done():
            await asyncio.sleep(0.005)
        return time.perf_counter() - started, probe.stop()


async def main(count: int, size: int) -> None:
    sent = messages(count)
    batches = [sent[i : i + size] for i in range(0, count, size)]
    last_line = one_line(format_message(sent[-1]))
    tail = Tail(
        formatter=format_message,
        marker=is_test_message,
        clock=SystemClock(),
        saved_filters={},
        max_lines=5_000,
        buffer_size=20_000,
    )
    ours = await flood(
        tail,
        tail.push_many,
        lambda: bool(tail.view.entries) and tail.view.entries[-1].seq == count - 1,
        batches,
    )
    log = Log(max_lines=5_000)
    bare = await flood(
        log,
        lambda batch: log.write_lines([one_line(format_message(m)) for m in batch]),
        lambda: bool(log.lines) and log.lines[-1] == last_line,
        batches,
    )
    print(f"{count:,} messages in batches of {size:,}; UI lag = how late a 20 ms timer fires")
    for name, (seconds, lag) in (("Tail (the Tails tab)", ours), ("baseline: textual Log", bare)):
        print(lag_line(name, count, seconds, lag))
    print(
        f"  throughput Tail/Log: {bare[0] / ours[0]:.2f}x; "
        f"p99 lag Log/Tail: {bare[1]['p99_ms'] / max(ours[1]['p99_ms'], 0.1):.1f}x"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1_000)
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.batch))
