"""Disruptions: validation, lifecycle, and what each one visibly does to the event stream.

Each effect is checked against a control run with the same seeds: the manager
draws from its own RNG, so the two worlds only differ by what the disruption does.
"""

from __future__ import annotations

import math
import random
import re
import statistics
from datetime import timedelta
from typing import Any

import orjson
import pytest

from backends.common.clock import ManualClock
from backends.common.errors import BadRequest, NotFound
from backends.retail.disruptions import Disruption, DisruptionManager
from backends.retail.generator import RetailGenerator
from backends.retail.models import DisruptionCreate, DisruptionInfo
from backends.retail.world import World

Event = dict[str, Any]


class Sim:
    def __init__(self, seed: int = 3, **sizes: int) -> None:
        self.world = World.build(random.Random(seed), **sizes)
        self.clock = ManualClock()
        self.manager = DisruptionManager(
            world=self.world, clock=self.clock, rng=random.Random(seed + 1)
        )
        self.generator = RetailGenerator(
            world=self.world,
            clock=self.clock,
            rng=random.Random(seed + 2),
            disruptions=self.manager,
        )

    def disrupt(
        self,
        kind: str,
        target: int,
        *,
        severity: float = 0.8,
        minutes: int = 30,
        product_ids: list[int] | None = None,
    ) -> Disruption:
        request = DisruptionCreate(
            disruption_type=kind,
            target_id=target,
            severity=severity,
            duration_minutes=minutes,
            product_ids=product_ids,
        )
        return self.manager.create(request)

    def run(self, n: int) -> list[Event]:
        return self.generator.generate(n)


def of(events: list[Event], kind: str, **fields: Any) -> list[dict[str, Any]]:
    return [
        e["payload"]
        for e in events
        if e["event_type"] == kind and all(e["payload"][k] == v for k, v in fields.items())
    ]


# -- validation and lifecycle ---------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "target", "severity", "product_ids", "message"),
    [
        ("earthquake", 1, 0.5, None, "Invalid disruption type 'earthquake'"),
        ("dc_outage", 1, 1.5, None, "Severity must be between 0.0 and 1.0"),
        ("dc_outage", 1, -0.1, None, "Severity"),
        ("dc_outage", 1, math.nan, None, "Severity"),
        ("dc_outage", 6, 0.5, None, "Unknown DC 6"),
        ("inventory_shortage", 51, 0.5, None, "Unknown store 51"),
        ("truck_breakdown", 41, 0.5, None, "Unknown truck 41"),
        ("truck_breakdown", 0, 0.5, None, "Unknown truck 0"),
        ("weather_delay", 99, 0.5, None, "Unknown store 99"),
        ("inventory_shortage", 5, 0.5, [1, 2001, 0], "Unknown product ids: [0, 2001]"),
    ],
)
def test_invalid_requests_are_bad_requests(
    kind: str, target: int, severity: float, product_ids: list[int] | None, message: str
) -> None:
    sim = Sim()
    with pytest.raises(BadRequest, match=re.escape(message)) as caught:
        sim.disrupt(kind, target, severity=severity, product_ids=product_ids)
    assert caught.value.status_code == 400
    assert sim.manager.active() == []


def test_create_names_and_times_the_disruption() -> None:
    sim = Sim()
    first = sim.disrupt("truck_breakdown", 5, severity=0.7, minutes=30)
    second = sim.disrupt("dc_outage", 5, severity=0.0, minutes=1)
    assert re.fullmatch(r"disruption_[a-z0-9]{6}", first.disruption_id)
    assert first.disruption_id != second.disruption_id
    assert first.active_until - first.created_at == timedelta(minutes=30)
    assert (first.type, first.target_id, first.severity, first.status) == (
        "truck_breakdown",
        5,
        0.7,
        "active",
    )
    assert sim.manager.active() == [first, second]


