"""Dataset profiles: statistics against values computed by hand, patterns, storage per version,
comparison between versions, and the `headwater profile` command."""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from headwater import Workspace
from headwater.cli._state import console
from headwater.cli.app import main
from headwater.errors import DatasetNotFoundError
from headwater.quality.profile import compare_profiles, load_profile, profile_versions

AMOUNTS = [1.0, 2.0, 2.0, 3.0, 4.0, 5.0, 8.0, 10.0, None, None]
PEOPLE = pa.table(
    {
        "id": pa.array(range(1, 11), pa.int64()),
        "amount": pa.array(AMOUNTS, pa.float64()),
        "country": ["DE", "DE", "DE", "FR", "FR", "US", None, "DE", "FR", "GB"],
        "email": [f"user{i}@example.com" for i in range(9)] + ["not an email"],
        "site": [f"https://example.org/p/{i}" for i in range(10)],
        "token": [f"123e4567-e89b-12d3-a456-4266141740{i:02d}" for i in range(10)],
        "phone": [f"+49 30 1234{i:03d}" for i in range(10)],
        "day": [f"2024-05-{i + 1:02d}" for i in range(10)],
        "ordered_at": pa.array(
            [1_700_000_000_000_000 + i * 3_600_000_000 for i in range(10)], pa.timestamp("us")
        ),
        "active": [True, True, False, True, None, True, True, False, True, True],
    }
)


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    with Workspace.init(tmp_path / "ws") as workspace:
        workspace.write("raw.people", PEOPLE)
        yield workspace


@pytest.fixture
def ws_any_metadata(
    tmp_path: Path, metadata_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Workspace]:
    """A workspace on SQLite and on PostgreSQL metadata."""
    monkeypatch.setenv("HEADWATER_METADATA_URL", metadata_url)
    with Workspace.init(tmp_path / "ws") as workspace:
        workspace.write("raw.people", PEOPLE)
        yield workspace


def test_statistics_match_hand_computed_values(ws: Workspace) -> None:
    p = ws.profile("raw.people")
    # histogram bounds come from the Delta log's file statistics: one pass over the data
    assert p.rows == 10 and p.version == 0 and p.passes == 1
    amount = p.column("amount")
    values = [v for v in AMOUNTS if v is not None]
    assert amount.kind == "numeric" and amount.nulls == 2 and amount.null_rate == 0.2
    assert amount.distinct == 7
    assert (amount.min, amount.max) == (1.0, 10.0)
    assert amount.mean == pytest.approx(statistics.fmean(values))
    assert amount.stddev == pytest.approx(statistics.stdev(values))
    assert amount.quantiles["p50"] == pytest.approx(3.5, abs=0.5)
    assert set(amount.quantiles) == {"p05", "p25", "p50", "p75", "p95"}
    # 20 equal-width bins from 1 to 10; every non-null value lands in exactly one
    hist = amount.histogram
    assert len(hist["edges"]) == 21 and hist["edges"][0] == 1.0 and hist["edges"][-1] == 10.0
    assert sum(hist["counts"]) == 8
    assert hist["counts"][0] == 1 and hist["counts"][-1] == 1  # the values 1.0 and 10.0

    country = p.column("country")
    assert country.kind == "text" and country.nulls == 1 and country.distinct == 4
    assert country.top_values[:2] == [("DE", 4), ("FR", 3)]
    assert country.lengths == {"min": 2.0, "mean": 2.0, "max": 2.0}

    ordered = p.column("ordered_at")
    assert ordered.kind == "temporal"
    assert ordered.min == "2023-11-14T22:13:20" and ordered.max == "2023-11-15T07:13:20"
    assert sum(ordered.histogram["counts"]) == 10

    active = p.column("active")
    assert active.kind == "boolean" and active.nulls == 1
    assert active.top_values == [(True, 7), (False, 2)]

    ids = p.column("id")
    assert ids.distinct == 10 and ids.top_values == []  # all distinct: nothing stands out


def test_without_file_statistics_histograms_take_a_second_pass(ws: Workspace) -> None:
    from headwater.quality.profile import profile_relation

    one = ws.profile("raw.people")
    with ws.session() as session:
        session.attach("raw.people")
        two = profile_relation(session, "raw.people", dataset="raw.people", version=0)
    assert two.passes == 2
    for name in ("amount", "ordered_at", "id"):
        assert two.column(name).histogram == one.column(name).histogram, name
    assert two.column("country").top_values == one.column("country").top_values
    bare = ws.profile("raw.people", histograms=False)
    assert bare.passes == 1 and bare.column("amount").histogram == {}
    assert bare.column("amount").mean == one.column("amount").mean


