"""Datasets on S3 (local moto servers): write, merge, read, time travel, history, delete."""

from __future__ import annotations

import boto3
import pyarrow as pa
import pytest

from headwater.errors import SchemaIncompatibleError
from headwater.lake import Lake
from headwater.metadata.store import MetadataStore


def s3_options(server: dict[str, str]) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": server["endpoint_url"],
        "AWS_REGION": server["region"],
        "AWS_ACCESS_KEY_ID": server["key"],
        "AWS_SECRET_ACCESS_KEY": server["secret"],
        "AWS_ALLOW_HTTP": "true",
        "AWS_S3_ALLOW_UNSAFE_RENAME": "true",
    }


def keys_in(server: dict[str, str], bucket: str) -> list[str]:
    client = boto3.client(
        "s3",
        endpoint_url=server["endpoint_url"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    listing = client.list_objects_v2(Bucket=bucket)
    return [item["Key"] for item in listing.get("Contents", [])]


FIRST = pa.table({"id": [1, 2], "v": ["a", "b"]})


def fill(lake: Lake) -> None:
    """Version 0: append; 1: merge; 2: append with a new column; then a refused write."""
    assert lake.write("raw.orders", FIRST, run_id="r1").version == 0
    lake.write("raw.orders", pa.table({"id": [2, 3], "v": ["B", "C"]}), mode="merge", keys=["id"])
    evolved = lake.write("raw.orders", pa.table({"id": [4], "v": ["d"], "n": [1.5]}))
    assert evolved.schema_change == "evolved"
    with pytest.raises(SchemaIncompatibleError):
        lake.write("raw.orders", pa.table({"id": ["x"]}))


def check_reads(lake: Lake) -> None:
    latest = lake.read("raw.orders").sort_by("id").to_pylist()
    assert [(r["id"], r["v"], r["n"]) for r in latest] == [
        (1, "a", None),
        (2, "B", None),
        (3, "C", None),
        (4, "d", 1.5),
    ]
    assert lake.read("raw.orders", version=0).sort_by("id").to_pylist() == FIRST.to_pylist()
    assert lake.read("raw.orders", version=1).num_rows == 3
    assert lake.schema("raw.orders", version=1).names == ["id", "v"]


def test_dataset_on_the_shared_s3_fixture(
    s3_server: dict[str, str], s3_bucket: str, store: MetadataStore
) -> None:
    """Write, merge, evolve, read versions and delete on the in-process moto server."""
    lake = Lake(f"s3://{s3_bucket}/lake/", store, storage_options=s3_options(s3_server))
    assert lake.location("raw.orders") == f"s3://{s3_bucket}/lake/raw/orders"
    fill(lake)
    check_reads(lake)
    assert any(k.startswith("lake/raw/orders/_delta_log/") for k in keys_in(s3_server, s3_bucket))
    lake.delete("raw.orders")
    assert lake.list() == []
    assert not any(k.startswith("lake/raw/orders/") for k in keys_in(s3_server, s3_bucket))


def test_history_and_as_of_on_s3(
    s3_server: dict[str, str], s3_bucket: str, store: MetadataStore
) -> None:
    """History and time travel by timestamp read the Delta log's commit infos."""
    lake = Lake(f"s3://{s3_bucket}/lake", store, storage_options=s3_options(s3_server))
    fill(lake)
    check_reads(lake)
    history = lake.history("raw.orders")
    assert [(h.version, h.operation, h.rows, h.run_id) for h in history] == [
        (2, "WRITE", 1, None),
        (1, "MERGE", 2, None),
        (0, "WRITE", 2, "r1"),
    ]
    at = history[1].timestamp
    assert lake.resolve_version("raw.orders", at) == 1
    assert lake.read("raw.orders", as_of=at).num_rows == 3
    assert [v.change for v in lake.schema_history("raw.orders")] == ["created", "evolved"]