def test_info_counts_down_and_reports_what_was_affected() -> None:
    sim = Sim()
    disruption = sim.disrupt("inventory_shortage", 7, minutes=30, product_ids=[3, 4])
    sim.run(20_000)
    sim.clock.advance(17.5 * 60)
    info = sim.manager.info(disruption)
    assert isinstance(info, DisruptionInfo)
    assert info.model_dump() == {
        "disruption_id": disruption.disruption_id,
        "type": "inventory_shortage",
        "target_id": 7,
        "severity": 0.8,
        "created_at": "2024-01-15T10:30:00Z",
        "active_until": "2024-01-15T11:00:00Z",
        "time_remaining_minutes": 12.5,
        "events_affected": disruption.events_affected,
        "status": "active",
        "product_ids": [3, 4],
    }
    assert info.events_affected > 0


def test_disruptions_expire_by_themselves() -> None:
    sim = Sim()
    short = sim.disrupt("weather_delay", 1, minutes=5)
    long = sim.disrupt("weather_delay", 2, minutes=10)
    sim.clock.advance(5 * 60)
    assert sim.manager.active() == [long]
    assert short.status == "expired"
    assert sim.manager.info(short).time_remaining_minutes == 0
    with pytest.raises(NotFound, match="not found or already expired"):
        sim.manager.cancel(short.disruption_id)


def test_cancel_and_clear_all() -> None:
    sim = Sim()
    a = sim.disrupt("dc_outage", 1)
    b = sim.disrupt("dc_outage", 2)
    c = sim.disrupt("truck_breakdown", 3)
    assert sim.manager.cancel(b.disruption_id) is b
    assert b.status == "cancelled"
    assert sim.manager.active() == [a, c]
    with pytest.raises(NotFound, match=f"Disruption {b.disruption_id} not found") as caught:
        sim.manager.cancel(b.disruption_id)
    assert caught.value.status_code == 404
    assert sim.manager.clear_all() == 2
    assert (a.status, c.status) == ("cancelled", "cancelled")
    assert sim.manager.active() == []
    assert sim.manager.clear_all() == 0


# -- effects on the stream -------------------------------------------------------


def test_dc_outage_stops_departures_until_it_expires_and_its_stores_run_short() -> None:
    control, sim = Sim(), Sim()
    outage = sim.disrupt("dc_outage", 2, minutes=10)
    during = sim.run(60_000)
    assert len(of(control.run(60_000), "truck_departed", dc_id=2)) > 20
    assert of(during, "truck_departed", dc_id=2) == []
    assert len(of(during, "truck_departed")) > 50  # the other DCs carry on
    assert outage.events_affected >= 8  # every truck of DC 2 held at least once

    def waiting(s: Sim) -> int:
        return sum(len(s.world.backlog[store]) for store in s.world.dc_stores[1])

    assert waiting(sim) > 2 * waiting(control)

    sim.clock.advance(10 * 60)
    after = sim.run(10_000)
    assert outage.status == "expired"
    assert of(after, "truck_departed", dc_id=2)


def test_truck_breakdown_stops_that_truck_until_it_is_cancelled() -> None:
    control, sim = Sim(), Sim()
    breakdown = sim.disrupt("truck_breakdown", 3, minutes=60)
    during = sim.run(60_000)
    assert of(control.run(60_000), "truck_arrived", truck_id="TRK_00003")
    assert of(during, "truck_arrived", truck_id="TRK_00003") == []
    assert len(of(during, "truck_departed", truck_id="TRK_00003")) <= 1  # on the road, or not
    assert len(of(during, "truck_arrived")) > 50
    assert breakdown.events_affected == 1

    sim.manager.cancel(breakdown.disruption_id)
    after = sim.run(10_000)
    assert of(after, "truck_arrived", truck_id="TRK_00003") or of(
        after, "truck_departed", truck_id="TRK_00003"
    )


def test_inventory_shortage_drives_the_store_into_stockouts() -> None:
    control, sim = Sim(), Sim()
    shortage = sim.disrupt("inventory_shortage", 10, severity=0.5, minutes=60)
    during = sim.run(60_000)
    baseline = len(of(control.run(60_000), "stockout_detected", store_id=10))
    stockouts = len(of(during, "stockout_detected", store_id=10))
    assert stockouts > baseline + 20
    write_downs = [e for e in during if e["payload"].get("reason") == "SHORTAGE"]
    assert write_downs
    assert all(e["payload"]["store_id"] == 10 for e in write_downs)
    assert all(e["payload"]["quantity_delta"] < 0 for e in write_downs)
    assert all(e["correlation_id"] == shortage.disruption_id for e in write_downs)
    caused = [e for e in during if e["correlation_id"] == shortage.disruption_id]
    assert shortage.events_affected >= len(caused) > len(write_downs)


