"""The retail API over a real socket: every endpoint, its errors and its rate limits.

The server is the embedded `BackendHost`; requests go through httpx over loopback,
as any client written from the spec would send them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from backends.common.clock import ManualClock
from backends.runtime import BackendHost
from backends.settings import Settings
from tests.support import assert_accounted, wait_for


@pytest.fixture
def host() -> Iterator[BackendHost]:
    with BackendHost(Settings()) as running:
        yield running


@pytest.fixture
def manual_host() -> Iterator[tuple[BackendHost, ManualClock]]:
    clock = ManualClock()
    with BackendHost(Settings(), clock=clock) as running:
        yield running, clock


@pytest.fixture
def api(host: BackendHost) -> Iterator[httpx.Client]:
    assert host.endpoints.retail
    with httpx.Client(base_url=host.endpoints.retail, timeout=10) as client:
        yield client


@pytest.fixture
def manual_api(manual_host: tuple[BackendHost, ManualClock]) -> Iterator[httpx.Client]:
    url = manual_host[0].endpoints.retail
    assert url
    with httpx.Client(base_url=url, timeout=10) as client:
        yield client


def test_start_status_statistics_stop(api: httpx.Client) -> None:
    started = api.post("/stream/start", json={"emit_interval_ms": 20, "burst": 50})
    assert started.status_code == 200, started.text
    body = started.json()
    assert body["success"] is True and body["message"] == "Event streaming started"
    assert body["operation_id"].startswith("streaming_")
    assert body["started_at"].endswith("Z")

    wait_for(lambda: api.get("/stream/status").json()["events_sent"] >= 200)
    status = api.get("/stream/status").json()
    assert status["is_streaming"] is True and status["status"] == "running"
    assert status["uptime_seconds"] > 0 and status["events_per_second"] > 0
    assert status["last_event_time"].endswith("Z")

    again = api.post("/stream/start", json={})
    assert again.status_code == 409
    assert again.json() == {"detail": "Streaming already active"}

    stopped = api.post("/stream/stop")
    assert stopped.status_code == 200
    assert stopped.json() == {
        "success": True,
        "message": "Event streaming stopped",
        "operation_id": body["operation_id"],
    }
    stats = api.get("/stream/statistics").json()
    assert_accounted(stats)
    assert stats["events_in_flight"] == 0
    assert stats["events_generated"] == stats["events_sent_successfully"] > 0
    assert sum(stats["event_type_counts"].values()) == stats["events_generated"]
    assert stats["batches_sent"] >= stats["events_generated"] // 256
    assert api.get("/stream/status").json()["status"] == "stopped"

    no_session = api.post("/stream/stop")
    assert no_session.status_code == 400
    assert no_session.json() == {"detail": "No active streaming session"}


def test_event_type_filter_and_unknown_types(api: httpx.Client) -> None:
    bad = api.post("/stream/start", json={"event_types": ["receipt_created", "teleport"]})
    assert bad.status_code == 400
    assert "teleport" in bad.json()["detail"]
    assert api.get("/stream/status").json()["is_streaming"] is False

    wanted = ["receipt_created", "inventory_updated"]
    ok = api.post(
        "/stream/start", json={"emit_interval_ms": 10, "burst": 100, "event_types": wanted}
    )
    assert ok.status_code == 200
    wait_for(lambda: api.get("/stream/statistics").json()["events_generated"] >= 300)
    api.post("/stream/stop")
    counts = api.get("/stream/statistics").json()["event_type_counts"]
    assert set(counts) == set(wanted)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"burst": 0}, "burst"),
        ({"emit_interval_ms": "soon"}, "emit_interval_ms"),
        ({"duration_minutes": -1}, "duration_minutes"),
        ({"bursts": 5}, "bursts"),
    ],
)
def test_start_validation_errors_are_400_with_detail(
    api: httpx.Client, body: dict[str, Any], fragment: str
) -> None:
    response = api.post("/stream/start", json=body)
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert isinstance(detail, str) and fragment in detail


def test_malformed_json_is_400(api: httpx.Client) -> None:
    response = api.post(
        "/stream/start", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert isinstance(response.json()["detail"], str)


def test_recent_events(api: httpx.Client) -> None:
    assert api.get("/stream/events/recent").json()["count"] == 0
    api.post("/stream/start", json={"emit_interval_ms": 10, "burst": 60})
    wait_for(lambda: api.get("/stream/statistics").json()["events_generated"] >= 150)
    api.post("/stream/stop")
    recent = api.get("/stream/events/recent", params={"limit": 50}).json()
    assert recent["count"] == 50 == len(recent["events"])
    first = recent["events"][0]
    for key in ("timestamp", "event_type", "trace_id", "payload", "ingest_timestamp"):
        assert key in first
    stamps = [e["ingest_timestamp"] for e in recent["events"]]
    assert stamps == sorted(stamps, reverse=True)
    assert api.get("/stream/events/recent").json()["count"] == 100
    for limit in (0, 101, "x"):
        response = api.get("/stream/events/recent", params={"limit": limit})
        assert response.status_code == 400, limit
        assert "limit" in response.json()["detail"]


def test_config_read_update_and_conflict(api: httpx.Client) -> None:
    config = api.get("/stream/config").json()
    assert config["realtime"]["emit_interval_ms"] == 500
    assert config["realtime"]["burst"] == 100
    assert config["realtime"]["max_batch_size"] == 256
    assert config["realtime"]["circuit_breaker_enabled"] is True
    assert config["stream"]["hub"] == "retail-events"
    assert len(config["available_event_types"]) == 15

    update = api.put("/stream/config", json={"emit_interval_ms": 15, "burst": 40})
    assert update.json() == {
        "success": True,
        "message": "Streaming configuration updated successfully",
    }
    realtime = api.get("/stream/config").json()["realtime"]
    assert (realtime["emit_interval_ms"], realtime["burst"]) == (15, 40)

    assert api.put("/stream/config", json={"burst": -3}).status_code == 400
    assert api.put("/stream/config", json={"sink": "carrier-pigeon"}).status_code == 400

    assert api.post("/stream/start", json={}).status_code == 200
    conflict = api.put("/stream/config", json={"burst": 10})
    assert conflict.status_code == 409
    assert conflict.json() == {"detail": "Cannot update configuration while streaming is active"}
    api.post("/stream/stop")


def test_event_types_health_and_sink_test(api: httpx.Client) -> None:
    types = api.get("/stream/event-types").json()
    assert types["count"] == 15 == len(set(types["event_types"]))
    assert types["description"] == "Available event types for real-time streaming"

    health = api.get("/stream/health").json()
    assert health["status"] == "healthy"
    assert set(health["checks"]) >= {"streaming_task", "azure_config", "statistics"}
    assert health["checks"]["streaming_task"]["status"] == "inactive"
    assert health["checks"]["azure_config"]["status"] == "not_configured"

    tested = api.post("/stream/test").json()
    assert tested["success"] is True
    assert tested["response_time_ms"] >= 0
    assert tested["details"]["sink"] == "memory"


def test_eventhub_without_connection_string_is_400(api: httpx.Client) -> None:
    assert api.put("/stream/config", json={"sink": "eventhub"}).status_code == 200
    started = api.post("/stream/start", json={})
    assert started.status_code == 400
    assert "connection string" in started.json()["detail"].lower()
    tested = api.post("/stream/test").json()
    assert tested["success"] is False
    assert tested["message"].startswith("Connection test failed")
    assert "exception_type" in tested["details"]
    health = api.get("/stream/health").json()
    assert health["status"] == "degraded"


def test_disruption_lifecycle(api: httpx.Client) -> None:
    created = api.post(
        "/disruption/create",
        json={
            "disruption_type": "truck_breakdown",
            "target_id": 5,
            "severity": 0.7,
            "duration_minutes": 30,
            "product_ids": None,
        },
    )
    assert created.status_code == 200, created.text
    body = created.json()
    assert body["success"] is True
    assert body["message"] == "Created truck_breakdown disruption for target 5"
    assert body["disruption_id"].startswith("disruption_")
    assert body["active_until"].endswith("Z")

    listed = api.get("/disruption/list").json()
    assert listed["count"] == 1
    item = listed["disruptions"][0]
    assert item["disruption_id"] == body["disruption_id"]
    assert item["type"] == "truck_breakdown" and item["target_id"] == 5
    assert item["severity"] == 0.7 and item["status"] == "active"
    assert 29 < item["time_remaining_minutes"] <= 30
    assert item["events_affected"] == 0

    cancelled = api.delete(f"/disruption/{body['disruption_id']}")
    assert cancelled.json() == {
        "success": True,
        "message": f"Cancelled disruption {body['disruption_id']}",
        "operation_id": body["disruption_id"],
    }
    assert api.delete(f"/disruption/{body['disruption_id']}").status_code == 404
    assert api.delete("/disruption/disruption_nope00").status_code == 404
    assert api.get("/disruption/list").json()["count"] == 0

    for target in (1, 2, 3):
        api.post(
            "/disruption/create",
            json={
                "disruption_type": "inventory_shortage",
                "target_id": target,
                "severity": 0.5,
                "duration_minutes": 15,
            },
        )
    assert api.post("/disruption/clear-all").json() == {
        "success": True,
        "message": "Cleared 3 active disruptions",
    }
    assert api.get("/disruption/list").json()["count"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {
            "disruption_type": "alien_invasion",
            "target_id": 1,
            "severity": 0.5,
            "duration_minutes": 5,
        },
        {"disruption_type": "dc_outage", "target_id": 1, "severity": 1.5, "duration_minutes": 5},
        {"disruption_type": "dc_outage", "target_id": 1, "severity": -0.1, "duration_minutes": 5},
        {
            "disruption_type": "dc_outage",
            "target_id": 99999,
            "severity": 0.5,
            "duration_minutes": 5,
        },
        {"disruption_type": "dc_outage", "target_id": 1, "severity": 0.5, "duration_minutes": 0},
        {"disruption_type": "dc_outage", "severity": 0.5, "duration_minutes": 5},
    ],
)
def test_bad_disruptions_are_400(api: httpx.Client, body: dict[str, Any]) -> None:
    response = api.post("/disruption/create", json=body)
    assert response.status_code == 400, response.text
    assert isinstance(response.json()["detail"], str)


def test_disruption_effect_is_counted_while_streaming(api: httpx.Client) -> None:
    created = api.post(
        "/disruption/create",
        json={
            "disruption_type": "inventory_shortage",
            "target_id": 1,
            "severity": 1.0,
            "duration_minutes": 10,
        },
    ).json()
    api.post("/stream/start", json={"emit_interval_ms": 5, "burst": 500})

    def affected() -> int:
        items = api.get("/disruption/list").json()["disruptions"]
        return items[0]["events_affected"] if items else 0

    wait_for(lambda: affected() > 0, timeout=20)
    api.post("/stream/stop")
    assert created["disruption_id"]


def test_rate_limits(manual_api: httpx.Client) -> None:
    for _ in range(5):
        assert manual_api.post("/stream/start", json={"emit_interval_ms": 1000}).status_code == 200
        assert manual_api.post("/stream/stop").status_code == 200
    limited = manual_api.post("/stream/start", json={})
    assert limited.status_code == 429
    assert limited.json() == {"detail": "Rate limit exceeded. Try again later."}
    assert int(limited.headers["Retry-After"]) >= 1

    for _ in range(10):
        assert manual_api.post("/stream/test").status_code == 200
    assert manual_api.post("/stream/test").status_code == 429

    body = {
        "disruption_type": "weather_delay",
        "target_id": 1,
        "severity": 0.2,
        "duration_minutes": 5,
    }
    for _ in range(20):
        assert manual_api.post("/disruption/create", json=body).status_code == 200
    assert manual_api.post("/disruption/create", json=body).status_code == 429


def test_rate_limit_window_slides(
    manual_host: tuple[BackendHost, ManualClock], manual_api: httpx.Client
) -> None:
    _, clock = manual_host
    for _ in range(10):
        manual_api.post("/stream/test")
    assert manual_api.post("/stream/test").status_code == 429
    clock.advance(61)
    assert manual_api.post("/stream/test").status_code == 200


def test_duration_auto_stop(
    manual_host: tuple[BackendHost, ManualClock], manual_api: httpx.Client
) -> None:
    _, clock = manual_host
    manual_api.post(
        "/stream/start", json={"emit_interval_ms": 20, "burst": 10, "duration_minutes": 1}
    )
    wait_for(lambda: manual_api.get("/stream/statistics").json()["events_generated"] > 0)
    assert manual_api.get("/stream/status").json()["is_streaming"] is True
    clock.advance(61)
    wait_for(lambda: manual_api.get("/stream/status").json()["is_streaming"] is False)
    assert manual_api.get("/stream/status").json()["status"] == "stopped"


def test_openapi_documents(api: httpx.Client, host: BackendHost) -> None:
    root = host.endpoints.retail.removesuffix("/api")  # type: ignore[union-attr]
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert httpx.get(root + path).status_code == 200, path
    spec = httpx.get(root + "/openapi.json").json()
    for path in ("/api/stream/start", "/api/stream/statistics", "/api/disruption/{disruption_id}"):
        assert path in spec["paths"]


def test_unknown_route_is_404_detail(api: httpx.Client) -> None:
    response = api.get("/stream/nope")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}
