"""The small datasets the map rule examples of docs/transforms.md run over."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa

from headwater.workspace import Workspace

PAYLOAD = pa.struct([("sku", pa.string()), ("qty", pa.int64())])

ORDERS = pa.table(
    {
        "order_id": pa.array([1, 2, 3, 1], pa.int64()),
        "cust": pa.array([10, 11, 10, 10], pa.int64()),
        "amount": ["12.50", "7.00", "3.25", "13.00"],
        "status": ["placed", "shipped", "cancelled", "shipped"],
        "country": ["DE", "FR", "XX", "DE"],
        "email": ["a@x.io", "b@x.io", None, "a@x.io"],
        "card": ["4111111111111111", "5500000000000004", None, "4111111111111111"],
        "payload": pa.array(
            [
                {"sku": "A1", "qty": 2},
                {"sku": "B2", "qty": 1},
                {"sku": "A1", "qty": 5},
                {"sku": "A1", "qty": 2},
            ],
            PAYLOAD,
        ),
        "meta": [
            '{"channel": "web", "score": 3}',
            '{"channel": "shop"}',
            None,
            '{"channel": "web"}',
        ],
        "tags": pa.array([["new", "gift"], [], ["gift"], ["new"]], pa.list_(pa.string())),
        "updated_at": pa.array([dt.datetime(2026, 1, d) for d in (1, 2, 3, 4)], pa.timestamp("us")),
    }
)
COUNTRIES = pa.table({"code": ["DE", "FR"], "name": ["Germany", "France"]})
ARCHIVE = pa.table(
    {"order_id": pa.array([0], pa.int64()), "cust": pa.array([9], pa.int64()), "amount": ["1.00"]}
)


def map_workspace(root: Path) -> Workspace:
    ws = Workspace.init(root)
    ws.write("raw.orders", ORDERS, mode="overwrite")
    ws.write("ref.countries", COUNTRIES, mode="overwrite")
    ws.write("archive.orders", ARCHIVE, mode="overwrite")
    return ws
