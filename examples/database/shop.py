"""Create or advance the example shop database (data/shop.sqlite).

``python shop.py`` creates 1,000 customers and 20,000 orders on the first call; each later
call adds 2,000 orders and changes the status (and ``updated_at``) of 500 existing ones, as
a live application would between two syncs.
"""

from __future__ import annotations

import random
import sqlite3
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

COUNTRIES = ["FR", "DE", "US", "GB", "JP", "BR", "IN", "CA"]
STATUSES = ["paid", "shipped", "cancelled", "refunded"]


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def advance(path: Path, *, seed: int | None = None) -> tuple[int, int]:
    """Create or advance the shop; returns (customers, orders) after the call."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    with sqlite3.connect(path) as con:
        con.executescript(
            """
            create table if not exists customers (
                customer_id integer primary key, name text not null, country text not null,
                updated_at timestamp not null);
            create table if not exists orders (
                order_id integer primary key, customer_id integer not null,
                amount decimal(10, 2) not null, status text not null,
                updated_at timestamp not null);
            """
        )
        (orders,) = con.execute("select count(*) from orders").fetchone()
        (last,) = con.execute("select max(updated_at) from orders").fetchone()
        now = (
            datetime.fromisoformat(last).replace(tzinfo=UTC)
            if last
            else datetime(2026, 1, 1, tzinfo=UTC)
        )
        if orders == 0:
            con.executemany(
                "insert into customers values (?, ?, ?, ?)",
                [(i, f"customer {i}", rng.choice(COUNTRIES), _ts(now)) for i in range(1, 1001)],
            )
        new = 20_000 if orders == 0 else 2_000
        rows = []
        for i in range(orders + 1, orders + new + 1):
            now += timedelta(seconds=rng.randint(0, 30))
            rows.append((i, rng.randint(1, 1000), round(rng.uniform(5, 500), 2), "paid", _ts(now)))
        con.executemany("insert into orders values (?, ?, ?, ?, ?)", rows)
        if orders:
            for order_id in rng.sample(range(1, orders + 1), 500):
                now += timedelta(seconds=1)
                con.execute(
                    "update orders set status = ?, updated_at = ? where order_id = ?",
                    (rng.choice(STATUSES[1:]), _ts(now), order_id),
                )
        (customers,) = con.execute("select count(*) from customers").fetchone()
        (orders,) = con.execute("select count(*) from orders").fetchone()
    return int(customers), int(orders)


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "data/shop.sqlite")
    customers, orders = advance(target)
    print(f"shop: {customers:,} customers, {orders:,} orders")
