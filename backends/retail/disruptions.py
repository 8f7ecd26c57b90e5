"""Supply-chain disruptions: what they target, how long they last, what they changed.

The manager validates and keeps the active disruptions; the generator reads
them (once per `generate()` call) and bends the world while they last:

- `dc_outage` (target: a DC): no truck leaves that DC, so its stores' reorders
  pile up and hot items run out. Outages are total; severity is recorded only.
- `truck_breakdown` (target: a truck): the truck neither departs nor arrives;
  a load on board arrives late, after the breakdown ends. Total, like outages.
- `inventory_shortage` (target: a store; optional `product_ids`, else the whole
  store, hot items first): stock is written down (`inventory_updated` reason
  `SHORTAGE`) at a rate and depth set by severity, and deliveries of those
  products are cut by `severity`.
- `weather_delay` (target: a **store**, the place the weather is at; store and
  DC ids overlap, so one kind had to be chosen): every truck due at that store
  arrives later by `severity * 2` times its planned transit.

`events_affected` counts events a disruption suppressed (each held departure or
arrival once), altered (delayed arrivals, cut deliveries) or caused (shortage
write-downs and the reorders and stockouts they trigger, which carry the
disruption id as correlation id). Disruptions expire on the injected clock at
`active_until`; the spec lists only live ones, so expired and cancelled
disruptions leave the manager.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from backends.common.clock import Clock, iso_z
from backends.common.errors import BadRequest, NotFound
from backends.retail.models import DISRUPTION_TYPES, DisruptionCreate, DisruptionInfo
from backends.retail.world import World, random_token


@dataclass(eq=False)
class Disruption:
    disruption_id: str
    type: str
    target_id: int
    severity: float
    created_at: datetime
    active_until: datetime
    product_ids: list[int] | None = None
    events_affected: int = 0
    status: str = "active"  # "active", then "expired" or "cancelled"


class DisruptionManager:
    def __init__(self, *, world: World, clock: Clock, rng: random.Random) -> None:
        self._clock = clock
        self._rng = rng
        self._targets: dict[str, tuple[str, frozenset[int]]] = {
            "dc_outage": ("DC", frozenset(world.dc_ids)),
            "inventory_shortage": ("store", frozenset(world.store_ids)),
            "truck_breakdown": ("truck", frozenset(world.truck_ids)),
            "weather_delay": ("store", frozenset(world.store_ids)),
        }
        self._products = frozenset(world.product_ids)
        self._active: dict[str, Disruption] = {}

    def create(self, req: DisruptionCreate) -> Disruption:
        kind = req.disruption_type
        if kind not in self._targets:
            raise BadRequest(
                f"Invalid disruption type '{kind}'. Valid types: {', '.join(DISRUPTION_TYPES)}"
            )
        if not (math.isfinite(req.severity) and 0.0 <= req.severity <= 1.0):
            raise BadRequest(f"Severity must be between 0.0 and 1.0, got {req.severity}")
        noun, ids = self._targets[kind]
        if req.target_id not in ids:
            raise BadRequest(f"Unknown {noun} {req.target_id} for {kind}")
        if req.product_ids is not None:
            unknown = sorted(set(req.product_ids) - self._products)
            if unknown:
                raise BadRequest(f"Unknown product ids: {unknown}")
        now = self._clock.now()
        disruption_id = f"disruption_{random_token(self._rng)}"
        while disruption_id in self._active:
            disruption_id = f"disruption_{random_token(self._rng)}"
        disruption = Disruption(
            disruption_id=disruption_id,
            type=kind,
            target_id=req.target_id,
            severity=req.severity,
            created_at=now,
            active_until=now + timedelta(minutes=req.duration_minutes),
            product_ids=list(req.product_ids) if req.product_ids is not None else None,
        )
        self._active[disruption_id] = disruption
        return disruption

    def active(self) -> list[Disruption]:
        now = self._clock.now()
        for disruption in [d for d in self._active.values() if d.active_until <= now]:
            disruption.status = "expired"
            del self._active[disruption.disruption_id]
        return list(self._active.values())

    def info(self, d: Disruption) -> DisruptionInfo:
        remaining = (d.active_until - self._clock.now()).total_seconds() / 60
        return DisruptionInfo(
            disruption_id=d.disruption_id,
            type=d.type,
            target_id=d.target_id,
            severity=d.severity,
            created_at=iso_z(d.created_at),
            active_until=iso_z(d.active_until),
            time_remaining_minutes=round(max(remaining, 0.0), 2),
            events_affected=d.events_affected,
            status=d.status,
            product_ids=d.product_ids,
        )

    def cancel(self, disruption_id: str) -> Disruption:
        self.active()
        disruption = self._active.pop(disruption_id, None)
        if disruption is None:
            raise NotFound(f"Disruption {disruption_id} not found or already expired")
        disruption.status = "cancelled"
        return disruption

    def clear_all(self) -> int:
        cleared = self.active()
        for disruption in cleared:
            disruption.status = "cancelled"
        self._active.clear()
        return len(cleared)
