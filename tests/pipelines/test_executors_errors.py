"""Every HeadwaterError class survives pickling (what the process and Dask executors do)
with its class, its structured fields, its extra details and the traceback text."""

from __future__ import annotations

import importlib
import pickle
import pkgutil
import traceback

import pytest

import headwater
from headwater.errors import HeadwaterError, Terminal, Transient


def _all_error_classes() -> list[type[HeadwaterError]]:
    for info in pkgutil.walk_packages(headwater.__path__, "headwater."):
        if ".migrations" in info.name or info.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(info.name)
        except ImportError:  # a connector whose optional driver is not installed
            continue
    found: list[type[HeadwaterError]] = []
    todo: list[type[HeadwaterError]] = [HeadwaterError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted(set(found), key=lambda c: f"{c.__module__}.{c.__qualname__}")


ERRORS = _all_error_classes()


def test_the_hierarchy_is_found() -> None:
    names = {c.__name__ for c in ERRORS}
    assert {"HeadwaterError", "SourceNotFoundError", "CheckFailedError", "RunError"} <= names
    assert len(ERRORS) >= 25


@pytest.mark.parametrize("cls", ERRORS, ids=lambda c: c.__name__)
def test_every_error_class_round_trips_with_fields_and_traceback(
    cls: type[HeadwaterError],
) -> None:
    def fail() -> None:
        raise cls(
            "what happened",
            location="pipelines/a.yaml:3:5",
            hint="what to do",
            pipeline="shop",
            step="extract_orders",
            connector="pg",
            dataset="raw.orders",
            column="amount",
            field="steps[0].stream",
            checks=[{"name": "unique_id", "passed": False}],
            rows=7,
        )

    with pytest.raises(cls) as info:
        fail()
    original = info.value
    back = pickle.loads(pickle.dumps(original))
    assert type(back) is cls
    assert back.attrs() == original.attrs()
    assert back.details == {"checks": [{"name": "unique_id", "passed": False}], "rows": 7}
    assert str(back) == str(original)
    assert isinstance(back, Transient) == isinstance(original, Transient)
    assert isinstance(back, Terminal) == isinstance(original, Terminal)
    # the stack where it was raised travels as text, and travels again unchanged
    expected = "".join(traceback.format_exception(original))
    assert back.remote_traceback == expected
    assert "in fail" in expected and cls.__name__ in expected
    again = pickle.loads(pickle.dumps(back))
    assert again.remote_traceback == expected
    assert back.traceback_text() == expected


def test_an_error_never_raised_has_no_traceback() -> None:
    back = pickle.loads(pickle.dumps(HeadwaterError("x", step="s")))
    assert back.remote_traceback is None and back.step == "s"
