"""The CLI end to end, and every bad input giving a short located error without a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from headwater import Workspace
from headwater.cli.app import main
from tests.workspace_helpers import PIPELINE, make_workspace


@pytest.fixture
def ws_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    make_workspace(tmp_path).close()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HEADWATER_WORKSPACE", raising=False)
    return tmp_path


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def assert_clean_error(err: str) -> None:
    assert "Traceback" not in err
    assert err.startswith("error:"), err


def test_init_run_inspect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "init", str(tmp_path / "new"))
    assert code == 0 and "workspace ready" in out
    make_workspace(tmp_path / "ws").close()
    monkeypatch.chdir(tmp_path / "ws")
    code, out, _ = run_cli(capsys, "validate", "pipelines/shop.yaml")
    assert code == 0 and "valid" in out and "check_orders" in out
    code, out, _ = run_cli(capsys, "run", "pipelines/shop.yaml")
    assert code == 0, out
    assert "succeeded" in out and "3 rows quarantined" in out
    assert "warn check `accepted_values_status`: 1 of 5 rows fail" in out
    code, out, _ = run_cli(capsys, "runs", "list")
    assert code == 0 and "shop" in out and "succeeded" in out
    with Workspace.open(tmp_path / "ws") as ws:
        run_id = ws.runs()[0].id
    code, out, _ = run_cli(capsys, "runs", "show", run_id[:8])
    assert code == 0 and run_id in out and "extract_orders" in out
    assert "warn check `accepted_values_status`" in out
    code, out, _ = run_cli(capsys, "datasets", "list")
    assert code == 0 and "staging.orders" in out and "raw.orders__quarantine" in out
    code, out, _ = run_cli(capsys, "datasets", "show", "raw.orders")
    assert code == 0 and "amount" in out and "decimal128(10, 2)" in out
    code, out, _ = run_cli(capsys, "datasets", "history", "staging.orders")
    assert code == 0 and "WRITE" in out.upper() and "history of staging.orders" in out


def test_query_formats(ws_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, "run", "shop")[0] == 0
    code, out, _ = run_cli(
        capsys, "query", "select order_id from staging.orders order by 1", "--format", "csv"
    )
    assert code == 0 and out.splitlines() == ['"order_id"', "1", "2", "5", "7"]
    code, out, _ = run_cli(
        capsys, "query", "select count(*) as n from staging.orders", "-f", "json"
    )
    assert code == 0 and json.loads(out) == {"n": 4}
    code, out, _ = run_cli(
        capsys, "query", "select count(*) as n from staging.orders", "--as-of", "0", "-f", "json"
    )
    assert code == 0 and json.loads(out) == {"n": 5}
    target = ws_dir / "out.parquet"
    code, out, _ = run_cli(
        capsys, "query", "select * from staging.orders", "-f", "parquet", "-o", str(target)
    )
    assert code == 0 and target.exists()
    code, _, err = run_cli(capsys, "query", "select 1", "-f", "xml")
    assert code == 1 and "unknown format `xml`" in err


def test_run_json_output(ws_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "run", "shop", "--json")
    data = json.loads(out)
    assert code == 0 and data["status"] == "succeeded"
    steps = {s["name"]: s for s in data["steps"]}
    assert (steps["extract_orders"]["rows_in"], steps["extract_orders"]["rows_quarantined"]) == (
        7,
        2,
    )


# -- bad input: each a short located message, a non-zero exit, no traceback ------------------


def _write(ws: Path, text: str) -> str:
    (ws / "pipelines" / "bad.yaml").write_text(text)
    return "pipelines/bad.yaml"


def test_invalid_yaml(ws_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = _write(ws_dir, "name: x\nsteps:\n  - type: extract\n    to: [raw.a\n")
    code, _, err = run_cli(capsys, "validate", f)
    assert code == 1
    assert_clean_error(err)
    assert "bad.yaml:5:1" in err or "bad.yaml:4" in err


def test_unknown_step_type(ws_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = _write(ws_dir, "name: x\nsteps:\n  - type: transfrom\n    sql: select 1\n    to: a.b\n")
    code, _, err = run_cli(capsys, "run", f)
    assert code == 1
    assert_clean_error(err)
    assert "bad.yaml:3:11" in err and "transform" in err and "Did you mean" in err


def test_cycle(ws_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = _write(
        ws_dir,
        "name: x\nsteps:\n"
        "  - {name: a, type: transform, sql: \"select * from {{ ref('s.b') }}\", to: s.a}\n"
        "  - {name: b, type: transform, sql: \"select * from {{ ref('s.a') }}\", to: s.b}\n",
    )
    code, _, err = run_cli(capsys, "validate", f)
    assert code == 1
    assert_clean_error(err)
    assert (
        "cycle" in err and "a -> b -> a" in err.replace("`", "")
    ) or "b -> a -> b" in err.replace("`", "")
    assert "bad.yaml:" in err


def test_ref_to_missing_dataset(ws_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = _write(
        ws_dir,
        "name: x\nsteps:\n  - name: t\n    type: transform\n    sql: select * from {{ ref('raw.ordrs') }}\n    to: s.a\n",
    )
    code, _, err = run_cli(capsys, "validate", f)
    assert code == 1
    assert_clean_error(err)
    assert "raw.ordrs" in err and "bad.yaml:5" in err


def test_missing_connection(ws_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = _write(
        ws_dir,
        "name: x\nsteps:\n  - name: e\n    type: extract\n    connection: landin\n    stream: a.csv\n    to: raw.a\n",
    )
    code, _, err = run_cli(capsys, "run", f)
    assert code == 1
    assert_clean_error(err)
    assert "bad.yaml:5:17" in err and "landing" in err


def test_wrong_secret(
    ws_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run_cli(
        capsys,
        "connections",
        "add",
        "bucket",
        "--type",
        "files",
        "--set",
        "path=s3://bucket/x",
        "--secret",
        "secret=hunter2",
    )
    assert code == 0, err
    code, out, _ = run_cli(capsys, "connections", "show", "bucket")
    assert "hunter2" not in out and "<encrypted>" in out
    # a different key: the stored secret can no longer be decrypted
    from cryptography.fernet import Fernet

    monkeypatch.setenv("HEADWATER_SECRET_KEY", Fernet.generate_key().decode())
    code, _, err = run_cli(capsys, "connections", "test", "bucket")
    assert code == 1
    assert_clean_error(err)
    assert "cannot decrypt the stored secret for connection `bucket` field `secret`" in err
    assert "hunter2" not in err
    # an unset ${ENV} reference names the variable
    monkeypatch.delenv("HEADWATER_SECRET_KEY")
    code, _, err = run_cli(
        capsys,
        "connections",
        "add",
        "bucket2",
        "--type",
        "files",
        "--set",
        "path=s3://bucket/x",
        "--secret",
        "secret=${NOT_SET_ANYWHERE}",
    )
    assert code == 0
    code, _, err = run_cli(capsys, "connections", "test", "bucket2")
    assert code == 1 and "`NOT_SET_ANYWHERE`" in err


def test_plain_secret_in_yaml_is_refused(ws_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (ws_dir / "headwater.yaml").write_text(
        "connections:\n  s3:\n    type: files\n    path: s3://b/p\n    secret: hunter2\n"
    )
    code, _, err = run_cli(capsys, "connections", "test", "s3")
    assert code == 1
    assert_clean_error(err)
    assert "plain secret" in err and "hunter2" not in err
    code, out, _ = run_cli(capsys, "connections", "show", "s3")
    assert code == 0 and "hunter2" not in out


def test_missing_file(ws_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = _write(
        ws_dir,
        "name: x\nsteps:\n  - {name: e, type: extract, connection: landing, stream: missing.csv, to: raw.m}\n",
    )
    code, out, err = run_cli(capsys, "run", f)
    assert code == 1
    assert "missing.csv" in out and "Traceback" not in out + err


def test_malformed_csv_is_quarantined_not_fatal(
    ws_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (ws_dir / "data" / "broken.csv").write_text('a,b\n1,2\n3,"unterminated\n4,5\n')
    f = _write(
        ws_dir,
        "name: x\nsteps:\n  - {name: e, type: extract, connection: landing, stream: broken.csv, options: {format: csv, schema: {a: BIGINT, b: BIGINT}}, to: raw.broken}\n",
    )
    code, out, err = run_cli(capsys, "run", f, "--json")
    assert code == 0, out + err
    step = json.loads(out)["steps"][0]
    assert step["rows_quarantined"] >= 1
    assert step["rows_in"] == step["rows_out"] + step["rows_quarantined"]


def test_garbage_file_is_a_clear_error(ws_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (ws_dir / "data" / "garbage.parquet").write_bytes(b"\x00\x01 not parquet at all \xff" * 50)
    f = _write(
        ws_dir,
        "name: x\nsteps:\n  - {name: e, type: extract, connection: landing, stream: garbage.parquet, to: raw.g}\n",
    )
    code, out, err = run_cli(capsys, "run", f)
    assert code == 1 and "garbage.parquet" in out and "Traceback" not in out + err


def test_schema_incompatible_write(ws_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, "run", "shop")[0] == 0
    f = _write(
        ws_dir,
        "name: x\nsteps:\n  - name: t\n    type: transform\n    sql: select 'x' as amount, order_id from {{ ref('raw.orders') }}\n    to: raw.orders\n    mode: append\n",
    )
    code, out, err = run_cli(capsys, "run", f)
    assert code == 1
    assert "raw.orders" in out and "amount" in out and "Traceback" not in out + err
    # nothing was written: the dataset still has its 5 rows
    code, out, _ = run_cli(capsys, "query", "select count(*) as n from raw.orders", "-f", "json")
    assert json.loads(out) == {"n": 5}


def test_query_syntax_error(ws_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "query", "selec * from raw.orders")
    assert code == 1
    assert_clean_error(err)
    assert "syntax error" in err and "LINE 1" in err


def test_debug_shows_traceback(ws_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "--debug", "query", "selec 1")
    assert code == 1 and "Traceback" in err


def test_no_workspace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HEADWATER_WORKSPACE", raising=False)
    code, _, err = run_cli(capsys, "datasets", "list")
    assert code == 1
    assert_clean_error(err)
    assert "headwater init" in err


def test_pipeline_constant_is_valid() -> None:
    from headwater.pipelines.spec import PipelineSpec

    assert len(PipelineSpec.from_yaml(PIPELINE).steps) == 5


def test_quarantine_command(ws_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "quarantine")
    assert code == 0 and "nothing quarantined" in out
    assert run_cli(capsys, "run", "shop")[0] == 0
    code, out, _ = run_cli(capsys, "quarantine")
    assert code == 0
    lines = [line for line in out.splitlines() if "raw.orders" in line or "staging.orders" in line]
    assert any("parse" in line and " 2 " in line for line in lines), out
    assert any("range_amount" in line and " 1 " in line for line in lines), out
    code, out, _ = run_cli(capsys, "quarantine", "list", "raw.orders")
    assert code == 0 and "abc" in out and "6,10,4.00" in out


def test_connections_discover(ws_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "connections", "discover", "landing")
    assert code == 0
    assert "orders.csv" in out and "customers.csv" in out and "customer_id" in out
    code, out, _ = run_cli(capsys, "connections", "discover", "landing", "-s", "customers.csv")
    assert code == 0 and "orders.csv" not in out and "country" in out
    code, _, err = run_cli(capsys, "connections", "discover", "landing", "-s", "nope.csv")
    assert code == 1 and "no stream `nope.csv`" in err


def test_discover_shows_database_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlite3

    make_workspace(tmp_path).close()
    db = tmp_path / "data" / "shop.sqlite"
    with sqlite3.connect(db) as con:
        con.execute("create table orders (id integer primary key, amount real, note text)")
    (tmp_path / "headwater.yaml").write_text(
        "connections:\n  shop: {type: sqlite, path: data/shop.sqlite}\n"
    )
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli(capsys, "connections", "discover", "shop")
    assert code == 0 and "orders" in out and "key: id" in out and "amount" in out


def test_incremental_extract_and_checkpoints_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlite3

    make_workspace(tmp_path).close()
    db = tmp_path / "data" / "shop.sqlite"
    with sqlite3.connect(db) as con:
        con.execute("create table orders (id integer primary key, amount real)")
        con.executemany("insert into orders values (?, ?)", [(i, i / 2) for i in range(1, 101)])
    (tmp_path / "headwater.yaml").write_text(
        "connections:\n  shop: {type: sqlite, path: data/shop.sqlite}\n"
    )
    (tmp_path / "pipelines" / "inc.yaml").write_text(
        "name: inc\nsteps:\n"
        "  - {type: extract, name: pull, connection: shop, stream: orders, to: raw.orders,\n"
        "     mode: append, incremental: {cursor: id}}\n"
    )
    monkeypatch.chdir(tmp_path)
    assert run_cli(capsys, "run", "inc")[0] == 0
    code, out, _ = run_cli(capsys, "checkpoints", "list")
    assert code == 0 and "pull" in out and " 100 " in out
    with sqlite3.connect(db) as con:
        con.executemany("insert into orders values (?, ?)", [(i, 1.0) for i in range(101, 111)])
    assert run_cli(capsys, "run", "inc")[0] == 0
    with Workspace.open(tmp_path) as ws:
        assert ws.read("raw.orders").num_rows == 110
    code, out, _ = run_cli(capsys, "checkpoints", "reset", "inc", "pull")
    assert code == 0 and "reset 1 checkpoint" in out
    assert "no checkpoints yet" in run_cli(capsys, "checkpoints", "list")[1]
    code, _, err = run_cli(capsys, "checkpoints", "reset", "inc", "pull")
    assert code == 1 and "No checkpoint for step `pull`" in err
    assert_clean_error(err)
