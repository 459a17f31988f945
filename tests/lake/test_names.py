from __future__ import annotations

import pickle

import pytest

from headwater.errors import InvalidDatasetNameError
from headwater.lake import parse_name, quarantine_name


@pytest.mark.parametrize("name", ["raw.orders", "_z.t_1", "mart.orders__quarantine", "a.b"])
def test_valid_names(name: str) -> None:
    parsed = parse_name(name)
    assert parsed.full == name


@pytest.mark.parametrize(
    "name",
    [
        "orders",
        "Raw.orders",
        "raw.Orders",
        "raw.orders.x",
        "1raw.orders",
        "raw.",
        ".x",
        "raw-x.y",
        "",
    ],
)
def test_invalid_names_quote_the_value_and_the_expected_form(name: str) -> None:
    with pytest.raises(InvalidDatasetNameError) as info:
        parse_name(name)
    err = info.value
    assert repr(name) in err.message
    assert "zone.name" in err.message
    assert err.dataset == name
    assert pickle.loads(pickle.dumps(err)).attrs() == err.attrs()


def test_invalid_name_suggests_the_lower_case_form() -> None:
    with pytest.raises(InvalidDatasetNameError) as info:
        parse_name("Raw.Orders")
    assert "raw.orders" in (info.value.hint or "")


def test_quarantine_name() -> None:
    assert quarantine_name("raw.orders") == "raw.orders__quarantine"
    assert quarantine_name("raw.orders__quarantine") == "raw.orders__quarantine"
    assert parse_name("raw.orders__quarantine").is_quarantine
