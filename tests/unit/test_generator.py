"""The retail generator: determinism, spec shapes, and a world whose events add up."""

from __future__ import annotations

import copy
import itertools
import random
import re
from collections import Counter, defaultdict
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backends.common.clock import ManualClock
from backends.retail.events import EVENT_TYPES, PAYLOAD_MODELS, EventEnvelope
from backends.retail.generator import MAX_TICKS_BASE, MAX_TICKS_PER_EVENT, RetailGenerator
from backends.retail.world import World

Event = dict[str, Any]
RECEIPT_ORDER = ["receipt_created", "receipt_line_added", "promotion_applied", "payment_processed"]
TIME_FIELDS = {
    "processing_time",
    "detection_time",
    "timestamp",
    "arrival_time",
    "departure_time",
    "operation_time",
}
SMALL = {"stores": 6, "dcs": 2, "trucks": 5, "products": 120, "customers": 300}


def make(seed: int = 1, **sizes: int) -> tuple[World, ManualClock, RetailGenerator]:
    rng = random.Random(seed)
    world = World.build(rng, **sizes)
    clock = ManualClock()
    return world, clock, RetailGenerator(world=world, clock=clock, rng=rng)


def cents(amount: float) -> int:
    return round(amount * 100)


@pytest.fixture(scope="module")
def run() -> tuple[World, list[list[int]], list[Event]]:
    """One long run of the default world (200k events), with the stock it started from."""
    world, clock, generator = make(seed=11)
    start_stock = copy.deepcopy(world.stock)
    events: list[Event] = []
    for _ in range(20):
        events += generator.generate(10_000)
        clock.advance(0.5)
    # The rest of a visit cut off at n already moved stock: count it in, as the next call would.
    return world, start_stock, events + generator._carry


def test_same_seed_and_clock_give_the_same_bytes() -> None:
    def stream(seed: int) -> bytes:
        _, clock, generator = make(seed)
        chunks = []
        for n in (1_000, 7, 5_000, 1):
            chunks.append(generator.generate(n))
            clock.advance(0.25)
        return orjson.dumps(chunks)

    assert stream(3) == stream(3)
    assert stream(3) != stream(4)


@settings(max_examples=25, deadline=None)
@given(chunks=st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=8))
def test_chunking_does_not_change_the_stream(chunks: list[int]) -> None:
    """Events cut off at n are carried over, so bursts concatenate to one long call."""
    _, _, whole = make(5, **SMALL)
    _, _, pieces = make(5, **SMALL)
    expected = whole.generate(sum(chunks))
    got: list[Event] = []
    for n in chunks:
        batch = pieces.generate(n)
        assert len(batch) == n
        got += batch
    assert orjson.dumps(got) == orjson.dumps(expected)


def test_carried_events_are_stamped_with_the_call_that_returns_them() -> None:
    _, clock, generator = make(2, **SMALL)
    generator.generate(3)  # ends mid-visit: the rest is carried
    clock.advance(61)
    later = generator.generate(50)
    assert {e["ingest_timestamp"] for e in later} == {"2024-01-15T10:31:01.000Z"}


def test_every_event_is_a_spec_envelope_with_a_spec_payload(
    run: tuple[World, list[list[int]], list[Event]],
) -> None:
    _, _, events = run
    counts = Counter(e["event_type"] for e in events)
    assert set(counts) == set(EVENT_TYPES)
    envelope_fields = set(EventEnvelope.model_fields)
    stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
    second = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
    key = re.compile(r"^(store|dc)_\d+$|^AD_[0-9a-f]{6}$")
    validated: Counter[str] = Counter()
    for event in events:
        kind, payload = event["event_type"], event["payload"]
        model = PAYLOAD_MODELS[kind]
        assert set(event) == envelope_fields
        assert set(payload) == set(model.model_fields), kind
        assert (event["schema_version"], event["source"]) == ("1.0", "retail-datagen")
        assert stamp.match(event["ingest_timestamp"])
        assert event["trace_id"].startswith("TR_20240115_")
        assert key.match(event["partition_key"])
        for name in TIME_FIELDS & set(payload):
            assert second.match(payload[name])
        if validated[kind] < 1_000:  # pydantic is slow: a thousand of each type
            EventEnvelope.model_validate(event, strict=True)
            model.model_validate(payload, strict=True)
            validated[kind] += 1
    assert len({e["trace_id"] for e in events}) == len(events)


def test_proportions_put_receipts_and_their_lines_first(
    run: tuple[World, list[list[int]], list[Event]],
) -> None:
    _, _, events = run
    share = {t: c / len(events) for t, c in Counter(e["event_type"] for e in events).items()}
    assert share["receipt_line_added"] > 0.2
    assert share["receipt_line_added"] + share["receipt_created"] > 0.3
    assert min(share.values()) > 0.0001


