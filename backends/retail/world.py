"""The simulated retail world that the generator animates and disruptions target.

A World is built once from a seeded RNG: stores (each served by one DC, with a
tax rate), DCs, trucks (each based at a DC, with a route over that DC's stores),
a product catalogue (prices in cents, shop zone, reorder policy, promotion),
customers (home store, BLE and ad identifiers) and the inventory of every
product in every store. It holds the world's *state* (stock on hand, open
reorders, open stores); the generator holds *time* (its tick, the truck
schedule). Ids are 1-based as in the spec's examples; the lists are indexed by
`id - 1` so the hot path never hashes.
"""

from __future__ import annotations

import math
import random
import string
from dataclasses import dataclass

ZONES: tuple[str, ...] = (
    "PRODUCE",
    "DAIRY",
    "BAKERY",
    "MEAT",
    "FROZEN",
    "GROCERY",
    "HOUSEHOLD",
    "PHARMACY",
    "ELECTRONICS",
    "APPAREL",
)
# (promo_code, discount_type, value): percent off the line, or cents off per unit.
PROMOTIONS: tuple[tuple[str, str, int], ...] = (
    ("SAVE10", "percentage", 10),
    ("SAVE20", "percentage", 20),
    ("BOGO50", "percentage", 50),
    ("DOLLAROFF", "fixed", 100),
)
TAX_RATES_BP: tuple[int, ...] = (0, 400, 600, 625, 700, 825, 875, 950)
POPULARITY_BITS = 16  # the product choice table has 2**16 slots, indexed by getrandbits
APP_USERS = 0.4  # share of customers whose phone app answers BLE beacons
_ALNUM = string.ascii_lowercase + string.digits


def random_token(rng: random.Random, length: int = 6) -> str:
    """Lowercase alphanumerics, like the spec's `x7y8z9` id suffixes."""
    return "".join(rng.choices(_ALNUM, k=length))


@dataclass(slots=True, eq=False)
class World:
    store_ids: list[int]
    dc_ids: list[int]
    truck_ids: list[int]
    product_ids: list[int]
    customer_count: int
    store_dc: list[int]  # index of the DC that supplies each store
    store_tax_bp: list[int]
    dc_stores: list[list[int]]
    truck_dc: list[int]
    truck_route: list[list[int]]  # store indexes served, rotated so a DC's trucks spread out
    price_cents: list[int]
    product_zone: list[str]
    product_promo: list[int]  # index into PROMOTIONS, -1 when none
    reorder_point: list[int]
    reorder_qty: list[int]
    popularity: list[int]  # Zipf-weighted product indexes: hot items sell (and run out) first
    customer_home: list[int]
    customer_ble: list[str | None]  # only app users carry a BLE id
    customer_ad: list[str]
    stock: list[list[int]]  # [store][product] units on hand
    on_order: list[bytearray]  # [store][product] 1 while a reorder is outstanding
    backlog: list[list[int]]  # [store] reordered products not yet loaded on a truck
    store_open: list[bool]

    @classmethod
    def build(
        cls,
        rng: random.Random,
        *,
        stores: int = 50,
        dcs: int = 5,
        trucks: int = 40,
        products: int = 2000,
        customers: int = 20000,
    ) -> World:
        for name, count in (
            ("stores", stores),
            ("dcs", dcs),
            ("trucks", trucks),
            ("products", products),
            ("customers", customers),
        ):
            if count < 1:
                raise ValueError(f"{name} must be at least 1, got {count}")
        if customers > 16**6:
            raise ValueError(f"customers must be at most {16**6} (6-hex BLE and ad ids)")
        rand = rng.random

        store_dc = [s % dcs for s in range(stores)]
        dc_stores = [[s for s in range(stores) if store_dc[s] == d] for d in range(dcs)]
        # Trucks only go to DCs that supply a store, so no truck idles forever.
        served = [d for d in range(dcs) if dc_stores[d]]
        truck_dc = [served[t % len(served)] for t in range(trucks)]
        truck_route = []
        for t in range(trucks):
            route = dc_stores[truck_dc[t]]
            shift = (t // len(served)) % len(route)
            truck_route.append(route[shift:] + route[:shift])

        log_lo, log_hi = math.log(99), math.log(4999)
        price_cents = [
            int(math.exp(log_lo + rand() * (log_hi - log_lo))) // 10 * 10 + 9
            for _ in range(products)
        ]
        product_zone = [ZONES[int(rand() * len(ZONES))] for _ in range(products)]
        product_promo = [
            int(rand() * len(PROMOTIONS)) if rand() < 0.08 else -1 for _ in range(products)
        ]
        reorder_point = [5 + int(rand() * 11) for _ in range(products)]
        reorder_qty = [6 * (4 + int(rand() * 9)) for _ in range(products)]
        ranked = list(range(products))
        rng.shuffle(ranked)
        weights = [1.0 / (rank + 1) for rank in range(products)]
        popularity = rng.choices(ranked, weights=weights, k=1 << POPULARITY_BITS)

        customer_home = [int(rand() * stores) for _ in range(customers)]
        ble_codes = rng.sample(range(16**6), customers)
        ad_codes = rng.sample(range(16**6), customers)
        customer_ble = [f"BLE_{code:06x}" if rand() < APP_USERS else None for code in ble_codes]
        customer_ad = [f"AD_{code:06x}" for code in ad_codes]

        # Start mid-cycle: between the reorder point and a full case load, as in steady state.
        stock = [
            [reorder_point[p] + 1 + int(rand() * reorder_qty[p]) for p in range(products)]
            for _ in range(stores)
        ]
        return cls(
            store_ids=list(range(1, stores + 1)),
            dc_ids=list(range(1, dcs + 1)),
            truck_ids=list(range(1, trucks + 1)),
            product_ids=list(range(1, products + 1)),
            customer_count=customers,
            store_dc=store_dc,
            store_tax_bp=[TAX_RATES_BP[int(rand() * len(TAX_RATES_BP))] for _ in range(stores)],
            dc_stores=dc_stores,
            truck_dc=truck_dc,
            truck_route=truck_route,
            price_cents=price_cents,
            product_zone=product_zone,
            product_promo=product_promo,
            reorder_point=reorder_point,
            reorder_qty=reorder_qty,
            popularity=popularity,
            customer_home=customer_home,
            customer_ble=customer_ble,
            customer_ad=customer_ad,
            stock=stock,
            on_order=[bytearray(products) for _ in range(stores)],
            backlog=[[] for _ in range(stores)],
            store_open=[True] * stores,
        )
