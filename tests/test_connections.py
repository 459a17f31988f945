"""Connections: secrets never leak into errors, logs or run records."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from headwater.errors import HeadwaterError
from headwater.testing import workspace_for_test


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_resolved_secrets_are_scrubbed_from_errors_and_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = "hunter2-TOPSECRET"
    monkeypatch.setenv("S3_PASSWORD", password)
    monkeypatch.setenv("S3_SECRET", "another-secret-value")
    connections = {
        "bucket": {
            "type": "files",
            "path": "s3://bucket/prefix",
            "endpoint_url": f"http://admin:${{S3_PASSWORD}}@127.0.0.1:{_closed_port()}",
            "key_id": "AKIAEXAMPLE",
            "secret": "${S3_SECRET}",
            "connect_timeout": 1,
            "read_timeout": 1,
        }
    }
    with workspace_for_test(tmp_path / "ws", connections=connections) as ws:
        with pytest.raises(HeadwaterError) as info:
            ws.test_connection("bucket")
        for text in (str(info.value), repr(info.value.attrs())):
            assert password not in text and "another-secret-value" not in text
        (ws.root / "pipelines" / "p.yaml").write_text(
            "name: p\nsteps:\n  - {name: e, type: extract, connection: bucket, stream: a.csv,"
            " to: raw.a}\n"
        )
        result = ws.run("p")
        assert not result.ok
        stored = ws.get_run(result.run_id).steps[0]
        for text in (result.steps[0].error or "", stored.error or "", repr(stored.details)):
            assert password not in text and "another-secret-value" not in text


def test_merge_extract_accounts_for_superseded_rows(tmp_path: Path) -> None:
    with workspace_for_test(
        tmp_path / "ws", connections={"landing": {"type": "files", "path": "data"}}
    ) as ws:
        (ws.root / "data" / "u.csv").write_text("id,v\n1,a\n2,b\n1,c\n2,d\n3,e\n")
        (ws.root / "pipelines" / "m.yaml").write_text(
            "name: m\nsteps:\n  - {name: e, type: extract, connection: landing, stream: u.csv,"
            " to: raw.u, mode: merge, keys: [id]}\n"
        )
        result = ws.run("m")
        assert result.ok, result.error
        step = result.steps[0]
        assert (step.rows_in, step.rows_out, step.rows_quarantined) == (5, 3, 0)
        assert step.details["rows_superseded"] == 2 and step.balanced
        rows = sorted(ws.read("raw.u").to_pylist(), key=lambda r: r["id"])
        assert rows == [{"id": 1, "v": "c"}, {"id": 2, "v": "d"}, {"id": 3, "v": "e"}]