def test_receipts_add_up_and_share_their_receipt_id(
    run: tuple[World, list[list[int]], list[Event]],
) -> None:
    _, _, events = run
    by_receipt: dict[str, list[tuple[int, Event]]] = defaultdict(list)
    for index, event in enumerate(events):
        receipt_id = event["payload"].get("receipt_id")
        if receipt_id is not None:
            by_receipt[receipt_id].append((index, event))
    checked = 0
    for group in by_receipt.values():
        kinds = [e["event_type"] for _, e in group]
        if kinds[0] != "receipt_created" or group[0][0] > len(events) - 200:
            continue  # the run ends before this receipt does
        head = group[0][1]["payload"]
        lines = [e["payload"] for _, e in group if e["event_type"] == "receipt_line_added"]
        promos = [e["payload"] for _, e in group if e["event_type"] == "promotion_applied"]
        payments = [e["payload"] for _, e in group if e["event_type"] == "payment_processed"]
        assert kinds == sorted(kinds, key=RECEIPT_ORDER.index)
        assert head["item_count"] == len(lines) > 0
        assert [line["line_number"] for line in lines] == list(range(1, len(lines) + 1))
        for line in lines:
            assert cents(line["extended_price"]) == line["quantity"] * cents(line["unit_price"])
        assert cents(head["subtotal"]) == sum(cents(line["extended_price"]) for line in lines)
        discount = sum(cents(p["discount_amount"]) for p in promos)
        assert cents(head["total"]) == cents(head["subtotal"]) + cents(head["tax"]) - discount
        for promo in promos:
            promo_lines = [line for line in lines if line["promo_code"] == promo["promo_code"]]
            assert promo["product_ids"] == [line["product_id"] for line in promo_lines]
            assert (
                0
                < cents(promo["discount_amount"])
                <= sum(cents(line["extended_price"]) for line in promo_lines)
            )
        assert {line["promo_code"] for line in lines} - {None} == {p["promo_code"] for p in promos}
        assert [p["status"] for p in payments][-1] == "APPROVED"
        assert set(p["status"] for p in payments[:-1]) <= {"DECLINED"}
        assert all(p["amount"] == head["total"] for p in payments)
        assert payments[-1]["payment_method"] == head["tender_type"]
        assert len({e["correlation_id"] for _, e in group}) == 1
        assert {e["partition_key"] for _, e in group} == {f"store_{head['store_id']}"}
        checked += 1
    assert checked > 10_000


def test_a_visit_shares_one_correlation_id_from_entry_to_stock_moves(
    run: tuple[World, list[list[int]], list[Event]],
) -> None:
    _, _, events = run
    visits: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        if (event["correlation_id"] or "").startswith("SESSION_"):
            visits[event["correlation_id"]].append(event)
    complete = [v for v in visits.values() if v[0]["event_type"] == "customer_entered"]
    assert len(complete) > 10_000
    for visit in complete:
        store_ids = {e["payload"]["store_id"] for e in visit if "store_id" in e["payload"]}
        assert store_ids == {visit[0]["payload"]["store_id"]}
        kinds = [e["event_type"] for e in visit]
        assert kinds.count("customer_entered") == 1
        assert kinds.count("receipt_created") <= 1
        sales = [e["payload"] for e in visit if e["payload"].get("reason") == "SALE"]
        lines = [e["payload"] for e in visit if e["event_type"] == "receipt_line_added"]
        assert [(s["product_id"], -s["quantity_delta"]) for s in sales] == [
            (line["product_id"], line["quantity"]) for line in lines
        ]
        moves = [e["payload"] for e in visit if e["event_type"] == "customer_zone_changed"]
        for before, after in itertools.pairwise(moves):
            assert before["to_zone"] == after["from_zone"]
        if moves and lines:
            assert moves[-1]["to_zone"] == "CHECKOUT"


def test_stock_moves_add_up_to_the_world_and_trigger_reorders_and_stockouts(
    run: tuple[World, list[list[int]], list[Event]],
) -> None:
    world, start_stock, events = run
    stock = copy.deepcopy(start_stock)
    counts: Counter[str] = Counter()
    for event in events:
        kind, payload = event["event_type"], event["payload"]
        if kind in ("inventory_updated", "stockout_detected", "reorder_triggered"):
            s, p = payload["store_id"] - 1, payload["product_id"] - 1
            assert payload["dc_id"] is None
        if kind == "inventory_updated":
            stock[s][p] += payload["quantity_delta"]
            assert stock[s][p] >= 0
            expected_sign = {"SALE": -1, "DELIVERY": 1}[payload["reason"]]
            assert payload["quantity_delta"] * expected_sign > 0
            counts[payload["reason"]] += 1
        elif kind == "stockout_detected":
            assert stock[s][p] == 0 == payload["last_known_quantity"]
            counts[kind] += 1
        elif kind == "reorder_triggered":
            assert payload["current_quantity"] == stock[s][p] <= payload["reorder_point"]
            assert payload["reorder_point"] == world.reorder_point[p]
            assert payload["reorder_quantity"] == world.reorder_qty[p]
            counts[kind] += 1
    assert stock == world.stock
    assert counts["SALE"] > 40_000
    assert counts["DELIVERY"] > 100
    assert counts["reorder_triggered"] > 500
    assert counts["stockout_detected"] > 10


