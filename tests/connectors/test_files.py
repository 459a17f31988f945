"""The files source on local files: CSV dialects, rejects, JSON Lines, Parquet, pushdown."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import SecretStr, ValidationError

from headwater.connectors import Capabilities, ListRejectSink, get_connector
from headwater.connectors.files.factory import FilesConfig, FilesFactory
from headwater.connectors.files.storage import redact
from headwater.errors import (
    ConfigError,
    ConnectorError,
    QueryError,
    SourceFormatError,
    SourceNotFoundError,
)
from tests.connectors.files_support import read, source, table


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


# -- factory and config ------------------------------------------------------------------


def test_factory_is_registered_with_capabilities() -> None:
    factory = get_connector("files")
    assert isinstance(factory, FilesFactory)
    assert factory.config_model is FilesConfig
    assert factory.capabilities == Capabilities(
        source=True, destination=True, pushdown=True, write_modes=("append", "overwrite")
    )


def test_config_keeps_the_secret_out_of_reprs() -> None:
    cfg = FilesConfig(path="s3://bucket/prefix", key_id="AK", secret=SecretStr("hunter2"))
    assert "hunter2" not in repr(cfg) and "hunter2" not in str(cfg.model_dump())
    assert cfg.is_s3


def test_config_rejects_an_unknown_format_listing_valid_ones() -> None:
    with pytest.raises(ValidationError, match="'csv', 'jsonl' or 'parquet'"):
        FilesConfig(path=".", format="xml")  # type: ignore[arg-type]
    assert FilesConfig(path=".", format="ndjson").format == "jsonl"  # type: ignore[arg-type]


def test_relative_path_resolves_against_base_dir(tmp_path: Path) -> None:
    write(tmp_path / "data" / "a.csv", "x\n1\n")
    src = source("data", base_dir=str(tmp_path))
    assert table(src.read("a.csv")).to_pydict() == {"x": [1]}


# -- CSV dialects --------------------------------------------------------------------------


def test_csv_with_semicolon_delimiter(tmp_path: Path) -> None:
    write(tmp_path / "eu.csv", "id;name;price\n1;Anna;3.5\n2;Bob;4\n")
    data, sink = read(source(tmp_path), "eu.csv", options={"delimiter": ";"})
    assert data.to_pydict() == {"id": [1, 2], "name": ["Anna", "Bob"], "price": [3.5, 4.0]}
    assert sink.items == []


def test_csv_without_header(tmp_path: Path) -> None:
    write(tmp_path / "raw.csv", "1,a\n2,b\n")
    src = source(tmp_path)
    data, _ = read(src, "raw.csv", options={"header": False})
    assert data.column_names == ["column0", "column1"]
    named, _ = read(
        src, "raw.csv", options={"header": False, "schema": {"id": "BIGINT", "code": "VARCHAR"}}
    )
    assert named.to_pydict() == {"id": [1, 2], "code": ["a", "b"]}


def test_csv_latin1_and_utf16(tmp_path: Path) -> None:
    write(tmp_path / "l1.csv", "id,city\n1,Zürich\n2,Besançon\n", encoding="latin-1")
    write(tmp_path / "u16.csv", "id,city\n1,Zürich\n", encoding="utf-16")
    src = source(tmp_path)
    data, _ = read(src, "l1.csv", options={"encoding": "latin-1"})
    assert data["city"].to_pylist() == ["Zürich", "Besançon"]
    data, _ = read(src, "u16.csv", options={"encoding": "utf-16"})
    assert data["city"].to_pylist() == ["Zürich"]


def test_latin1_read_as_utf8_rejects_the_lines_with_a_hint(tmp_path: Path) -> None:
    write(tmp_path / "l1.csv", "id,city\n1,Zürich\n2,Paris\n", encoding="latin-1")
    data, sink = read(source(tmp_path), "l1.csv")
    assert data["id"].to_pylist() == [2]
    assert [r.source_line for r in sink.items] == [2]
    assert "not utf-8" in sink.items[0].error
    with pytest.raises(SourceFormatError) as err:
        list(source(tmp_path).read("l1.csv"))
    assert "encoding" in (err.value.hint or "")


def test_csv_custom_null_markers(tmp_path: Path) -> None:
    write(tmp_path / "n.csv", "id,score,note\n1,NA,x\n2,-,\n3,7,n/a\n")
    data, _ = read(source(tmp_path), "n.csv", options={"null_values": ["NA", "-", "n/a"]})
    assert data.to_pydict() == {
        "id": [1, 2, 3],
        "score": [None, None, 7],
        "note": ["x", None, None],
    }


def test_quoted_empty_string_is_not_null(tmp_path: Path) -> None:
    write(tmp_path / "q.csv", 'id,s\n1,""\n2,\n3,"a,b"\n')
    data, _ = read(source(tmp_path), "q.csv")
    assert data["s"].to_pylist() == ["", None, "a,b"]


@pytest.mark.parametrize("suffix", [".csv.gz", ".csv.zst"])
def test_compressed_csv(tmp_path: Path, suffix: str) -> None:
    payload = b"id,v\n" + b"".join(b"%d,%d\n" % (i, i * i) for i in range(1000))
    path = tmp_path / f"big{suffix}"
    if suffix.endswith("gz"):
        path.write_bytes(gzip.compress(payload))
    else:
        with pa.CompressedOutputStream(str(path), "zstd") as out:
            out.write(payload)
    data, _ = read(source(tmp_path), path.name)
    assert data.num_rows == 1000 and data["v"][999].as_py() == 999 * 999


def test_compression_option_overrides_the_extension(tmp_path: Path) -> None:
    (tmp_path / "blob.dat").write_bytes(gzip.compress(b"a,b\n1,2\n"))
    data, _ = read(source(tmp_path), "blob.dat", options={"format": "csv", "compression": "gzip"})
    assert data.to_pydict() == {"a": [1], "b": [2]}


def test_skip_rows(tmp_path: Path) -> None:
    write(tmp_path / "s.csv", "exported by tool\n\nid,v\n1,2\n")
    data, _ = read(source(tmp_path), "s.csv", options={"skip_rows": 2})
    assert data.to_pydict() == {"id": [1], "v": [2]}


def test_tsv_extension_defaults_to_tab(tmp_path: Path) -> None:
    write(tmp_path / "t.tsv", "a\tb\n1\tx y\n")
    assert table(source(tmp_path).read("t.tsv")).to_pydict() == {"a": [1], "b": ["x y"]}


# -- explicit schemas and rejects ----------------------------------------------------------

ORDERS = (
    "id,amount,day,at,at_tz,paid,note\n"
    "1,12.50,2024-01-02,2024-01-02 10:00:00,2024-01-02 10:00:00+02,true,ok\n"
    "2,oops,2024-01-03,2024-01-03 11:00:00,2024-01-03 11:00:00Z,false,bad amount\n"
    "3,7.25,2024-01-04,2024-01-04 12:30:00,2024-01-04 12:30:00+00,true,\n"
)
ORDERS_SCHEMA = {
    "id": "BIGINT",
    "amount": "DECIMAL(12,2)",
    "day": "DATE",
    "at": "TIMESTAMP",
    "at_tz": "TIMESTAMPTZ",
    "paid": "BOOLEAN",
    "note": "VARCHAR",
}


def test_explicit_schema_types_and_a_bad_value_rejected_with_its_line(tmp_path: Path) -> None:
    write(tmp_path / "orders.csv", ORDERS)
    data, sink = read(source(tmp_path), "orders.csv", options={"schema": ORDERS_SCHEMA})
    assert data.schema.field("amount").type == pa.decimal128(12, 2)
    assert data.schema.field("day").type == pa.date32()
    assert pa.types.is_timestamp(data.schema.field("at").type)
    assert data.schema.field("at_tz").type.tz is not None
    assert data["id"].to_pylist() == [1, 3]
    assert data["amount"].to_pylist() == [Decimal("12.50"), Decimal("7.25")]
    assert data["day"].to_pylist() == [dt.date(2024, 1, 2), dt.date(2024, 1, 4)]
    assert data["at_tz"][0].as_py() == dt.datetime(2024, 1, 2, 8, tzinfo=dt.UTC)
    [reject] = sink.items
    assert reject.source_line == 3
    assert reject.column == "amount"
    assert reject.raw_record.startswith("2,oops,2024-01-03")
    assert "oops" in reject.error and "DECIMAL" in reject.error
    assert reject.source_file == str(tmp_path / "orders.csv")


def test_partial_schema_overrides_named_columns_only(tmp_path: Path) -> None:
    write(tmp_path / "p.csv", "id,zip\n1,01234\n2,99999\n")
    data, _ = read(source(tmp_path), "p.csv", options={"schema": {"zip": "VARCHAR"}})
    assert data.to_pydict() == {"id": [1, 2], "zip": ["01234", "99999"]}


def test_schema_naming_an_unknown_column_is_a_config_error(tmp_path: Path) -> None:
    write(tmp_path / "p.csv", "id,zip\n1,2\n")
    with pytest.raises(ConfigError, match="'zipcode'") as err:
        list(source(tmp_path).read("p.csv", options={"schema": {"zipcode": "VARCHAR"}}))
    assert "zip" in (err.value.hint or "")


def test_schema_type_that_is_not_sql_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "p.csv", "id\n1\n")
    with pytest.raises(ConfigError, match="not a SQL type"):
        source(tmp_path).read("p.csv", options={"schema": {"id": "BIGINT); DROP"}})


def test_malformed_lines_are_rejected_with_text_and_line(tmp_path: Path) -> None:
    good = "".join(f"{i},name {i},{i}.5\n" for i in range(50))
    write(tmp_path / "m.csv", "id,name,amount\n" + good + "99,bad,1,extra\n" + good + "98,short\n")
    data, sink = read(source(tmp_path), "m.csv")
    assert data.num_rows == 100
    assert data.schema.field("amount").type == pa.float64()
    assert [(r.source_line, r.raw_record) for r in sink.items] == [
        (52, "99,bad,1,extra"),
        (103, "98,short"),
    ]
    assert "TOO MANY COLUMNS" in sink.items[0].error
    assert "MISSING COLUMNS" in sink.items[1].error


def test_unterminated_quote_is_one_reject_holding_the_rest(tmp_path: Path) -> None:
    good = "".join(f'{i},"name, {i}",{i}.5\n' for i in range(30))
    write(tmp_path / "u.csv", "id,name,amount\n" + good + '77,"broken,1\n' + "78,after,2.5\n")
    data, sink = read(source(tmp_path), "u.csv")
    assert data.num_rows == 30
    assert data["name"][0].as_py() == "name, 0"
    [reject] = sink.items
    assert reject.source_line == 32
    assert reject.raw_record.startswith('77,"broken,1')
    assert "78,after" in reject.raw_record  # CSV fields may span lines: nothing is lost
    assert "unterminated quote" in reject.error


def test_bad_line_inside_the_sniff_sample_falls_back_to_inference(tmp_path: Path) -> None:
    # a stray quote in the sample makes DuckDB's sniffer give up on the '"' dialect
    text = 'id,amount,day,name\n1,1.5,2024-01-01,"a, b"\n2,"2.5,2024-01-02,b\n'
    write(tmp_path / "f.csv", text)
    data, sink = read(source(tmp_path), "f.csv", options={"quote": '"'})
    assert data.to_pydict() == {
        "id": [1],
        "amount": [1.5],
        "day": [dt.date(2024, 1, 1)],
        "name": ["a, b"],
    }
    assert [r.source_line for r in sink.items] == [3]


def test_rejects_without_a_sink_fail_the_read_after_the_data(tmp_path: Path) -> None:
    write(tmp_path / "orders.csv", ORDERS)
    it = source(tmp_path).read("orders.csv", options={"schema": ORDERS_SCHEMA})
    rows = 0
    with pytest.raises(SourceFormatError) as err:
        for batch in it:
            rows += batch.num_rows
    assert rows == 2
    assert err.value.location == f"{tmp_path / 'orders.csv'}:3"
    assert "oops" in str(err.value)
    assert "rejects" in (err.value.hint or "")
    assert err.value.attrs()["rejected"] == 1


# -- whole-file errors -------------------------------------------------------------------


def test_missing_file_names_path_and_base(tmp_path: Path) -> None:
    write(tmp_path / "orders.csv", "a\n1\n")
    with pytest.raises(SourceNotFoundError) as err:
        source(tmp_path).read("order.csv")
    assert "order.csv" in err.value.message and str(tmp_path) in err.value.message
    assert "orders.csv" in (err.value.hint or "")


def test_glob_matching_nothing(tmp_path: Path) -> None:
    with pytest.raises(SourceNotFoundError, match=r"No files match 'in/\*\.csv'"):
        source(tmp_path).read("in/*.csv")


def test_stream_may_not_leave_the_base(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="leaves"):
        source(tmp_path / "sub").read("../secret.csv")
    with pytest.raises(ConfigError, match="relative"):
        source(tmp_path).read("/etc/passwd")


def test_unknown_format_option_lists_valid_formats(tmp_path: Path) -> None:
    write(tmp_path / "a.csv", "a\n1\n")
    with pytest.raises(ConfigError) as err:
        source(tmp_path).read("a.csv", options={"format": "xlsx"})
    assert "csv, jsonl, parquet" in (err.value.hint or "")


def test_unknown_extension_asks_for_a_format(tmp_path: Path) -> None:
    write(tmp_path / "a.dat", "a\n1\n")
    with pytest.raises(ConfigError, match=r"a\.dat") as err:
        source(tmp_path).read("a.dat")
    assert "options.format" in (err.value.hint or "")
    assert table(source(tmp_path, format="csv").read("a.dat")).num_rows == 1


def test_unknown_option_key_lists_valid_keys(tmp_path: Path) -> None:
    write(tmp_path / "a.csv", "a\n1\n")
    with pytest.raises(ConfigError, match="'delim'") as err:
        source(tmp_path).read("a.csv", options={"delim": ";"})
    assert "delimiter" in (err.value.hint or "")


def test_csv_option_on_parquet_is_refused(tmp_path: Path) -> None:
    pq.write_table(pa.table({"a": [1]}), tmp_path / "a.parquet")
    with pytest.raises(ConfigError, match="delimiter"):
        source(tmp_path).read("a.parquet", options={"delimiter": ";"})


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_binary_file_is_a_format_error_without_traceback(tmp_path: Path, fmt: str) -> None:
    (tmp_path / f"img.{fmt}").write_bytes(bytes(range(256)) * 64)
    with pytest.raises(SourceFormatError) as err:
        list(source(tmp_path).read(f"img.{fmt}"))
    assert f"img.{fmt}" in str(err.value)
    assert "Traceback" not in str(err.value)
    assert err.value.__cause__ is None


def test_garbage_parquet_is_a_format_error(tmp_path: Path) -> None:
    (tmp_path / "x.parquet").write_bytes(os.urandom(4096))
    with pytest.raises(SourceFormatError, match=r"x\.parquet"):
        list(source(tmp_path).read("x.parquet"))


# -- JSON Lines -----------------------------------------------------------------------------


def jsonl(rows: list[object]) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


def test_jsonl_read_and_inference(tmp_path: Path) -> None:
    rows = [
        {"id": i, "name": f"n{i}", "score": i / 2, "day": f"2024-01-0{i + 1}"} for i in range(3)
    ]
    write(tmp_path / "a.jsonl", jsonl(rows))
    write(tmp_path / "b.ndjson", jsonl(rows))
    for name in ("a.jsonl", "b.ndjson"):
        data, sink = read(source(tmp_path), name)
        assert data["id"].to_pylist() == [0, 1, 2]
        assert data.schema.field("score").type == pa.float64()
        assert data.schema.field("day").type == pa.date32()
        assert sink.items == []


def test_jsonl_bad_lines_are_rejected_with_line_numbers(tmp_path: Path) -> None:
    rows: list[object] = [{"id": i, "v": "x"} for i in range(10)]
    rows[3] = '{"id": 3, "v": '
    rows[6] = "[1, 2]"
    rows[8] = {"id": "eight", "v": "y"}
    write(tmp_path / "bad.jsonl", jsonl(rows))
    data, sink = read(
        source(tmp_path), "bad.jsonl", options={"schema": {"id": "BIGINT", "v": "VARCHAR"}}
    )
    assert data["id"].to_pylist() == [0, 1, 2, 4, 5, 7, 9]
    assert [(r.source_line, r.column) for r in sink.items] == [(4, None), (7, None), (9, "id")]
    assert sink.items[0].error == "invalid JSON" and sink.items[0].raw_record == '{"id": 3, "v": '
    assert "object" in sink.items[1].error
    assert '"eight"' in sink.items[2].error and "BIGINT" in sink.items[2].error


def test_jsonl_bad_line_after_batches_were_yielded_is_not_doubled(tmp_path: Path) -> None:
    lines: list[object] = [{"id": i} for i in range(5000)]
    lines[4321] = "not json"
    lines.insert(100, "")  # blank lines count as lines, are not rows, are not rejects
    write(tmp_path / "big.jsonl", jsonl(lines))
    data, sink = read(source(tmp_path), "big.jsonl", options={"batch_rows": 500})
    ids = data["id"].to_pylist()
    assert len(ids) == 4999 and len(set(ids)) == 4999
    assert ids == sorted(ids)
    assert [r.source_line for r in sink.items] == [4323]


def test_jsonl_pushdown_on_the_line_path(tmp_path: Path) -> None:
    lines: list[object] = [{"id": i, "odd": i % 2 == 1} for i in range(20)]
    lines[1] = "{broken"
    write(tmp_path / "p.jsonl", jsonl(lines))
    data, sink = read(source(tmp_path), "p.jsonl", columns=["id"], predicate="odd", limit=3)
    assert data.to_pydict() == {"id": [3, 5, 7]}
    assert len(sink.items) == 1


def test_jsonl_zstd(tmp_path: Path) -> None:
    with pa.CompressedOutputStream(str(tmp_path / "z.jsonl.zst"), "zstd") as out:
        out.write(jsonl([{"a": 1}, "oops", {"a": 2}]).encode())
    data, sink = read(source(tmp_path), "z.jsonl.zst")
    assert data.to_pydict() == {"a": [1, 2]}
    assert [r.source_line for r in sink.items] == [2]


# -- Parquet, globs, pushdown -------------------------------------------------------------


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    for part in range(3):
        base = part * 100
        write(
            tmp_path / "orders" / f"part-{part}.csv",
            "id,customer,amount\n"
            + "".join(f"{i},c{i % 7},{i * 1.5}\n" for i in range(base, base + 100)),
        )
    pq.write_table(
        pa.table({"id": list(range(300)), "customer": [f"c{i % 7}" for i in range(300)]}),
        tmp_path / "orders.parquet",
    )
    write(tmp_path / "orders" / ".part-9.csv.tmp-1", "id\nnot read\n")
    return tmp_path


def test_glob_and_directory_streams_read_every_file(lake: Path) -> None:
    src = source(lake)
    for stream in ("orders/*.csv", "orders/", "orders", "**/part-*.csv"):
        data, _ = read(src, stream)
        assert sorted(data["id"].to_pylist()) == list(range(300)), stream


def test_rejects_name_the_file_they_come_from(lake: Path) -> None:
    with (lake / "orders" / "part-1.csv").open("a") as f:
        f.write("1000,c1,not-a-number\n")
    _, sink = read(source(lake), "orders/*.csv", options={"schema": {"amount": "DOUBLE"}})
    [reject] = sink.items
    assert reject.source_file == str(lake / "orders" / "part-1.csv")
    assert reject.source_line == 102


@pytest.mark.parametrize("stream", ["orders/*.csv", "orders.parquet"])
def test_projection_predicate_and_limit_are_pushed_down(lake: Path, stream: str) -> None:
    src = source(lake)
    data, _ = read(src, stream, columns=["customer", "id"])
    assert data.column_names == ["customer", "id"] and data.num_rows == 300
    data, _ = read(src, stream, predicate="customer = 'c3' AND id < 100")
    assert sorted(data["id"].to_pylist()) == [i for i in range(100) if i % 7 == 3]
    data, _ = read(src, stream, limit=7)
    assert data.num_rows == 7
    data, _ = read(src, stream, limit=0)
    assert data.num_rows == 0


def test_unknown_column_and_bad_predicate(lake: Path) -> None:
    src = source(lake)
    with pytest.raises(ConfigError, match="'custmer'") as err:
        list(src.read("orders.parquet", columns=["custmer"]))
    assert "customer" in (err.value.hint or "")
    with pytest.raises(QueryError):
        list(src.read("orders.parquet", predicate="no_such_column > 1"))


def test_parquet_batches_respect_batch_rows(lake: Path) -> None:
    batches = list(source(lake).read("orders.parquet", options={"batch_rows": 64}))
    assert sum(b.num_rows for b in batches) == 300
    assert max(b.num_rows for b in batches) <= 64


# -- discover and check ---------------------------------------------------------------------


def test_discover_lists_files_with_schemas(lake: Path) -> None:
    (lake / "broken.jsonl").write_bytes(b"\x00\x01\x02")
    streams = {s.name: s for s in source(lake).discover()}
    assert set(streams) == {
        "orders/part-0.csv",
        "orders/part-1.csv",
        "orders/part-2.csv",
        "orders.parquet",
        "broken.jsonl",
    }
    schema = streams["orders/part-0.csv"].schema
    assert schema is not None and schema.names == ["id", "customer", "amount"]
    assert streams["broken.jsonl"].schema is None
    assert "binary" in (streams["broken.jsonl"].description or "")


def test_check(tmp_path: Path) -> None:
    source(tmp_path).check()
    with pytest.raises(ConnectorError, match="does not exist"):
        source(tmp_path / "missing").check()


# -- the JSON Lines block path -------------------------------------------------------------


def test_jsonl_many_blocks_with_scattered_bad_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from headwater.connectors.files import jsonl_blocks

    monkeypatch.setattr(jsonl_blocks, "BLOCK_BYTES", 4096)
    lines: list[object] = [{"id": i, "tag": f"t{i % 5}"} for i in range(20_000)]
    bad_at = {7: "nope", 5_000: '{"id": "x", "tag": "t"}', 19_998: "[]"}
    for index, text in bad_at.items():
        lines[index] = text
    write(tmp_path / "a.jsonl", jsonl(lines[:10_000]).replace("\n", "\r\n"))
    write(tmp_path / "b.jsonl", jsonl(lines[10_000:]))
    data, sink = read(source(tmp_path), "*.jsonl", options={"batch_rows": 1000})
    ids = data["id"].to_pylist()
    assert ids == [i for i in range(20_000) if i not in bad_at]
    assert [(r.source_file.rsplit("/", 1)[1], r.source_line) for r in sink.items] == [
        ("a.jsonl", 8),
        ("a.jsonl", 5001),
        ("b.jsonl", 9999),
    ]
    assert sink.items[0].raw_record == "nope"  # no trailing carriage return


@pytest.mark.parametrize("predicate", [None, "id % 3 = 0"])
def test_jsonl_block_path_skips_what_the_fast_path_yielded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, predicate: str | None
) -> None:
    import duckdb

    from headwater.connectors.files import jsonl_blocks
    from headwater.connectors.files.reading import RejectGate
    from headwater.connectors.files.storage import Storage

    monkeypatch.setattr(jsonl_blocks, "BLOCK_BYTES", 1000)
    lines: list[object] = [{"id": i} for i in range(500)]
    lines[300] = "{bad"
    lines.insert(50, "   ")
    write(tmp_path / "s.jsonl", jsonl(lines))
    storage = Storage(FilesConfig(path=str(tmp_path)))
    expected = [i for i in range(500) if i != 300 and (predicate is None or i % 3 == 0)]
    skip = 120
    gate = RejectGate(ListRejectSink(), "s.jsonl")
    batches = jsonl_blocks.read_blocks(
        duckdb.connect(),
        storage,
        storage.resolve("s.jsonl"),
        compression="auto",
        batch_rows=64,
        struct={"id": "BIGINT"},
        columns=None,
        predicate=predicate,
        remaining=None,
        skip=skip,
        gate=gate,
    )
    assert table(batches)["id"].to_pylist() == expected[skip:]
    assert gate.count == 1


def test_jsonl_gzip_and_compression_override(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(b'{"a": 1}\n{"a": 2}\n'))
    (tmp_path / "b.data").write_bytes(gzip.compress(b'{"a": 3}\n'))
    data, _ = read(source(tmp_path), "a.jsonl.gz")
    assert data.to_pydict() == {"a": [1, 2]}
    data, _ = read(source(tmp_path), "b.data", options={"format": "jsonl", "compression": "gzip"})
    assert data.to_pydict() == {"a": [3]}


def test_glob_files_with_another_header_are_refused(tmp_path: Path) -> None:
    write(tmp_path / "in" / "a.csv", "id,name\n1,a\n")
    write(tmp_path / "in" / "b.csv", "name,id\nb,2\n")
    write(tmp_path / "in" / "c.csv", "")
    with pytest.raises(SourceFormatError, match=r"b\.csv has the header") as err:
        list(source(tmp_path).read("in/*.csv"))
    assert "union_by_name" in (err.value.hint or "")


def test_union_by_name_matches_columns_and_keeps_rejects(tmp_path: Path) -> None:
    write(tmp_path / "in" / "a.csv", "id,name\n1,a\n")
    write(tmp_path / "in" / "b.csv", "name,id,extra\nb,2,x\nc,oops,y\n")
    data, sink = read(
        source(tmp_path), "in/*.csv", options={"union_by_name": True, "schema": {"id": "BIGINT"}}
    )
    assert sorted(data.to_pylist(), key=lambda r: r["id"]) == [
        {"id": 1, "name": "a", "extra": None},
        {"id": 2, "name": "b", "extra": "x"},
    ]
    assert [(r.source_file, r.source_line) for r in sink.items] == [
        (str(tmp_path / "in" / "b.csv"), 3)
    ]


def test_empty_csv_file_reads_as_nothing(tmp_path: Path) -> None:
    write(tmp_path / "e.csv", "")
    assert list(source(tmp_path).read("e.csv")) == []


def test_backslash_escapes_are_still_sniffed(tmp_path: Path) -> None:
    rows = "".join(f'{i},"say \\"hi\\" {i}"\n' for i in range(20))
    write(tmp_path / "b.csv", "id,text\n" + rows)
    data, sink = read(source(tmp_path), "b.csv")
    assert data["text"][0].as_py() == 'say "hi" 0'
    assert sink.items == []


def test_connection_format_applies_where_the_extension_says_nothing(tmp_path: Path) -> None:
    pq.write_table(pa.table({"a": [1]}), tmp_path / "known.parquet")
    write(tmp_path / "logs" / "x.txt", "a\n2\n")
    write(tmp_path / "logs" / "y.csv", "a\n3\n")
    src = source(tmp_path, format="csv")
    assert table(src.read("known.parquet")).to_pydict() == {"a": [1]}
    assert sorted(table(src.read("logs/")).column("a").to_pylist()) == [2, 3]
    names = {s.name for s in src.discover()}
    assert names == {"known.parquet", "logs/x.txt", "logs/y.csv"}
    assert table(source(tmp_path).read("logs", options={"format": "csv"})).num_rows == 2


def test_empty_file_first_in_a_glob_does_not_pin_the_dialect(tmp_path: Path) -> None:
    write(tmp_path / "orders" / "a_empty.csv", "")
    write(tmp_path / "orders" / "b.csv", "id,name\n1,x\n2,y\n")
    write(tmp_path / "orders" / "c_empty.csv", "")
    data, sink = read(source(tmp_path), "orders/*.csv")
    assert data.to_pydict() == {"id": [1, 2], "name": ["x", "y"]}
    assert sink.items == []


def test_empty_compressed_file_first_in_a_glob_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "a.csv.gz").write_bytes(gzip.compress(b""))
    write(tmp_path / "g" / "b.csv", "id,name\n1,x\n")
    data, sink = read(source(tmp_path), "g/*")
    assert data.to_pydict() == {"id": [1], "name": ["x"]}
    assert sink.items == []


def test_glob_of_only_empty_files_reads_as_nothing(tmp_path: Path) -> None:
    write(tmp_path / "e" / "a.csv", "")
    write(tmp_path / "e" / "b.csv", "")
    assert list(source(tmp_path).read("e/*.csv")) == []


@pytest.mark.parametrize("bom_file", ["a.csv", "b.csv"])
def test_utf8_bom_on_one_file_of_a_glob_is_not_a_header_mismatch(
    tmp_path: Path, bom_file: str
) -> None:
    for name, rows in (("a.csv", "1,x\n"), ("b.csv", "2,y\n")):
        bom = "\ufeff" if name == bom_file else ""
        write(tmp_path / "g" / name, f"{bom}id,name\n{rows}")
    data, sink = read(source(tmp_path), "g/*.csv")
    assert data.to_pydict() == {"id": [1, 2], "name": ["x", "y"]}
    assert sink.items == []


def test_utf8_bom_is_not_part_of_the_first_name_when_the_schema_is_inferred(
    tmp_path: Path,
) -> None:
    rows = "".join(f"{i},a\n" for i in range(5))
    write(tmp_path / "f.csv", "\ufeffid,name\n1,a,extra,more\n" + rows)  # sniffer gives up
    data, sink = read(source(tmp_path), "f.csv")
    assert data.column_names == ["id", "name"] and data.num_rows == 5
    assert [r.source_line for r in sink.items] == [2]


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("http://admin:pw@10.0.0.1:9000/b", "http://admin:****@10.0.0.1:9000/b"),
        ('url: "https://u:p%40ss@host/x" failed', 'url: "https://u:****@host/x" failed'),
        ("s3://user@host/k and http://a:b@c", "s3://user@host/k and http://a:****@c"),
        ("no url here: a@b", "no url here: a@b"),
    ],
)
def test_redact_masks_url_passwords(text: str, shown: str) -> None:
    assert redact(text) == shown


def test_redact_removes_given_secrets() -> None:
    assert redact("key AKIA1234 secret s3cr3t!", ("s3cr3t!", "AKIA1234", None)) == (
        "key **** secret ****"
    )


# -- a read with no rows still yields the schema ------------------------------------------
def _only_empty_batch(batches: list[pa.RecordBatch]) -> pa.Schema:
    [batch] = batches
    assert isinstance(batch, pa.RecordBatch) and batch.num_rows == 0
    return batch.schema


def test_header_only_csv_yields_one_empty_batch_with_the_schema(tmp_path: Path) -> None:
    write(tmp_path / "h.csv", "id,name\n")
    batches = list(
        source(tmp_path).read("h.csv", options={"schema": {"id": "BIGINT", "name": "VARCHAR"}})
    )
    assert _only_empty_batch(batches) == pa.schema([("id", pa.int64()), ("name", pa.string())])


def test_csv_with_every_row_rejected_yields_the_schema_and_the_rejects(tmp_path: Path) -> None:
    write(tmp_path / "r.csv", "id,amount\n1,x\n2,y\n")
    sink = ListRejectSink()
    batches = list(
        source(tmp_path).read("r.csv", rejects=sink, options={"schema": {"amount": "DOUBLE"}})
    )
    assert _only_empty_batch(batches) == pa.schema([("id", pa.int64()), ("amount", pa.float64())])
    assert [(r.source_line, r.column) for r in sink.items] == [(2, "amount"), (3, "amount")]


def test_jsonl_with_every_line_rejected_yields_the_schema(tmp_path: Path) -> None:
    write(tmp_path / "j.jsonl", '{"id": "a"}\nnot json\n')
    sink = ListRejectSink()
    batches = list(
        source(tmp_path).read(
            "j.jsonl", rejects=sink, options={"schema": {"id": "BIGINT", "v": "VARCHAR"}}
        )
    )
    assert _only_empty_batch(batches) == pa.schema([("id", pa.int64()), ("v", pa.string())])
    assert [r.source_line for r in sink.items] == [1, 2]


def test_jsonl_predicate_matching_nothing_yields_the_projected_schema(tmp_path: Path) -> None:
    write(tmp_path / "j.jsonl", '{"id": 1, "v": "a"}\n')
    batches = list(source(tmp_path).read("j.jsonl", columns=["v"], predicate="id > 5"))
    assert _only_empty_batch(batches) == pa.schema([("v", pa.string())])


def test_parquet_predicate_matching_nothing_yields_the_schema(tmp_path: Path) -> None:
    pq.write_table(pa.table({"id": [1, 2], "v": ["a", "b"]}), tmp_path / "p.parquet")
    batches = list(source(tmp_path).read("p.parquet", predicate="id > 5"))
    assert _only_empty_batch(batches) == pa.schema([("id", pa.int64()), ("v", pa.string())])