def test_patterns_are_inferred_from_text(ws: Workspace) -> None:
    p = ws.profile("raw.people")
    assert p.column("email").pattern == "email"
    assert p.column("email").patterns["email"] == 0.9  # 9 of 10 values are addresses
    assert p.column("site").pattern == "url"
    assert p.column("token").pattern == "uuid"
    assert p.column("phone").pattern == "phone"
    assert p.column("day").pattern == "iso_date"
    assert p.column("country").pattern is None
    assert p.column("email").lengths == {"min": 12.0, "mean": 16.5, "max": 17.0}


def test_pattern_sample_on_a_large_text_column(ws: Workspace) -> None:
    from headwater.quality.profile import profile_relation

    n = 200_000
    with ws.session() as session:
        session.con.execute(
            f"CREATE VIEW big AS SELECT 'u' || i || '@mail.example.com' AS email, i, "
            f"['a', 'b', 'c', 'd'][i % 4 + 1] AS letter FROM range({n}) t(i)"
        )
        p = profile_relation(session, "big", dataset="big", version=None, sample_rows=10_000)
    assert p.rows == n and p.sample_rows == 10_000
    email = p.column("email")
    assert email.pattern == "email" and email.patterns["email"] == 1.0
    assert email.distinct == pytest.approx(n, rel=0.05)
    assert p.column("i").mean == pytest.approx((n - 1) / 2)
    # top values of a large column are counted on the sample and scaled up
    letter = p.column("letter")
    assert letter.top_values_estimated
    assert sorted(v for v, _ in letter.top_values) == ["a", "b", "c", "d"]
    for _, count in letter.top_values:
        assert count == pytest.approx(n / 4, rel=0.1)
    assert email.top_values == []  # not categorical
    assert sum(p.column("i").histogram["counts"]) == n  # from the second pass


def test_profiles_are_stored_per_version_and_compared(ws_any_metadata: Workspace) -> None:
    ws = ws_any_metadata
    ws.profile("raw.people")
    changed = PEOPLE.set_column(
        PEOPLE.schema.get_field_index("amount"),
        "amount",
        pa.array([v * 10 if v is not None else None for v in AMOUNTS[:8]] + [None, 1.0]),
    ).append_column("note", pa.array(["x"] * 10))
    ws.write("raw.people", changed, mode="overwrite")
    new = ws.profile("raw.people")
    assert new.version == 1
    assert profile_versions(ws.store, "raw.people") == [0, 1]
    old = load_profile(ws.store, "raw.people", 0)
    assert old is not None and old.column("amount").mean == pytest.approx(4.375)
    # time travel: profiling version 0 again reads the old data
    again = ws.profile("raw.people", version=0)
    assert again.column("amount").mean == pytest.approx(4.375)
    changes = {c.column: c for c in compare_profiles(old, new)}
    amount = changes["amount"]
    assert amount.change == "changed"
    assert amount.old_null_rate == 0.2 and amount.new_null_rate == 0.1
    assert amount.mean_shift is not None and amount.mean_shift > 5
    assert any("null rate 20.0% -> 10.0%" in n for n in amount.notes)
    assert changes["note"].change == "added"
    assert changes["id"].change == "same"


def test_unknown_dataset_is_a_clear_error(ws: Workspace) -> None:
    with pytest.raises(DatasetNotFoundError, match="no dataset named `raw.peple`") as info:
        ws.profile("raw.peple")
    assert "Did you mean `raw.people`?" in (info.value.hint or "")


def test_profile_command(
    ws: Workspace, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console, "width", 220)
    root = str(ws.root)
    ws.write("raw.people", PEOPLE.slice(0, 5), mode="overwrite")
    assert main(["-w", root, "profile", "raw.people", "--version", "0"]) == 0
    out = capsys.readouterr().out
    assert "raw.people version 0: 10 rows" in out
    assert "pattern email (90%)" in out and "top: DE (4), FR (3)" in out
    assert main(["-w", root, "profile", "raw.people", "--compare", "0"]) == 0
    out = capsys.readouterr().out
    assert "raw.people: version 0 (10 rows) -> version 1 (5 rows)" in out
    assert "20.0% -> 0.0%" in out  # amount had 2 NULLs in 10 rows, none in the first 5
    assert main(["-w", root, "profile", "raw.people", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["rows"] == 5 and doc["version"] == 1
    assert main(["-w", root, "profile", "raw.nothing"]) == 1
    assert "error: no dataset named `raw.nothing`" in capsys.readouterr().err