def test_trucks_carry_reorders_from_the_dc_to_its_stores(
    run: tuple[World, list[list[int]], list[Event]],
) -> None:
    world, _, events = run
    departed: dict[str, dict[str, Any]] = {}
    reordered: set[tuple[int, int]] = set()
    on_order: set[tuple[int, int]] = set()
    reorders_after_delivery = 0
    in_transit: dict[str, str] = {}
    arrivals = deliveries = 0
    current: str | None = None
    for event in events:
        kind, payload = event["event_type"], event["payload"]
        if kind == "reorder_triggered":
            pair = (payload["store_id"], payload["product_id"])
            assert pair not in on_order  # one open order per product and store
            reorders_after_delivery += pair in reordered
            reordered.add(pair)
            on_order.add(pair)
        elif kind == "truck_departed":
            assert payload["dc_id"] in world.dc_ids and payload["store_id"] is None
            assert payload["actual_unload_duration"] > 0
            assert payload["truck_id"] not in in_transit  # one trip at a time
            departed[payload["shipment_id"]] = payload
            in_transit[payload["truck_id"]] = payload["shipment_id"]
            assert event["partition_key"] == f"dc_{payload['dc_id']}"
        elif kind == "truck_arrived":
            assert payload["dc_id"] is None
            current = payload["shipment_id"]
            origin = departed.get(current)
            in_transit.pop(payload["truck_id"], None)
            if origin is not None:
                assert origin["truck_id"] == payload["truck_id"]
                assert world.store_dc[payload["store_id"] - 1] + 1 == origin["dc_id"]
                arrivals += 1
        elif kind == "inventory_updated" and payload["reason"] == "DELIVERY":
            assert event["correlation_id"] == current
            if current in departed:
                pair = (payload["store_id"], payload["product_id"])
                assert pair in on_order
                on_order.discard(pair)
                deliveries += 1
    assert arrivals > 100
    assert deliveries > 100
    assert reorders_after_delivery > 10  # a delivery closes the order; the next one can open


def test_stores_close_and_reopen_and_get_no_visitors_while_closed(
    run: tuple[World, list[list[int]], list[Event]],
) -> None:
    _, _, events = run
    closed: set[int] = set()
    operations = 0
    for event in events:
        kind, payload = event["event_type"], event["payload"]
        if kind == "store_closed":
            assert payload["store_id"] not in closed
            assert payload["operation_type"] == "closed"
            closed.add(payload["store_id"])
            operations += 1
        elif kind == "store_opened":
            assert payload["operation_type"] == "opened"
            closed.discard(payload["store_id"])
            operations += 1
        elif kind == "customer_entered":
            assert payload["store_id"] not in closed
    assert operations > 20


def test_filter_keeps_only_the_requested_types() -> None:
    _, _, generator = make(8, **SMALL)
    wanted = frozenset({"receipt_created", "inventory_updated"})
    events = generator.generate(5_000, wanted)
    assert len(events) == 5_000
    assert {e["event_type"] for e in events} == wanted
    assert generator.generate(100, frozenset()) == []
    assert generator.generate(100, frozenset({"no_such_event"})) == []
    assert generator.generate(0) == []


def test_filter_of_a_rare_type_stops_within_the_tick_bound() -> None:
    _, _, generator = make(8, **SMALL)
    n = 1_000
    events = generator.generate(n, frozenset({"store_opened"}))
    assert 0 < len(events) < n
    assert {e["event_type"] for e in events} == {"store_opened"}
    # The bound holds: a few hundred ticks per store_opened, far fewer than 1000 fit.
    assert len(events) < (MAX_TICKS_BASE + MAX_TICKS_PER_EVENT * n) / 100


def test_world_validates_its_sizes() -> None:
    with pytest.raises(ValueError, match="stores"):
        World.build(random.Random(0), stores=0)


def test_small_world_keeps_trucks_busy_when_dcs_outnumber_stores() -> None:
    _, _, generator = make(4, stores=2, dcs=5, trucks=4, products=30, customers=50)
    kinds = Counter(e["event_type"] for e in generator.generate(20_000))
    assert kinds["truck_departed"] > 0
    assert kinds["truck_arrived"] > 0
