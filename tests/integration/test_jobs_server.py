"""The jobs server over real sockets with a plain `websockets` client: the spec's wire."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from backends.common.clock import ManualClock
from backends.jobs.api import JobsBackend
from backends.settings import Settings
from tests.jobs_support import (
    final_for,
    make_settings,
    recv,
    recv_until,
    running_jobs,
    send,
    token,
    url_with,
)


@dataclass
class Env:
    clock: ManualClock
    settings: Settings
    backend: JobsBackend

    def url(self, tenant: str = "t1", **kw: Any) -> str:
        return url_with(self.backend, token(self.settings, self.clock, tenant, **kw))

    def open_gate(self) -> None:
        self.backend.server.resources.extra["gate"].set()


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    clock = ManualClock()
    settings = make_settings(tmp_path)
    async with running_jobs(settings, clock) as backend:
        yield Env(clock, settings, backend)


async def test_health_is_a_sync_response(env: Env) -> None:
    async with connect(env.url()) as ws:
        await send(ws, {"id": "h1", "action": "health", "payload": {}})
        message = await recv(ws)
    response = message["response"]
    assert message["type"] == "response"
    assert (response["request_id"], response["status"]) == ("h1", "success")
    assert response["data"] == {
        "status": "healthy",
        "timestamp": "2024-01-15T10:30:00Z",
        "version": env.backend.server.resources.version,
    }
    assert response["metadata"]["processing_time"] >= 0


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda e: e.backend.url, "UNAUTHORIZED: missing Authorization token"),
        (lambda e: url_with(e.backend, "junk"), "UNAUTHORIZED: malformed token"),
        (
            lambda e: url_with(e.backend, token(e.settings, e.clock, lifetime_seconds=-3600)),
            "UNAUTHORIZED: token expired",
        ),
        (
            lambda e: url_with(e.backend, token(e.settings, e.clock, issuer="other")),
            "UNAUTHORIZED: wrong issuer",
        ),
    ],
)
async def test_bad_token_closes_with_policy_violation(env: Env, make: Any, reason: str) -> None:
    async with connect(make(env)) as ws:
        with pytest.raises(ConnectionClosed):
            await recv(ws)
    assert ws.close_code == 1008
    assert ws.close_reason == reason


async def test_wrong_path_is_404(env: Env) -> None:
    with pytest.raises(InvalidStatus) as caught:
        async with connect(env.url().replace("/production", "/staging")):
            pass
    assert caught.value.response.status_code == 404


async def test_malformed_messages_get_errors_and_the_connection_lives(env: Env) -> None:
    async with connect(env.url()) as ws:
        await ws.send("{nope")
        bad_json = (await recv(ws))["error"]
        await send(ws, {"action": "health", "payload": {}})
        no_id = (await recv(ws))["error"]
        await send(ws, {"id": "x", "action": "launch_rockets", "payload": {}})
        unknown = (await recv(ws))["error"]
        await ws.send(b'["binary", "array"]')
        not_object = (await recv(ws))["error"]
        await send(ws, {"id": "h", "action": "health"})
        alive = await recv(ws)
    assert bad_json["code"] == "VALIDATION_ERROR" and bad_json["request_id"] is None
    assert bad_json["details"]["field"] == "message"
    assert (no_id["code"], no_id["details"]["field"]) == ("VALIDATION_ERROR", "id")
    assert unknown == {
        "request_id": "x",
        "code": "INVALID_ACTION",
        "message": "Unknown action 'launch_rockets'",
        "details": {
            "action": "launch_rockets",
            "available": [
                "boom",
                "generate_report",
                "health",
                "process_data",
                "wait",
                "subscribe",
                "cancel",
            ],
        },
    }
    assert not_object["code"] == "VALIDATION_ERROR"
    assert alive["response"]["status"] == "success"


async def test_validation_error_has_field_expected_received(env: Env) -> None:
    payload = {
        "start_date": "01/20/2024",
        "end_date": "2024-01-31",
        "format": "pdf",
        "report_type": "monthly",
    }
    async with connect(env.url()) as ws:
        await send(ws, {"id": "r", "action": "generate_report", "payload": payload})
        error = (await recv(ws))["error"]
    assert error["code"] == "VALIDATION_ERROR" and error["request_id"] == "r"
    assert error["details"] == {
        "field": "payload.start_date",
        "expected": "expected YYYY-MM-DD",
        "received": "01/20/2024",
    }


async def test_message_rate_limit_per_connection(env: Env) -> None:
    async with connect(env.url()) as ws:
        for i in range(101):
            await send(ws, {"id": f"m{i}", "action": "health"})
        replies = [await recv(ws) for _ in range(101)]
        limited = [m["error"] for m in replies if m["type"] == "error"]
        assert len(limited) == 1
        assert limited[0]["code"] == "RATE_LIMITED" and limited[0]["request_id"] == "m100"
        assert limited[0]["details"]["limit"] == 100 and limited[0]["details"]["retry_after"] > 0
        env.clock.advance(1.0)
        await send(ws, {"id": "after", "action": "health"})
        assert (await recv(ws))["response"]["request_id"] == "after"


async def test_ten_concurrent_requests_per_connection(env: Env) -> None:
    async with connect(env.url()) as ws:
        for i in range(10):
            await send(ws, {"id": f"j{i}", "action": "wait", "payload": {"gate": True}})
        await send(ws, {"id": "j10", "action": "wait", "payload": {"gate": True}})
        eleventh, before = await recv_until(ws, lambda m: m["type"] == "error")
        queued = [m for m in before if m["type"] == "response"]
        assert len(queued) == 10 and all(m["response"]["status"] == "queued" for m in queued)
        assert queued[0]["response"]["estimated_duration"] == 1.0
        assert eleventh["error"]["code"] == "RATE_LIMITED"
        assert eleventh["error"]["details"] == {"limit": 10, "active": 10}
        env.open_gate()
        results = 0
        while results < 10:
            message = await recv(ws)
            results += message["type"] == "result"
        await send(ws, {"id": "j11", "action": "wait", "payload": {"steps": 1}})
        assert (await recv(ws))["response"]["status"] == "queued"


async def test_payload_size_limit(env: Env) -> None:
    async with connect(env.url()) as ws:
        big = {"id": "big", "action": "health", "payload": {"blob": "x" * 1_048_576}}
        await send(ws, big)
        error = (await recv(ws))["error"]
        await send(ws, {"id": "ok", "action": "health", "payload": {"blob": "x" * 1000}})
        ok = await recv(ws)
    assert error["code"] == "VALIDATION_ERROR"
    assert error["details"]["expected"] == "at most 1048576 bytes"
    assert error["details"]["received"] > 1_048_576
    assert ok["response"]["request_id"] == "ok"


async def test_connection_rate_per_address(env: Env) -> None:
    url = env.url()
    for _ in range(100):
        async with connect(url):
            pass
    async with connect(url) as ws:
        error = (await recv(ws))["error"]
        with pytest.raises(ConnectionClosed):
            await recv(ws)
    assert error["code"] == "RATE_LIMITED" and error["details"]["limit"] == 100
    assert (ws.close_code, ws.close_reason) == (1013, "RATE_LIMITED: too many connections")
    env.clock.advance(60)
    async with connect(url) as ws:
        await send(ws, {"id": "h", "action": "health"})
        assert (await recv(ws))["type"] == "response"


async def test_job_outlives_its_connection_and_only_its_tenant_can_subscribe(env: Env) -> None:
    async with connect(env.url("t1")) as ws:
        await send(ws, {"id": "job-1", "action": "wait", "payload": {"gate": True, "steps": 4}})
        assert (await recv(ws))["response"]["status"] == "queued"
        first = await recv(ws)
        assert first["type"] == "progress" and first["progress"]["progress"] == 0
    async with connect(env.url("t2")) as other:
        await send(other, {"id": "s", "action": "subscribe", "payload": {"request_id": "job-1"}})
        assert (await recv(other))["error"] == {
            "request_id": "s",
            "code": "NOT_FOUND",
            "message": "No job 'job-1'",
            "details": {"request_id": "job-1"},
        }
    async with connect(env.url("t1", sub="someone-else")) as ws:
        await send(ws, {"action": "subscribe", "payload": {"request_id": "job-1"}})
        ack = (await recv(ws))["response"]
        assert ack["data"]["status"] == "running" and ack["data"]["action"] == "wait"
        replay = await recv(ws)
        assert replay == first  # the latest progress, then the rest
        env.open_gate()
        result, seen = await recv_until(ws, final_for("job-1"))
    assert [m["progress"]["progress"] for m in seen] == [25, 50, 75, 100]
    assert result["result"]["success"] is True
    assert result["result"]["data"] == {"steps": 4, "tenant": "t1"}
    assert result["result"]["metadata"]["handler"] == "wait"
    async with connect(env.url("t1")) as ws:
        await send(ws, {"id": "s2", "action": "subscribe", "payload": {"request_id": "job-1"}})
        assert (await recv(ws))["response"]["data"]["status"] == "succeeded"
        assert await recv(ws) == result  # the stored result
        env.clock.advance(env.settings.jobs.result_ttl_seconds)
        await send(ws, {"id": "s3", "action": "subscribe", "payload": {"request_id": "job-1"}})
        assert (await recv(ws))["error"]["code"] == "NOT_FOUND"


async def test_cancel_stops_a_running_job(env: Env) -> None:
    async with connect(env.url("t1")) as ws, connect(env.url("t2")) as other:
        await send(ws, {"id": "c1", "action": "wait", "payload": {"gate": True}})
        await recv_until(ws, lambda m: m["type"] == "progress")
        await send(other, {"id": "x", "action": "cancel", "payload": {"request_id": "c1"}})
        assert (await recv(other))["error"]["code"] == "NOT_FOUND"
        await send(ws, {"id": "k", "action": "cancel", "payload": {"request_id": "c1"}})
        ack, _ = await recv_until(ws, lambda m: m["type"] == "response")
        assert ack["response"]["data"]["status"] == "cancelled"
        result, _ = await recv_until(ws, final_for("c1"))
        assert result["result"]["success"] is False
        assert result["result"]["data"] == {"status": "cancelled"}
        job = env.backend.server.store.get("t1", "c1")
        assert job is not None and job.status == "cancelled"


async def test_timeout_internal_error_permission_duplicate(tmp_path: Path) -> None:
    clock = ManualClock()
    settings = make_settings(tmp_path, job_timeout_seconds=0.3)
    async with running_jobs(settings, clock) as backend:
        url = url_with(backend, token(settings, clock, permissions=["read"]))
        async with connect(url) as ws:
            await send(ws, {"id": "t", "action": "wait", "payload": {"steps": 100, "delay": 0.05}})
            timeout, _ = await recv_until(ws, final_for("t"))
            await send(ws, {"id": "b", "action": "boom"})
            boom, _ = await recv_until(ws, final_for("b"))
            await send(ws, {"id": "p", "action": "process_data", "payload": {}})
            denied = await recv(ws)
            await send(ws, {"id": "t", "action": "wait", "payload": {}})
            duplicate = await recv(ws)
    assert timeout["error"]["code"] == "TIMEOUT"
    assert timeout["error"]["details"] == {"timeout_seconds": 0.3, "handler": "wait"}
    assert boom["error"]["code"] == "INTERNAL_ERROR"
    assert "secret internals" not in orjson.dumps(boom).decode()
    assert denied["error"]["code"] == "UNAUTHORIZED"
    assert denied["error"]["details"] == {"required": "write", "granted": ["read"]}
    assert duplicate["error"]["code"] == "VALIDATION_ERROR"
    assert duplicate["error"]["details"]["field"] == "id"


def write_line_csv(data_dir: Path) -> None:
    """y = 2x + 1 exactly: a regression with a known answer."""
    data_dir.mkdir(parents=True, exist_ok=True)
    rows = "\n".join(f"{x},{2 * x + 1}" for x in range(50))
    (data_dir / "line.csv").write_text("x,target\n" + rows + "\n")


async def test_process_data_file_source_over_the_wire(env: Env) -> None:
    write_line_csv(Path(env.settings.jobs.data_dir or ""))
    payload = {
        "pipeline": "regression",
        "data_source": {"type": "file", "path": "line.csv"},
        "output": {"format": "csv", "destination": "runs"},
    }
    async with connect(env.url()) as ws:
        await send(ws, {"id": "pd", "action": "process_data", "payload": payload})
        result, seen = await recv_until(ws, final_for("pd"))
        await send(
            ws,
            {
                "id": "esc",
                "action": "process_data",
                "payload": {
                    **payload,
                    "data_source": {"type": "file", "path": "../../etc/passwd.csv"},
                },
            },
        )
        escape, _ = await recv_until(ws, final_for("esc"))
        await send(
            ws,
            {
                "id": "st",
                "action": "process_data",
                "payload": {**payload, "data_source": {"type": "stream", "stream_id": "nope"}},
            },
        )
        missing, _ = await recv_until(ws, final_for("st"))
    steps = [m["progress"]["metadata"]["current_step"] for m in seen if m["type"] == "progress"]
    assert list(dict.fromkeys(steps)) == [
        "data_ingestion",
        "preprocessing",
        "feature_engineering",
        "model_processing",
        "post_processing",
    ]
    data = result["result"]["data"]
    summary = data["summary"]
    assert summary["pipeline"] == "regression" and summary["total_records"] == 50
    assert summary["metrics"]["r2"] == pytest.approx(1.0)
    location = Path(data["output_location"])
    assert location.parent.parent == Path(env.settings.jobs.output_dir or "") / "runs"
    written = await asyncio.to_thread(location.read_text)
    assert written.splitlines()[0] == "x,target,prediction"
    async with httpx.AsyncClient() as http:
        download = await http.get(data["output_url"])
    assert download.status_code == 200 and download.text == written
    assert escape["error"]["code"] == "VALIDATION_ERROR"
    assert escape["error"]["details"]["field"] == "payload.data_source.path"
    assert missing["error"]["code"] == "NOT_FOUND"


async def test_unknown_file_url_is_404(env: Env) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(env.backend.server.http_base + "/files/nope/report.csv")
    assert response.status_code == 404


async def test_concurrent_jobs_interleave(env: Env) -> None:
    async with connect(env.url()) as ws:
        for i in range(5):
            await send(ws, {"id": f"w{i}", "action": "wait", "payload": {"steps": 3}})
        finals: dict[str, Any] = {}
        while len(finals) < 5:
            message = await recv(ws)
            if message["type"] == "result":
                finals[message["result"]["request_id"]] = message
    assert sorted(finals) == [f"w{i}" for i in range(5)]
    await asyncio.sleep(0)
