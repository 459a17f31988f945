"""The error hierarchy: structured fields, pickling, did-you-mean; CI never skips services."""

from __future__ import annotations

import pickle

import pytest

import tests.conftest as shared
from headwater.errors import (
    CheckFailedError,
    ConnectorUnavailableError,
    HeadwaterError,
    PipelineSyntaxError,
    Terminal,
    Transient,
    choices_hint,
    did_you_mean,
)


def test_errors_survive_pickling_with_their_fields() -> None:
    exc = PipelineSyntaxError(
        "unknown field `sqll`",
        location="pipelines/a.yaml:3:5",
        hint="Did you mean `sql`?",
        step="clean",
        errors=[{"location": "pipelines/a.yaml:3:5", "message": "x"}],
    )
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is PipelineSyntaxError
    assert back.attrs() == exc.attrs()
    assert str(back) == "pipelines/a.yaml:3:5: unknown field `sqll`\n  hint: Did you mean `sql`?"


def test_retry_markers() -> None:
    assert isinstance(ConnectorUnavailableError("x"), Transient)
    assert isinstance(CheckFailedError("x"), Terminal)
    assert isinstance(CheckFailedError("x"), HeadwaterError)


def test_did_you_mean() -> None:
    assert did_you_mean("postgress", ["postgres", "files"]) == "Did you mean `postgres`?"
    assert did_you_mean("zzz", ["postgres"]) is None
    assert choices_hint("fils", ["files", "memory"], "connectors") == (
        "Did you mean `files`? Valid connectors: files, memory."
    )


def test_a_missing_service_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(shared, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        shared.require_service("Nothing", "127.0.0.1", port)
    monkeypatch.setattr(shared, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception, match="not reachable"):
        shared.require_service("Nothing", "127.0.0.1", port)
