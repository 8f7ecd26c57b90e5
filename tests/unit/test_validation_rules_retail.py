"""The built-in retail rule set against the real generator: clean, disrupted, malformed."""

from __future__ import annotations

import io
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest

from backends.common.clock import ManualClock
from backends.retail.disruptions import DisruptionManager
from backends.retail.generator import RetailGenerator
from backends.retail.models import DisruptionCreate
from backends.retail.world import World
from backends.validation import check, load_rules, retail_rules
from backends.validation.report import ValidationReport

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "rules" / "retail.toml"


class Sim:
    def __init__(self, seed: int = 3) -> None:
        self.clock = ManualClock(datetime(2024, 1, 15, 10, 30, tzinfo=UTC))
        world = World.build(random.Random(seed))
        self.manager = DisruptionManager(world=world, clock=self.clock, rng=random.Random(seed))
        self.generator = RetailGenerator(
            world=world, clock=self.clock, rng=random.Random(seed + 1), disruptions=self.manager
        )

    def events(self, n: int) -> list[dict[str, Any]]:
        return self.generator.generate(n)

    def disrupt(self, kind: str, target: int) -> None:
        self.manager.create(
            DisruptionCreate(
                disruption_type=kind, target_id=target, severity=0.9, duration_minutes=60
            )
        )


def frame(events: list[dict[str, Any]]) -> pl.DataFrame:
    data = b"\n".join(orjson.dumps(e) for e in events)
    return pl.read_ndjson(io.BytesIO(data), infer_schema_length=None)


def validate(sim: Sim, events: list[dict[str, Any]]) -> ValidationReport:
    return check(frame(events), rules=retail_rules(), clock=sim.clock)


def test_a_healthy_stream_passes_every_rule() -> None:
    sim = Sim()
    report = validate(sim, sim.events(30_000))
    assert report.issues == []
    assert report.summary.rules_total == len(retail_rules()) >= 40


@pytest.mark.parametrize("kind", ["inventory_shortage", "dc_outage"])
def test_disruptions_are_flagged_low_or_medium_only(kind: str) -> None:
    sim = Sim()
    sim.events(20_000)
    for target in (1, 2, 3):
        sim.disrupt(kind, target)
    report = validate(sim, sim.events(80_000))
    names = {r.name for r in report.issues}
    assert names, "a disruption left no trace"
    assert {r.severity for r in report.issues} <= {"low", "medium"}
    assert report.failed_at("high") == []
    if kind == "inventory_shortage":
        assert "no shortage write-downs (inventory_shortage)" in names
        shortage = next(r for r in report.issues if r.name.startswith("no shortage"))
        assert {s.value for s in shortage.samples} == {"SHORTAGE"}
    assert "stockouts at most 0.08% of events" in names


def test_malformed_messages_fail_structural_rules() -> None:
    sim = Sim()
    events = sim.events(5_000)
    receipt = next(i for i, e in enumerate(events) if e["event_type"] == "receipt_created")
    events[receipt]["payload"]["total"] = "abc"
    events[10]["event_type"] = "receipt_exploded"
    del events[20]["trace_id"]
    events[30]["ingest_timestamp"] = "last tuesday"
    line = next(i for i, e in enumerate(events) if e["event_type"] == "receipt_line_added")
    del events[line]["payload"]["quantity"]
    events[40]["trace_id"] = events[41]["trace_id"]
    report = validate(sim, events)
    failed = {r.name: r for r in report.issues}
    assert failed["numeric payload fields are numbers"].samples[0].offset == receipt
    assert failed["event_type is known"].samples[0].value == "receipt_exploded"
    assert failed["trace_id present"].samples[0].offset == 20
    assert failed["ingest_timestamp is ISO 8601"].samples[0].value == "last tuesday"
    [missing] = failed["receipt_line_added: required payload fields"].samples
    assert (missing.offset, missing.value) == (line, ["payload.quantity"])
    assert failed["numeric payload fields are numbers"].samples[0].value == {"payload.total": "abc"}
    assert failed["trace_id unique"].samples[0].offset == 41
    assert {r.severity for r in report.failed_at("high")} <= {"high", "critical"}
    assert len(report.failed_at("high")) == 6


def test_a_payload_that_is_not_an_object_is_critical() -> None:
    sim = Sim()
    events = sim.events(500)
    events[3]["payload"] = "oops"
    report = validate(sim, events)
    assert "payload is an object" in {r.name for r in report.failed_at("critical")}


def test_stale_events_fail_freshness_with_low_severity() -> None:
    sim = Sim()
    events = sim.events(1_000)
    sim.clock.advance(3600)
    report = validate(sim, events)
    [stale] = report.issues
    assert (stale.name, stale.severity) == ("newest event at most 15 min old", "low")


def test_the_example_rule_file_parses_and_runs() -> None:
    rules = load_rules(EXAMPLE)
    sim = Sim()
    report = check(frame(sim.events(5_000)), rules=rules, clock=sim.clock)
    assert report.summary.rule_set == "retail-example"
    assert report.failed_at("high") == []
