"""The jobs server embedded by BackendHost: endpoints, generated secret, demo token, and
reports over the embedded retail service's events (the console's path)."""

from __future__ import annotations

import asyncio

import httpx

from backends.jobs.client import JobsClient
from backends.retail.client import RetailClient
from backends.runtime import BackendHost
from backends.settings import Settings


def test_embedded_jobs_with_demo_token_and_retail_events() -> None:
    settings = Settings()
    host = BackendHost(settings, only=["retail", "jobs"])
    endpoints = host.start()
    try:
        assert endpoints.jobs and endpoints.jobs.endswith("/production")
        assert endpoints.jobs_token and endpoints.jobs_issuer == "streamops"
        assert host.settings.jobs.secret and len(host.settings.jobs.secret) >= 32
        assert settings.jobs.secret is None  # the caller's settings are left alone

        async def go() -> dict:
            async with RetailClient(endpoints.retail) as retail:
                await retail.start(emit_interval_ms=20, burst=200)
                await asyncio.sleep(0.4)
                await retail.stop()
            async with JobsClient(endpoints.jobs, endpoints.jobs_token) as client:
                today = host.clock.now().date().isoformat()
                return await client.request(
                    "generate_report",
                    {
                        "start_date": today,
                        "end_date": today,
                        "format": "csv",
                        "report_type": "monthly",
                    },
                )

        data = asyncio.run(go())
        assert data["records"] >= 200
        assert data["records"] == len(host.jobs.capture)  # type: ignore[union-attr]
        body = httpx.get(data["url"]).text
        assert sum(int(line.split(",")[3]) for line in body.splitlines()[1:]) == data["records"]
    finally:
        host.stop()
