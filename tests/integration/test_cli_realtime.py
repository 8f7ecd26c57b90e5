"""`streamops realtime …` against a real embedded realtime server (uvicorn + python-socketio)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import httpx
import pytest
from click.testing import CliRunner

from backends.runtime import BackendHost
from backends.settings import RealtimeSettings, Settings
from console.cli import cli
from tests.support import wait_for

DEMO = "your-session-id"


@pytest.fixture(scope="module")
def host() -> Iterator[BackendHost]:
    settings = Settings(realtime=RealtimeSettings(page_delay_ms=0, arrival_interval_seconds=0.05))
    with BackendHost(settings, only=["realtime"]) as running:
        yield running


@pytest.fixture
def url(host: BackendHost) -> str:
    assert host.endpoints.realtime
    return host.endpoints.realtime


def run(url: str, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, ["realtime", *args, "--url", url])
    assert result.exit_code == code, result.output
    return result.output


def test_sessions_providers_and_health(url: str) -> None:
    created = json.loads(
        run(url, "create-session", "--provider", "microsoft", "--agent-id", "a-1", "--json")
    )
    sid = created["session_id"]
    assert created["provider"] == "microsoft" and created["agent_id"] == "a-1"
    assert created["stream_types"] == ["outlook_messages", "outlook_events", "contacts", "files"]
    listed = json.loads(run(url, "sessions", "--json"))
    assert {DEMO, sid} <= {s["session_id"] for s in listed["sessions"]}
    table = run(url, "sessions")
    assert DEMO in table and "google" in table
    assert json.loads(run(url, "session", sid, "--json"))["status"] == "active"
    assert "agent_id" in run(url, "session", sid)

    providers = json.loads(run(url, "providers", "--json"))
    gmail = next(t for t in providers["stream_types"] if t["stream_type"] == "gmail_messages")
    assert gmail["filters"] == ["query", "label_ids", "include_spam_trash"]
    assert "outlook_events" in run(url, "providers")
    health = json.loads(run(url, "health", "--json"))
    assert set(health) >= {"active_connections", "events_emitted"}


def test_start_status_list_and_stop_streams(url: str) -> None:
    refused = CliRunner().invoke(cli, ["realtime", "start-stream", DEMO, "outlook", "--url", url])
    assert refused.exit_code == 1  # the demo session is google's: outlook is not its type
    assert refused.output.startswith("error: 400 STREAM_CONFIG_ERROR: ")

    started = json.loads(
        run(
            url,
            "start-stream",
            DEMO,
            "gmail",
            "--max-results",
            "5",
            "--batch-size",
            "2",
            "--filter",
            'query="is:unread"',
            "--filter",
            "label_ids=INBOX",
            "--real-time",
            "--rate-limit",
            "1000",
            "--json",
        )
    )
    stream_id = started["stream_id"]
    assert started["stream_type"] == "gmail_messages"
    assert started["configuration"]["filters"] == {"query": "is:unread", "label_ids": ["INBOX"]}
    assert started["configuration"]["rate_limit_per_minute"] == 1000

    again = CliRunner().invoke(cli, ["realtime", "start-stream", DEMO, "gmail", "--url", url])
    assert again.exit_code == 1 and "409 STREAM_ALREADY_ACTIVE" in again.output

    wait_for(lambda: json.loads(run(url, "status", stream_id, "--json"))["items_streamed"] >= 5)
    status = run(url, "status", stream_id)
    assert "configuration.stream_type" in status and "active" in status
    listed = json.loads(run(url, "streams", "--json"))
    assert listed["streams"][stream_id]["status"] == "active"
    assert "active connections" in run(url, "streams")

    assert run(url, "stop-stream", stream_id).strip() == f"{stream_id} stopped"
    assert json.loads(run(url, "status", stream_id, "--json"))["status"] == "stopped"
    missing = CliRunner().invoke(cli, ["realtime", "stop-stream", "stream-nope", "--url", url])
    assert missing.exit_code == 1
    assert missing.output.strip() == "error: 404 STREAM_NOT_FOUND: Stream ID not found"


def start_once_subscribed(host: BackendHost, url: str, stream_type: str) -> threading.Thread:
    """Start a short stream as soon as a Socket.IO client has connected (and subscribed)."""

    def start() -> None:
        assert host.realtime is not None
        service = host.realtime.service
        wait_for(lambda: bool(service.connected_sids()), timeout=20)
        threading.Event().wait(0.5)  # the client subscribes right after connecting
        response = httpx.post(
            f"{url}/api/stream/start",
            json={"session_id": DEMO, "stream_type": stream_type, "max_results": 4},
        )
        assert response.status_code == 200, response.text

    thread = threading.Thread(target=start, daemon=True)
    thread.start()
    return thread


def test_listen_prints_events_live(host: BackendHost, url: str) -> None:
    starter = start_once_subscribed(host, url, "files")
    result = CliRunner().invoke(
        cli,
        [
            "realtime",
            "listen",
            DEMO,
            "--type",
            "files",
            "--max-events",
            "4",
            "--json",
            "--url",
            url,
        ],
    )
    starter.join(10)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    events = [json.loads(line) for line in lines]
    assert len(events) == 4
    assert {e["event_type"] for e in events} == {"data_update"}
    assert {e["data"]["data_type"] for e in events} == {"files_file"}
    assert all(e["session_id"] == DEMO for e in events)
    assert f"subscribed: {DEMO} files" in result.stderr

    starter = start_once_subscribed(host, url, "contacts")
    human = CliRunner().invoke(
        cli, ["realtime", "listen", DEMO, "--type", "contacts", "--max-events", "2", "--url", url]
    )
    starter.join(10)
    assert human.exit_code == 0, human.output
    lines = human.stdout.splitlines()
    assert len(lines) == 2 and all(" data_update  contacts_contact " in line for line in lines)


def test_listen_errors(url: str) -> None:
    unknown = CliRunner().invoke(cli, ["realtime", "listen", "nope", "--url", url])
    assert unknown.exit_code == 1
    assert unknown.stderr.strip() == "error: SESSION_NOT_FOUND: Invalid session ID"
    bad_type = CliRunner().invoke(cli, ["realtime", "listen", DEMO, "--type", "mail", "--url", url])
    assert bad_type.exit_code == 2 and "unknown stream type 'mail'" in bad_type.output
    bad_filter = CliRunner().invoke(
        cli, ["realtime", "start-stream", DEMO, "gmail", "--filter", "query", "--url", url]
    )
    assert bad_filter.exit_code == 2 and "not key=value" in bad_filter.output


def test_url_from_the_environment(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMOPS_REALTIME_URL", url)
    result = CliRunner().invoke(cli, ["realtime", "health", "--json"])
    assert result.exit_code == 0, result.output
    monkeypatch.delenv("STREAMOPS_REALTIME_URL")
    monkeypatch.setenv("STREAMOPS_REALTIME__URL", url)  # the config's realtime.url
    assert CliRunner().invoke(cli, ["realtime", "health"]).exit_code == 0


def test_unreachable_server_is_one_line_on_stderr() -> None:
    result = CliRunner().invoke(cli, ["realtime", "sessions", "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: UNREACHABLE: Cannot reach http://127.0.0.1:9")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
