"""The retail event generator: a discrete simulation of a `World`, emitted as spec envelopes.

The world advances in *ticks*, not wall-clock time: each tick is one activity
(a customer visit, an ad impression, a store closing) plus whatever the
schedule holds for it (truck departures and arrivals, stores re-opening). So
its dynamics (stock draining, truck round trips) are the same whether the
service asks for 100 events every 500 ms or a million at once. The injected
clock only stamps events (read once per `generate()` call: `ingest_timestamp`
with millis, payload times to the second) and times disruptions, whose
effects therefore switch on and off between calls.

What is emitted, and why it is consistent:
- A visit: `customer_entered`; for app users (BLE) a ping at the entrance, then
  a `customer_zone_changed` into each zone of the basket (at most three) and
  the checkout, each with a `ble_ping_detected` half the time; for buyers
  `receipt_created` then its `receipt_line_added`s (item_count lines numbered
  1..n), a `promotion_applied` per promo code, `payment_processed` (a rare
  declined attempt first, then the approved one for `total`), then per line
  an `inventory_updated` SALE, with `stockout_detected` when stock reaches 0
  and `reorder_triggered` when it falls to the reorder point with no order
  open. Money is computed in cents: total = subtotal - discounts + tax (tax on
  the discounted amount). All of a visit shares `correlation_id` SESSION_...
- Reorders wait in the store's backlog until a truck of the store's DC loads
  them (`truck_departed`, dc_id set, correlation = shipment id); on
  `truck_arrived` (store_id set) each line is an `inventory_updated` DELIVERY.
  `actual_unload_duration` on a departure is how long the truck's previous
  unload really took (the estimate was on that arrival).
- `store_closed` / `store_opened` pairs (closed stores get no visits) and
  `ad_impression`s (correlation and partition key = the customer's ad id).

Partition keys are `store_N` for store events and `dc_N` for departures, so one
store's events stay ordered in one partition. Trace ids are
`TR_<date>_<generator token><sequence>`. Events of a visit cut off at `n` are
carried to the next call (re-stamped, and filtered by that call's types), so
every call returns exactly `n` and bursts concatenate to the same stream as
one long call. With an `event_types` filter the world still runs in full; a
call simulates at most `MAX_TICKS_BASE + MAX_TICKS_PER_EVENT * n` ticks (an
unfiltered call needs about n/9), which bounds its work to roughly 200 raw
events per requested one. Only a filter of rare types alone can hit that bound
and return fewer than `n`: store_opened comes about once per 330 ticks,
stockout_detected once per 220.

Hot path: plain dicts, one id counter, choice tables indexed by `getrandbits`,
disruption lookups cached per call. See `bench/generator.py`.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from backends.common.clock import Clock, iso_z
from backends.retail.disruptions import Disruption, DisruptionManager
from backends.retail.events import EVENT_TYPES
from backends.retail.world import POPULARITY_BITS, PROMOTIONS, ZONES, World, random_token

Event = dict[str, Any]
Emit = Callable[[str, dict[str, Any], str | None, str], None]

MAX_TICKS_BASE = 2_000
MAX_TICKS_PER_EVENT = 20

# Activity mix of a tick, as cumulative thresholds of one rng.random() draw:
# a visit (62%), an ad impression (37.7%), else a store closes (0.3%).
VISIT_BELOW = 0.62
AD_BELOW = 0.997
P_BUY = 0.85  # visitors who check out
P_PING = 0.5  # zone visits that also log a beacon ping
P_DECLINE = 0.02  # first card attempt declined, paid with another tender
MAX_ZONES = 3

# Durations in ticks (a tick is ~9 events).
TRANSIT_MIN, TRANSIT_SPAN = 150, 200
TURNAROUND_MIN, TURNAROUND_SPAN = 200, 300  # unload at the store and drive back to the DC
HOLD_RETRY = 25  # how often a held truck checks whether it may move
CLOSED_MIN, CLOSED_SPAN = 400, 800
TRUCK_CAPACITY = 120  # product lines per shipment
WEATHER_FACTOR = 2.0  # severity 1.0 triples a trip
DRAIN_RATE = 0.5  # shortage write-downs per tick at severity 1.0
UNLOAD_BASE, UNLOAD_PER_LINE, UNLOAD_MAX = 20, 2, 90  # minutes

_DEPART, _ARRIVE, _REOPEN = 0, 1, 2


def _table(bits: int, *weighted: tuple[Any, int]) -> tuple[Any, ...]:
    """A choice table of 2**bits slots, so `table[getrandbits(bits)]` draws by weight."""
    slots = [value for value, weight in weighted for _ in range(weight)]
    if len(slots) != 1 << bits:
        raise ValueError(f"weights sum to {len(slots)}, need {1 << bits}")
    return tuple(slots)


ITEM_COUNTS = _table(
    6,
    *((1, 6), (2, 8), (3, 9), (4, 9), (5, 8), (6, 7), (7, 5), (8, 4), (9, 3), (10, 2), (12, 2)),
    (15, 1),
)
QUANTITIES = _table(5, (1, 22), (2, 6), (3, 2), (4, 1), (6, 1))
GROUP_SIZES = _table(4, (1, 12), (2, 3), (3, 1))
TENDERS = _table(4, ("CREDIT_CARD", 7), ("DEBIT_CARD", 4), ("MOBILE_PAY", 3), ("CASH", 2))
SENSORS = ("SENSOR_ENTRANCE_A", "SENSOR_ENTRANCE_B")
RSSI = tuple(-42 - (k * 48) // 63 for k in range(64))
BEACONS = {  # four slots for getrandbits(2): beacon 1 covers the busy half of the zone
    zone: tuple(f"BEACON_{zone}_{k}" for k in (1, 2, 3, 1))
    for zone in (*ZONES, "ENTRANCE", "CHECKOUT")
}
# channel -> typical cost per impression in dollars
AD_COSTS = {"SOCIAL_MEDIA": 0.12, "SEARCH": 0.25, "DISPLAY": 0.04, "VIDEO": 0.2, "EMAIL": 0.01}
AD_CHANNELS = _table(
    4, ("SOCIAL_MEDIA", 6), ("SEARCH", 4), ("DISPLAY", 3), ("VIDEO", 2), ("EMAIL", 1)
)
AD_PRICES = {
    ch: tuple(round(c * (0.5 + k / 16), 2) for k in range(16)) for ch, c in AD_COSTS.items()
}
CAMPAIGNS = (
    "CAMP_WINTER_SALE",
    "CAMP_SPRING_FRESH",
    "CAMP_SUMMER_BBQ",
    "CAMP_BACK_TO_SCHOOL",
    "CAMP_HOLIDAY_GIFTS",
    "CAMP_LOYALTY_2X",
    "CAMP_WEEKLY_DEALS",
    "CAMP_NEW_STORE",
)
CREATIVES = ("CREATIVE_001", "CREATIVE_002", "CREATIVE_003", "CREATIVE_004")
DEVICES = _table(3, ("MOBILE", 5), ("DESKTOP", 2), ("TABLET", 1))


@dataclass(slots=True, eq=False)
class _Shipment:
    shipment_id: str
    store: int
    lines: list[tuple[int, int]]  # (product index, units)
    transit: int
    held: bool = False
    delayed: bool = False


class RetailGenerator:
    def __init__(
        self,
        *,
        world: World,
        clock: Clock,
        rng: random.Random,
        disruptions: DisruptionManager | None = None,
    ) -> None:
        self._world = world
        self._clock = clock
        self._rand = rng.random
        self._bits = rng.getrandbits
        self._disruptions = disruptions
        self._token = random_token(rng, 4)
        self._next_id = itertools.count(1_000_000).__next__  # decimal: formats 3x faster than hex
        self._next_order = itertools.count().__next__
        self._tick = 0
        self._schedule: list[tuple[int, int, int, int]] = []
        self._carry: list[Event] = []
        self._store_keys = [f"store_{s}" for s in world.store_ids]
        self._dc_keys = [f"dc_{d}" for d in world.dc_ids]
        self._truck_names = [f"TRK_{t:05d}" for t in world.truck_ids]
        self._prices = [cents / 100 for cents in world.price_cents]
        self._open_stores = [s for s, is_open in enumerate(world.store_open) if is_open]
        trucks = len(world.truck_ids)
        self._route_pos = [0] * trucks
        self._shipments: list[_Shipment | None] = [None] * trucks
        self._depart_held = [False] * trucks
        self._last_unload = [UNLOAD_BASE + int(self._rand() * 30) for _ in range(trucks)]
        for t in range(trucks):
            self._at(1 + int(self._rand() * (TRANSIT_MIN + TURNAROUND_MIN)), _DEPART, t)
        # Per-call context, set by generate().
        self._emit: Emit = _discard
        self._now_s = ""
        self._ymd = ""
        self._outages: dict[int, Disruption] = {}
        self._broken: dict[int, Disruption] = {}
        self._weather: dict[int, Disruption] = {}
        self._shortages: list[tuple[Disruption, int, list[int] | None]] = []

    def generate(self, n: int, event_types: frozenset[str] | None = None) -> list[Event]:
        """Advance the world until `n` events (of `event_types`, if given) came out."""
        if n <= 0 or (event_types is not None and event_types.isdisjoint(EVENT_TYPES)):
            return []
        ts = iso_z(self._clock.now(), millis=True)
        self._now_s = ts[:19] + "Z"
        self._ymd = ts[:10].replace("-", "")
        self._load_disruptions()
        out: list[Event] = []
        for event in self._carry:
            if event_types is None or event["event_type"] in event_types:
                event["ingest_timestamp"] = ts
                out.append(event)
        self._carry = []
        trace_prefix = f"TR_{self._ymd}_{self._token}"
        self._emit = _emitter(out.append, trace_prefix, ts, self._next_id, event_types)

        rand = self._rand
        schedule = self._schedule
        heappop = heapq.heappop
        visit, advertise, close_store = self._visit, self._ad_impression, self._close_store
        tick = self._tick
        limit = tick + MAX_TICKS_BASE + MAX_TICKS_PER_EVENT * n
        while len(out) < n and tick < limit:
            tick += 1
            self._tick = tick
            while schedule and schedule[0][0] <= tick:
                _, _, kind, index = heappop(schedule)
                if kind == _DEPART:
                    self._depart(index)
                elif kind == _ARRIVE:
                    self._arrive(index)
                else:
                    self._reopen(index)
            r = rand()
            if r < VISIT_BELOW:
                visit()
            elif r < AD_BELOW:
                advertise()
            else:
                close_store()
            if self._shortages:
                self._drain()
        self._emit = _discard
        if len(out) > n:
            self._carry = out[n:]
            del out[n:]
        return out

    # -- set-up helpers -------------------------------------------------------

    def _at(self, delay: int, kind: int, index: int) -> None:
        heapq.heappush(self._schedule, (self._tick + delay, self._next_order(), kind, index))

    def _load_disruptions(self) -> None:
        """Index the live disruptions by target once per call, so the hot path does dict gets."""
        self._outages, self._broken, self._weather, self._shortages = {}, {}, {}, []
        if self._disruptions is None:
            return
        for d in self._disruptions.active():
            target = d.target_id - 1
            if d.type == "dc_outage":
                self._outages.setdefault(target, d)
            elif d.type == "truck_breakdown":
                self._broken.setdefault(target, d)
            elif d.type == "weather_delay":
                current = self._weather.get(target)
                if current is None or d.severity > current.severity:
                    self._weather[target] = d
            elif d.type == "inventory_shortage":
                products = [p - 1 for p in d.product_ids] if d.product_ids else None
                self._shortages.append((d, target, products))

    # -- customers --------------------------------------------------------------

    def _visit(self) -> None:
        w = self._world
        rand, bits, emit, next_id = self._rand, self._bits, self._emit, self._next_id
        customer = int(rand() * w.customer_count)
        s = w.customer_home[customer]
        if not w.store_open[s]:
            s = self._open_stores[int(rand() * len(self._open_stores))]
        store_id = s + 1
        key = self._store_keys[s]
        session = f"SESSION_{next_id()}"
        emit(
            "customer_entered",
            {
                "store_id": store_id,
                "sensor_id": SENSORS[bits(1)],
                "zone": "ENTRANCE",
                "customer_count": GROUP_SIZES[bits(4)],
                "dwell_time": 0,
            },
            session,
            key,
        )
        # Pick the basket first: the walk through the shop follows it.
        basket: list[tuple[int, int, int]] = []  # (product, units, stock left)
        if rand() < P_BUY:
            stock, popularity = w.stock[s], w.popularity
            for _ in range(ITEM_COUNTS[bits(6)]):
                p = popularity[bits(POPULARITY_BITS)]
                have = stock[p]
                if have:  # an empty shelf is a lost sale
                    units = QUANTITIES[bits(5)]
                    if units > have:
                        units = have
                    stock[p] = have - units
                    basket.append((p, units, have - units))
        ble = w.customer_ble[customer]
        if ble is not None:
            now_s = self._now_s
            emit(
                "ble_ping_detected",
                {
                    "store_id": store_id,
                    "beacon_id": BEACONS["ENTRANCE"][bits(2)],
                    "customer_ble_id": ble,
                    "rssi": RSSI[bits(6)],
                    "zone": "ENTRANCE",
                },
                session,
                key,
            )
            if basket:
                route: list[str] = []
                for p, _, _ in basket:
                    zone = w.product_zone[p]
                    if zone not in route:
                        route.append(zone)
                del route[MAX_ZONES:]
                route.append("CHECKOUT")
            else:
                route = [ZONES[int(rand() * len(ZONES))]]
            here = "ENTRANCE"
            for zone in route:
                emit(
                    "customer_zone_changed",
                    {
                        "store_id": store_id,
                        "customer_ble_id": ble,
                        "from_zone": here,
                        "to_zone": zone,
                        "timestamp": now_s,
                    },
                    session,
                    key,
                )
                if rand() < P_PING:
                    emit(
                        "ble_ping_detected",
                        {
                            "store_id": store_id,
                            "beacon_id": BEACONS[zone][bits(2)],
                            "customer_ble_id": ble,
                            "rssi": RSSI[bits(6)],
                            "zone": zone,
                        },
                        session,
                        key,
                    )
                here = zone
        if basket:
            self._checkout(customer, s, session, basket)

    def _checkout(
        self, customer: int, s: int, session: str, basket: list[tuple[int, int, int]]
    ) -> None:
        w = self._world
        rand, bits, emit, next_id = self._rand, self._bits, self._emit, self._next_id
        key, store_id, now_s = self._store_keys[s], s + 1, self._now_s
        receipt_id = f"RCT_{self._ymd}_{next_id()}"
        price_cents, prices, product_promo = w.price_cents, self._prices, w.product_promo
        lines: list[dict[str, Any]] = []
        promos: dict[int, tuple[int, list[int]]] = {}  # promo -> (cents off, product ids)
        subtotal = discount = 0
        for number, (p, units, _) in enumerate(basket, 1):
            extended = price_cents[p] * units
            subtotal += extended
            promo = product_promo[p]
            code = None
            if promo >= 0:
                code, kind, value = PROMOTIONS[promo]
                if kind == "percentage":
                    off = (extended * value + 50) // 100
                else:
                    off = min(value * units, extended)
                discount += off
                cents, products = promos.get(promo, (0, []))
                products.append(p + 1)
                promos[promo] = (cents + off, products)
            lines.append(
                {
                    "receipt_id": receipt_id,
                    "line_number": number,
                    "product_id": p + 1,
                    "quantity": units,
                    "unit_price": prices[p],
                    "extended_price": extended / 100,
                    "promo_code": code,
                }
            )
        tax = ((subtotal - discount) * w.store_tax_bp[s] + 5000) // 10000
        total = (subtotal - discount + tax) / 100
        tender = TENDERS[bits(4)]
        emit(
            "receipt_created",
            {
                "store_id": store_id,
                "customer_id": customer + 1,
                "receipt_id": receipt_id,
                "subtotal": subtotal / 100,
                "tax": tax / 100,
                "total": total,
                "tender_type": tender,
                "item_count": len(lines),
            },
            session,
            key,
        )
        for line in lines:
            emit("receipt_line_added", line, session, key)
        for promo, (cents, products) in promos.items():
            code, kind, _ = PROMOTIONS[promo]
            emit(
                "promotion_applied",
                {
                    "receipt_id": receipt_id,
                    "promo_code": code,
                    "discount_amount": cents / 100,
                    "discount_type": kind,
                    "product_ids": products,
                },
                session,
                key,
            )
        attempts = [(tender, "APPROVED")]
        if (
            rand() < P_DECLINE
        ):  # the card on file bounced; the customer paid with the receipt's tender
            declined = "DEBIT_CARD" if tender == "CREDIT_CARD" else "CREDIT_CARD"
            attempts.insert(0, (declined, "DECLINED"))
        for method, status in attempts:
            emit(
                "payment_processed",
                {
                    "receipt_id": receipt_id,
                    "payment_method": method,
                    "amount": total,
                    "transaction_id": f"TXN_{next_id()}",
                    "processing_time": now_s,
                    "status": status,
                },
                session,
                key,
            )
        reorder_point = w.reorder_point
        for p, units, left in basket:
            emit(
                "inventory_updated",
                {
                    "store_id": store_id,
                    "dc_id": None,
                    "product_id": p + 1,
                    "quantity_delta": -units,
                    "reason": "SALE",
                    "source": "POS",
                },
                session,
                key,
            )
            if left <= reorder_point[p]:
                self._low_stock(s, p, left, session, None)

    def _low_stock(
        self, s: int, p: int, left: int, correlation: str, cause: Disruption | None
    ) -> None:
        """Stock fell to the reorder point: report a stockout at 0, reorder unless one is open."""
        w = self._world
        key, emitted = self._store_keys[s], 0
        if left == 0:
            self._emit(
                "stockout_detected",
                {
                    "store_id": s + 1,
                    "dc_id": None,
                    "product_id": p + 1,
                    "last_known_quantity": 0,
                    "detection_time": self._now_s,
                },
                correlation,
                key,
            )
            emitted += 1
        if not w.on_order[s][p]:
            w.on_order[s][p] = 1
            w.backlog[s].append(p)
            point = w.reorder_point[p]
            self._emit(
                "reorder_triggered",
                {
                    "store_id": s + 1,
                    "dc_id": None,
                    "product_id": p + 1,
                    "current_quantity": left,
                    "reorder_quantity": w.reorder_qty[p],
                    "reorder_point": point,
                    "priority": _priority(left, point),
                },
                correlation,
                key,
            )
            emitted += 1
        if cause is not None:
            cause.events_affected += emitted

    # -- marketing and store hours ------------------------------------------------

    def _ad_impression(self) -> None:
        bits = self._bits
        ad_id = self._world.customer_ad[int(self._rand() * self._world.customer_count)]
        channel = AD_CHANNELS[bits(4)]
        self._emit(
            "ad_impression",
            {
                "channel": channel,
                "campaign_id": CAMPAIGNS[bits(3)],
                "creative_id": CREATIVES[bits(2)],
                "customer_ad_id": ad_id,
                "impression_id": f"IMP_{self._next_id()}",
                "cost": AD_PRICES[channel][bits(4)],
                "device_type": DEVICES[bits(3)],
            },
            ad_id,
            ad_id,
        )

    def _close_store(self) -> None:
        open_stores = self._open_stores
        if len(open_stores) <= 1:  # visitors need somewhere to go
            return
        s = open_stores.pop(int(self._rand() * len(open_stores)))
        self._world.store_open[s] = False
        self._store_operation(s, "closed")
        self._at(CLOSED_MIN + int(self._rand() * CLOSED_SPAN), _REOPEN, s)

    def _reopen(self, s: int) -> None:
        self._world.store_open[s] = True
        self._open_stores.append(s)
        self._store_operation(s, "opened")

    def _store_operation(self, s: int, operation: str) -> None:
        self._emit(
            f"store_{operation}",
            {"store_id": s + 1, "operation_time": self._now_s, "operation_type": operation},
            None,
            self._store_keys[s],
        )

    # -- supply chain -------------------------------------------------------------

    def _depart(self, t: int) -> None:
        w = self._world
        dc = w.truck_dc[t]
        blocker = self._broken.get(t) or self._outages.get(dc)
        if blocker is not None:
            if not self._depart_held[t]:
                self._depart_held[t] = True
                blocker.events_affected += 1
            self._at(HOLD_RETRY, _DEPART, t)
            return
        self._depart_held[t] = False
        # Serve the route's store with the longest backlog; rotate so ties spread out.
        route, pos = w.truck_route[t], self._route_pos[t]
        self._route_pos[t] = (pos + 1) % len(route)
        backlog = w.backlog
        store = max(route[pos:] + route[:pos], key=lambda s: len(backlog[s]))
        load = backlog[store][:TRUCK_CAPACITY]
        del backlog[store][:TRUCK_CAPACITY]
        shipment = _Shipment(
            shipment_id=f"SHIP_{self._next_id()}",
            store=store,
            lines=[(p, w.reorder_qty[p]) for p in load],
            transit=TRANSIT_MIN + int(self._rand() * TRANSIT_SPAN),
        )
        self._shipments[t] = shipment
        self._emit(
            "truck_departed",
            {
                "truck_id": self._truck_names[t],
                "dc_id": dc + 1,
                "store_id": None,
                "shipment_id": shipment.shipment_id,
                "departure_time": self._now_s,
                "actual_unload_duration": self._last_unload[t],
            },
            shipment.shipment_id,
            self._dc_keys[dc],
        )
        self._at(shipment.transit, _ARRIVE, t)

    def _arrive(self, t: int) -> None:
        shipment = self._shipments[t]
        assert shipment is not None  # an arrival is only scheduled by a departure
        s = shipment.store
        broken = self._broken.get(t)
        if broken is not None:
            if not shipment.held:
                shipment.held = True
                broken.events_affected += 1
            self._at(HOLD_RETRY, _ARRIVE, t)
            return
        weather = self._weather.get(s)
        if weather is not None and not shipment.delayed:
            delay = int(shipment.transit * weather.severity * WEATHER_FACTOR)
            if delay > 0:
                shipment.delayed = True
                weather.events_affected += 1
                self._at(delay, _ARRIVE, t)
                return
        w = self._world
        key, store_id = self._store_keys[s], s + 1
        estimate = min(UNLOAD_BASE + UNLOAD_PER_LINE * len(shipment.lines), UNLOAD_MAX)
        self._emit(
            "truck_arrived",
            {
                "truck_id": self._truck_names[t],
                "dc_id": None,
                "store_id": store_id,
                "shipment_id": shipment.shipment_id,
                "arrival_time": self._now_s,
                "estimated_unload_duration": estimate,
            },
            shipment.shipment_id,
            key,
        )
        shortage = next((entry for entry in self._shortages if entry[1] == s), None)
        stock, on_order = w.stock[s], w.on_order[s]
        for p, units in shipment.lines:
            on_order[p] = 0
            if shortage is not None and (shortage[2] is None or p in shortage[2]):
                cut = int(units * (1 - shortage[0].severity))
                if cut < units:
                    shortage[0].events_affected += 1
                    units = cut
                if not units:
                    continue
            stock[p] += units
            self._emit(
                "inventory_updated",
                {
                    "store_id": store_id,
                    "dc_id": None,
                    "product_id": p + 1,
                    "quantity_delta": units,
                    "reason": "DELIVERY",
                    "source": "DC_SHIPMENT",
                },
                shipment.shipment_id,
                key,
            )
        self._last_unload[t] = max(5, estimate + int((self._rand() - 0.4) * estimate * 0.5))
        self._shipments[t] = None
        self._at(TURNAROUND_MIN + int(self._rand() * TURNAROUND_SPAN), _DEPART, t)

    def _drain(self) -> None:
        """Inventory shortages write stock down, hot items first, faster with severity."""
        w = self._world
        for d, s, products in self._shortages:
            if self._rand() >= d.severity * DRAIN_RATE:
                continue
            if products:
                p = products[int(self._rand() * len(products))]
            else:
                p = w.popularity[self._bits(POPULARITY_BITS)]
            have = w.stock[s][p]
            if not have:
                continue
            take = max(1, int(have * d.severity))
            left = have - take
            w.stock[s][p] = left
            self._emit(
                "inventory_updated",
                {
                    "store_id": s + 1,
                    "dc_id": None,
                    "product_id": p + 1,
                    "quantity_delta": -take,
                    "reason": "SHORTAGE",
                    "source": "INVENTORY_SYSTEM",
                },
                d.disruption_id,
                self._store_keys[s],
            )
            d.events_affected += 1
            if left <= w.reorder_point[p]:
                self._low_stock(s, p, left, d.disruption_id, d)


def _priority(left: int, reorder_point: int) -> str:
    if left == 0:
        return "CRITICAL"
    return "HIGH" if 2 * left <= reorder_point else "NORMAL"


def _discard(event_type: str, payload: Event, correlation: str | None, key: str) -> None:
    """The emitter outside generate(): nothing is being collected."""


def _emitter(
    append: Callable[[Event], None],
    trace_prefix: str,
    ts: str,
    next_id: Callable[[], int],
    wanted: frozenset[str] | None,
) -> Emit:
    """Build the envelope-appending closure for one generate() call.

    Two closures rather than one with a filter check: this runs once per event, and
    the unfiltered case should pay for no test it does not need.
    """
    if wanted is None:

        def emit(event_type: str, payload: Event, correlation: str | None, key: str) -> None:
            append(
                {
                    "event_type": event_type,
                    "payload": payload,
                    "trace_id": f"{trace_prefix}{next_id()}",
                    "ingest_timestamp": ts,
                    "schema_version": "1.0",
                    "source": "retail-datagen",
                    "correlation_id": correlation,
                    "partition_key": key,
                }
            )

        return emit

    def emit_wanted(event_type: str, payload: Event, correlation: str | None, key: str) -> None:
        if event_type in wanted:
            append(
                {
                    "event_type": event_type,
                    "payload": payload,
                    "trace_id": f"{trace_prefix}{next_id()}",
                    "ingest_timestamp": ts,
                    "schema_version": "1.0",
                    "source": "retail-datagen",
                    "correlation_id": correlation,
                    "partition_key": key,
                }
            )

    return emit_wanted
