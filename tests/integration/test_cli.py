"""`streamops serve` as a real process, the spec's own sample against it, and the CLI commands."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from console.cli import cli
from tests.services import free_port
from tests.support import serve, wait_for

# Verbatim from retail-streaming.md, "SDK Examples / Python"; only the URL is substituted.
SPEC_PYTHON_SAMPLE = """
import requests

# Start streaming
response = requests.post('http://localhost:8000/api/stream/start', json={
    'emit_interval_ms': 1000,
    'burst': 50,
    'duration_minutes': 10
})
print(response.json())

# Get status
status = requests.get('http://localhost:8000/api/stream/status')
print(status.json())

# Stop streaming
stop = requests.post('http://localhost:8000/api/stream/stop')
print(stop.json())
"""


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    port = free_port()
    with serve(
        tmp_path,
        "--retail-port",
        str(port),
        "--export-port",
        str(free_port()),
        "--realtime-port",
        str(free_port()),
        "--jobs-port",
        str(free_port()),
    ) as (process, credentials):
        yield process, f"http://127.0.0.1:{port}/api", credentials


def test_serve_runs_the_spec_sample_and_stops_on_sigterm(
    served: tuple[subprocess.Popen[str], str, Path], tmp_path: Path
) -> None:
    process, url, credentials = served
    described = json.loads(credentials.read_text())
    assert described["retail"] == {"url": url}
    export = described["export"]
    assert {s["data_type"] for s in export["streams"]} == {"journal_entry", "identifier"}
    assert export["admin_key"]
    polled = httpx.get(
        f"{export['url']}/consume/{export['streams'][0]['consumer_key']}/poll",
        params={"cursor": "0", "limit": 5},
        headers={"X-API-Key": f"{export['api_key_id']}:{export['api_key_secret']}"},
    )
    assert polled.status_code == 200, polled.text
    assert set(polled.json()) == {"messages", "next_cursor", "has_more"}

    sample = SPEC_PYTHON_SAMPLE.replace("http://localhost:8000/api", url)
    run = subprocess.run(
        [sys.executable, "-c", sample], capture_output=True, text=True, timeout=60, check=True
    )
    lines = run.stdout.strip().splitlines()
    assert len(lines) == 3
    assert "'message': 'Event streaming started'" in lines[0]
    assert "'is_streaming': True" in lines[1]
    assert "'message': 'Event streaming stopped'" in lines[2]

    process.send_signal(signal.SIGTERM)
    assert process.wait(15) == 0
    output = process.stdout.read() if process.stdout else ""
    assert f"retail     {url}" in output
    assert output.rstrip().endswith("stopped")
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/stream/status")


def test_cli_commands_against_a_served_backend(
    served: tuple[subprocess.Popen[str], str, Path],
) -> None:
    _, url, _ = served
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(cli, [*args, "--url", url])
        assert result.exit_code == 0, result.output
        return result.output

    started = json.loads(run("stream", "start", "--burst", "40", "--interval-ms", "20", "--json"))
    assert started["success"] is True
    wait_for(lambda: json.loads(run("stream", "status", "--json"))["events_sent"] >= 120)
    assert "events_sent" in run("stream", "status")
    stats = json.loads(run("stream", "stats", "--json"))
    assert sum(stats["event_type_counts"].values()) == stats["events_generated"]
    assert "event types" in run("stream", "stats")
    events = json.loads(run("stream", "events", "--limit", "3", "--json"))
    assert events["count"] == 3
    assert "recent events" in run("stream", "events", "--limit", "3")

    again = runner.invoke(cli, ["stream", "start", "--url", url])
    assert again.exit_code == 1
    assert "409 Streaming already active" in again.output
    run("stream", "stop")

    assert "updated" in run("stream", "config", "--set", "burst=25")
    assert json.loads(run("stream", "config", "--json"))["realtime"]["burst"] == 25
    bad = runner.invoke(cli, ["stream", "config", "--set", "burst=lots", "--url", url])
    assert bad.exit_code == 2 and "burst" in bad.output
    assert json.loads(run("stream", "test", "--json"))["success"] is True

    created = json.loads(
        run("disrupt", "create", "dc_outage", "1", "--severity", "0.9", "--minutes", "5", "--json")
    )
    listed = json.loads(run("disrupt", "list", "--json"))
    assert [d["disruption_id"] for d in listed["disruptions"]] == [created["disruption_id"]]
    assert created["disruption_id"] in run("disrupt", "list")
    assert "Cancelled" in run("disrupt", "cancel", created["disruption_id"])
    missing = runner.invoke(cli, ["disrupt", "cancel", created["disruption_id"], "--url", url])
    assert missing.exit_code == 1 and missing.output.startswith("error: 404")
    run("disrupt", "create", "weather_delay", "2")
    assert "Cleared 1 active disruption" in run("disrupt", "clear", "--yes")


def test_unreachable_backend_is_a_clear_error() -> None:
    result = CliRunner().invoke(
        cli, ["stream", "status", "--url", f"http://127.0.0.1:{free_port()}/api"]
    )
    assert result.exit_code == 1
    assert "Cannot reach" in result.output
    assert "Traceback" not in result.output
