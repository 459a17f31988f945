"""Builders for small real workspaces used by workspace, runner and CLI tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

from headwater.workspace import Workspace

ORDERS_CSV = """\
order_id,customer_id,amount,status
1,10,12.50,placed
2,11,7.00,shipped
3,10,-1.00,placed
4,12,abc,placed
5,13,3.25,shiped
6,10,4.00
7,14,9.99,placed
"""

CUSTOMERS_CSV = """\
customer_id,country
10,DE
11,FR
12,US
13,DE
14,GB
"""

PIPELINE = """\
name: shop
steps:
  - name: extract_orders
    type: extract
    connection: landing
    stream: orders.csv
    options:
      format: csv
      schema: {order_id: BIGINT, customer_id: BIGINT, amount: "DECIMAL(10,2)", status: VARCHAR}
    to: raw.orders
  - name: extract_customers
    type: extract
    connection: landing
    stream: customers.csv
    options: {format: csv}
    to: raw.customers
  - name: joined
    type: transform
    sql: |
      select o.*, c.country
      from {{ ref('raw.orders') }} o join {{ ref('raw.customers') }} c using (customer_id)
    to: staging.orders
  - name: check_orders
    type: check
    dataset: staging.orders
    checks:
      - {type: range, column: amount, min: 0}
      - {type: accepted_values, column: status, values: [placed, shipped], severity: warn}
  - name: export
    type: load
    from: staging.orders
    connection: exports
    target: orders.parquet
    mode: overwrite
"""


def make_workspace(root: Path, pipeline: str = PIPELINE) -> Workspace:
    """A workspace with landing/ and exports/ file connections, two CSVs and a pipeline."""
    ws = Workspace.init(root)
    (root / "headwater.yaml").write_text(
        textwrap.dedent(
            """\
            name: test
            connections:
              landing: {type: files, path: data}
              exports: {type: files, path: exports}
            """
        )
    )
    ws.close()
    (root / "data" / "orders.csv").write_text(ORDERS_CSV)
    (root / "data" / "customers.csv").write_text(CUSTOMERS_CSV)
    (root / "pipelines" / "shop.yaml").write_text(pipeline)
    return Workspace.open(root)