def test_inventory_shortage_of_named_products_empties_only_those() -> None:
    sim = Sim()
    products = [11, 12, 13]
    sim.disrupt("inventory_shortage", 4, severity=1.0, minutes=60, product_ids=products)
    events = sim.run(20_000)
    drained = {p["product_id"] for p in of(events, "inventory_updated", reason="SHORTAGE")}
    assert drained == set(products)
    assert {p["product_id"] for p in of(events, "stockout_detected", store_id=4)} >= set(products)
    assert [sim.world.stock[3][p - 1] for p in products] == [0, 0, 0]


def test_inventory_shortage_cuts_deliveries_to_the_store() -> None:
    sim = Sim()
    sim.disrupt("inventory_shortage", 6, severity=1.0, minutes=60)
    events = sim.run(100_000)
    assert of(events, "truck_arrived", store_id=6)
    assert of(events, "inventory_updated", store_id=6, reason="DELIVERY") == []
    assert of(events, "inventory_updated", store_id=7, reason="DELIVERY")


def _trip_lengths(events: list[Event], store_id: int) -> list[int]:
    """Events between each shipment's departure and its arrival at `store_id`."""
    departed: dict[str, int] = {}
    lengths = []
    for index, event in enumerate(events):
        payload = event["payload"]
        if event["event_type"] == "truck_departed":
            departed[payload["shipment_id"]] = index
        elif event["event_type"] == "truck_arrived" and payload["store_id"] == store_id:
            lengths.append(index - departed[payload["shipment_id"]])
    return lengths


def test_weather_delay_slows_arrivals_at_the_store_in_proportion_to_severity() -> None:
    # One DC with four stores, so each store sees many trucks.
    control, mild, severe = (Sim(stores=4, dcs=1, trucks=8) for _ in range(3))
    gentle = mild.disrupt("weather_delay", 2, severity=0.25, minutes=60)
    storm = severe.disrupt("weather_delay", 2, severity=1.0, minutes=60)
    runs = {"control": control.run(60_000), "mild": mild.run(60_000), "severe": severe.run(60_000)}
    trips = {name: _trip_lengths(events, 2) for name, events in runs.items()}
    assert all(len(t) >= 8 for t in trips.values()), trips
    base, slower, slowest = (statistics.mean(trips[k]) for k in ("control", "mild", "severe"))
    assert 1.15 * base < slower < 2.2 * base  # planned: 1.5x
    assert slowest > 2.2 * base  # planned: 3x
    assert slowest > 1.5 * slower
    assert gentle.events_affected >= len(trips["mild"])
    assert storm.events_affected >= len(trips["severe"])
    # Trips to the other stores keep their pace.
    others = statistics.mean(_trip_lengths(runs["severe"], 3))
    assert others < 1.3 * statistics.mean(_trip_lengths(runs["control"], 3))


def test_zero_severity_weather_changes_nothing() -> None:
    control, sim = Sim(), Sim()
    calm = sim.disrupt("weather_delay", 12, severity=0.0, minutes=60)
    assert sim.run(30_000) == control.run(30_000)
    assert calm.events_affected == 0


def test_disrupted_runs_are_deterministic_too() -> None:
    def stream() -> bytes:
        sim = Sim()
        for kind, target in (("dc_outage", 1), ("truck_breakdown", 9), ("weather_delay", 3)):
            sim.disrupt(kind, target, minutes=5)
        sim.disrupt("inventory_shortage", 4, severity=0.6, minutes=10)
        first = sim.run(20_000)
        sim.clock.advance(6 * 60)
        return orjson.dumps(
            [
                first,
                sim.run(20_000),
                [sim.manager.info(d).model_dump() for d in sim.manager.active()],
            ]
        )

    assert stream() == stream()
