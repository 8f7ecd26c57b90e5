"""Regenerate the README's screenshots: a live embedded backend, driven by keys.

.venv/bin/python scripts/screenshots.py [--out docs]
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from backends.retail.client import RetailClient
from backends.runtime import BackendHost
from backends.settings import Settings, UISettings
from console.app import StreamopsApp


async def shoot(out: Path) -> None:
    settings = Settings(ui=UISettings(refresh_ms=250))
    settings.retail.seed = 7
    host = BackendHost(settings)
    endpoints = host.start()
    try:
        assert endpoints.retail
        app = StreamopsApp(settings, endpoints)
        async with app.run_test(size=(120, 36)) as pilot:
            async with RetailClient(endpoints.retail) as client:
                await client.create_disruption(
                    disruption_type="inventory_shortage",
                    target_id=10,
                    severity=0.9,
                    duration_minutes=30,
                )
                await client.create_disruption(
                    disruption_type="truck_breakdown",
                    target_id=5,
                    severity=0.7,
                    duration_minutes=45,
                )
            await pilot.press("s")
            await pilot.pause(12)
            app.save_screenshot(str(out / "streams.svg"))
            await pilot.press("4")
            await pilot.pause(1.5)
            app.save_screenshot(str(out / "disruptions.svg"))
            await pilot.press("1", "x")
            await pilot.pause(0.5)
    finally:
        host.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    asyncio.run(shoot(args.out))


if __name__ == "__main__":
    main()
