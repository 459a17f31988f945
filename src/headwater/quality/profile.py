"""Column profiles of a dataset version, computed by DuckDB and stored per version.

One aggregate query (pass 1) computes for every column at once: non-null count, approximate
distinct count (HyperLogLog), min/max, and by type mean, standard deviation and approximate
quantiles (t-digest) for numbers, string lengths, the most frequent values (``approx_top_k``) and
pattern matches (email, url, uuid, phone, ISO date) for text. Patterns are matched on a
Bernoulli sample of about :data:`PATTERN_SAMPLE_ROWS` rows, gated by a ``CASE`` so that rows
outside the sample never run the regular expressions.

A second, narrower query (pass 2) needs what pass 1 found: equi-width histograms between each
numeric or temporal column's min and max, and the exact counts of the top values. It reads only
the columns that need it and is skipped with ``histograms=False``. Row counts come from Parquet
metadata (``count(*)`` does not scan).

Profiles are stored in ``dataset_profiles`` per (dataset, version), so two versions can be
compared with :func:`compare_profiles`.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from headwater.engine.types import is_numeric_type
from headwater.errors import DatasetError
from headwater.metadata.models import DatasetProfileRow, utcnow
from headwater.quality.checks import quote_ident, sql_literal

if TYPE_CHECKING:
    from headwater.engine.session import EngineSession
    from headwater.metadata.store import MetadataStore
    from headwater.workspace import Workspace

log = logging.getLogger("headwater.quality")

__all__ = [
    "PATTERNS",
    "PATTERN_SAMPLE_ROWS",
    "ColumnChange",
    "ColumnProfile",
    "DatasetProfile",
    "compare_profiles",
    "delta_bounds",
    "load_profile",
    "profile_dataset",
    "profile_relation",
    "profile_versions",
    "save_profile",
]

# Anchored patterns tried on text columns; a column "is" a pattern when >= 90% of the sampled
# non-null values match it.
PATTERNS: dict[str, str] = {
    # most specific first: when several fit (an ISO date also looks like a phone number), the
    # first one wins
    "uuid": r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
    "email": r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$",
    "url": r"^(https?|ftp)://[^\s/$.?#][^\s]*$",
    "iso_date": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?"
    r"(Z|[+-][0-9]{2}:?[0-9]{2})?)?$",
    "phone": r"^\+?[0-9]([0-9 ().-]{5,18})[0-9]$",
}
PATTERN_SAMPLE_ROWS = 50_000
PATTERN_THRESHOLD = 0.9
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
TOP_K = 10
HISTOGRAM_BINS = 20


def _kind(duck_type: str) -> str:
    t = duck_type.upper()
    if is_numeric_type(t):
        return "numeric"
    if t.startswith("TIMESTAMP") or t in ("DATE", "TIME"):
        return "temporal"
    if t == "VARCHAR":
        return "text"
    if t == "BOOLEAN":
        return "boolean"
    return "other"


@dataclass
class ColumnProfile:
    """Statistics of one column; fields that do not apply to its kind stay None."""

    name: str
    type: str
    kind: str  # numeric | temporal | text | boolean | other
    nulls: int
    null_rate: float
    distinct: int | None = None  # approximate (HyperLogLog)
    min: Any = None
    max: Any = None
    mean: float | None = None
    stddev: float | None = None
    quantiles: dict[str, Any] = field(default_factory=dict)  # "p05" .. "p95"
    lengths: dict[str, float] = field(default_factory=dict)  # min, mean, max
    top_values: list[tuple[Any, int | None]] = field(default_factory=list)
    histogram: dict[str, list[Any]] = field(default_factory=dict)  # edges (n+1), counts (n)
    patterns: dict[str, float] = field(default_factory=dict)  # share of sampled values
    pattern: str | None = None  # the inferred pattern, when one fits >= 90%
    top_values_estimated: bool = False  # counts scaled up from the sample

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "kind": self.kind,
            "nulls": self.nulls,
            "null_rate": self.null_rate,
            "distinct": self.distinct,
            "min": self.min,
            "max": self.max,
            "mean": self.mean,
            "stddev": self.stddev,
            "quantiles": self.quantiles,
            "lengths": self.lengths,
            "top_values": [list(v) for v in self.top_values],
            "histogram": self.histogram,
            "patterns": self.patterns,
            "pattern": self.pattern,
            "top_values_estimated": self.top_values_estimated,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ColumnProfile:
        top = [(v[0], v[1]) for v in data.get("top_values") or []]
        return cls(**{**data, "top_values": top})


@dataclass
class DatasetProfile:
    """The profile of one dataset version."""

    dataset: str
    version: int | None
    rows: int
    columns: list[ColumnProfile]
    seconds: float = 0.0
    passes: int = 1
    sample_rows: int = 0
    created_at: datetime | None = None

    def column(self, name: str) -> ColumnProfile:
        for col in self.columns:
            if col.name == name:
                return col
        raise DatasetError(
            f"the profile of `{self.dataset}` has no column `{name}`",
            dataset=self.dataset,
            hint="Columns: " + ", ".join(c.name for c in self.columns),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "version": self.version,
            "rows": self.rows,
            "seconds": self.seconds,
            "passes": self.passes,
            "sample_rows": self.sample_rows,
            "columns": [c.to_json() for c in self.columns],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], created_at: datetime | None = None) -> DatasetProfile:
        return cls(
            dataset=data["dataset"],
            version=data.get("version"),
            rows=int(data["rows"]),
            columns=[ColumnProfile.from_json(c) for c in data["columns"]],
            seconds=float(data.get("seconds", 0.0)),
            passes=int(data.get("passes", 1)),
            sample_rows=int(data.get("sample_rows", 0)),
            created_at=created_at,
        )


# --- computing ----------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A JSON-safe scalar: numbers stay numbers, times become ISO text."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _float(value: Any) -> float | None:
    if value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


class _Aggregates:
    """Numbered aggregate expressions of one SELECT, read back by name."""

    def __init__(self) -> None:
        self.exprs: list[str] = []
        self.index: dict[tuple[str, str], int] = {}

    def add(self, column: str, key: str, expr: str) -> None:
        self.index[(column, key)] = len(self.exprs)
        self.exprs.append(expr)

    def get(self, row: tuple[Any, ...], column: str, key: str) -> Any:
        i = self.index.get((column, key))
        return None if i is None else row[i]


def _hist_value(q: str, kind: str) -> str:
    return f"CAST({q} AS DOUBLE)" if kind == "numeric" else f"CAST(epoch({q}) AS DOUBLE)"


def _bucket_expr(value: str, low: float, high: float, bins: int) -> str:
    """The equal-width bin (0 .. bins-1) of ``value``; values outside [low, high] (bounds from
    statistics may be rounded) are clamped into the first or last bin."""
    if bins == 1:
        return f"histogram(CASE WHEN {value} IS NOT NULL THEN 0 END)"
    step = (high - low) / bins
    # greatest() and least() skip NULLs, so NULLs are filtered out, not put in bin 0
    return (
        f"histogram(least(greatest(floor(({value} - {low!r}) / {step!r}), 0), {bins - 1})"
        f"::INTEGER) FILTER (WHERE {value} IS NOT NULL)"
    )


def _histogram_of(bins_counts: Any, low: float, high: float, bins: int) -> dict[str, list[Any]]:
    counts = [int((bins_counts or {}).get(i, 0)) for i in range(bins)]
    return {"edges": [_round(e) for e in _edges(low, high, bins)], "counts": counts}


def profile_relation(
    session: EngineSession,
    relation: str,
    *,
    dataset: str | None = None,
    version: int | None = None,
    histograms: bool = True,
    sample_rows: int = PATTERN_SAMPLE_ROWS,
    bounds: Mapping[str, tuple[float, float]] | None = None,
) -> DatasetProfile:
    """Profile ``relation`` (a view or table ``session`` knows) column by column.

    ``bounds`` (column -> (min, max) as numbers; epoch seconds for times), known from file
    statistics, let the histograms be computed in the same pass; columns without bounds get
    their histograms from a second, narrow pass.
    """
    started = time.perf_counter()
    session.execute("SET enable_progress_bar = false")  # no bar drawn over the CLI's output
    described = session.execute(f"DESCRIBE SELECT * FROM {relation}")
    columns = [(str(r[0]), str(r[1])) for r in described]
    rows = int(session.execute(f"SELECT count(*) FROM {relation}")[0][0])
    fraction = 1.0 if rows <= sample_rows else sample_rows / rows
    known = dict(bounds or {})
    qs = ", ".join(str(x) for x in QUANTILES)

    agg = _Aggregates()
    for name, duck_type in columns:
        q = quote_ident(name)
        kind = _kind(duck_type)
        agg.add(name, "count", f"count({q})")
        if kind == "other":
            continue
        agg.add(name, "distinct", f"approx_count_distinct({q})")
        agg.add(name, "min", f"min({q})")
        agg.add(name, "max", f"max({q})")
        if kind == "numeric":
            agg.add(name, "mean", f"avg({q})")
            agg.add(name, "stddev", f"stddev_samp({q})")
            agg.add(name, "quantiles", f"approx_quantile({q}, [{qs}])")
        elif kind == "temporal" and duck_type.upper() != "TIME":
            agg.add(name, "quantiles", f"approx_quantile({q}, [{qs}])")
        if _histogrammable(kind, duck_type) and histograms and name in known:
            low, high = known[name]
            bins = HISTOGRAM_BINS if high > low else 1
            agg.add(name, "hist", _bucket_expr(_hist_value(q, kind), low, high, bins))
        if kind == "text":
            agg.add(name, "len_min", f"min(length({q}))")
            agg.add(name, "len_mean", f"avg(length({q}))")
            agg.add(name, "len_max", f"max(length({q}))")
            agg.add(name, "sampled", f"count(CASE WHEN __hw_sample THEN {q} END)")
            for pattern, regex in PATTERNS.items():
                agg.add(
                    name,
                    f"pattern:{pattern}",
                    f"count(CASE WHEN __hw_sample THEN CASE WHEN "
                    f"regexp_full_match({q}, {sql_literal(regex)}) THEN 1 END END)",
                )
        if kind in ("text", "boolean"):
            # the sampled values, counted here: top values without a second pass (cheaper
            # than histogram() or approx_top_k() on a high-cardinality column)
            agg.add(
                name, "sample_values", f"list({q}) FILTER (WHERE __hw_sample AND {q} IS NOT NULL)"
            )

    sample = "TRUE" if fraction >= 1.0 else f"random() < {fraction!r}"
    needs_sample = any(k[1] == "sample_values" for k in agg.index)
    source = f"(SELECT *, {sample} AS __hw_sample FROM {relation})" if needs_sample else relation
    row = session.execute(f"SELECT {', '.join(agg.exprs) or '1'} FROM {source}")[0]

    profiles: list[ColumnProfile] = []
    for name, duck_type in columns:
        kind = _kind(duck_type)
        non_null = int(agg.get(row, name, "count") or 0)
        col = ColumnProfile(
            name=name,
            type=duck_type,
            kind=kind,
            nulls=rows - non_null,
            null_rate=(rows - non_null) / rows if rows else 0.0,
        )
        if kind != "other":
            distinct = agg.get(row, name, "distinct")
            col.distinct = int(distinct) if distinct is not None else None
            col.min = _plain(agg.get(row, name, "min"))
            col.max = _plain(agg.get(row, name, "max"))
        if kind == "numeric":
            col.mean = _float(agg.get(row, name, "mean"))
            col.stddev = _float(agg.get(row, name, "stddev"))
        quantiles = agg.get(row, name, "quantiles")
        if quantiles:
            col.quantiles = {
                f"p{round(p * 100):02d}": _plain(v)
                for p, v in zip(QUANTILES, quantiles, strict=True)
            }
        if (name, "hist") in agg.index:
            low, high = known[name]
            bins = HISTOGRAM_BINS if high > low else 1
            col.histogram = _histogram_of(agg.get(row, name, "hist"), low, high, bins)
        if kind == "text" and non_null:
            col.lengths = {
                "min": float(agg.get(row, name, "len_min")),
                "mean": round(float(agg.get(row, name, "len_mean")), 3),
                "max": float(agg.get(row, name, "len_max")),
            }
            sampled = int(agg.get(row, name, "sampled") or 0)
            if sampled:
                col.patterns = {
                    p: round(int(agg.get(row, name, f"pattern:{p}") or 0) / sampled, 4)
                    for p in PATTERNS
                }
                fitting = [p for p, share in col.patterns.items() if share >= PATTERN_THRESHOLD]
                col.pattern = fitting[0] if fitting else None
        sampled_values = agg.get(row, name, "sample_values")
        categorical = (col.distinct or 0) <= max(TOP_K, 0.01 * non_null)
        if sampled_values and categorical:
            counts = Counter(sampled_values)
            ranked = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[:TOP_K]
            scale = 1.0 if fraction >= 1.0 else 1.0 / fraction
            col.top_values = [(_plain(v), round(int(n) * scale)) for v, n in ranked]
            col.top_values_estimated = fraction < 1.0
        profiles.append(col)

    passes = 1
    if histograms and rows:
        passes += _second_pass(session, relation, profiles)
    return DatasetProfile(
        dataset=dataset or relation,
        version=version,
        rows=rows,
        columns=profiles,
        seconds=round(time.perf_counter() - started, 3),
        passes=passes,
        sample_rows=min(rows, sample_rows) if needs_sample else 0,
    )


def _histogrammable(kind: str, duck_type: str) -> bool:
    return kind == "numeric" or (kind == "temporal" and duck_type.upper() != "TIME")


def _edges(low: float, high: float, bins: int) -> list[float]:
    step = (high - low) / bins
    return [low + step * i for i in range(bins)] + [high]


def _second_pass(session: EngineSession, relation: str, columns: list[ColumnProfile]) -> int:
    """Histograms of the columns whose bounds were not known before pass 1 (from its min and
    max); returns 1 when it ran a query, else 0."""
    agg = _Aggregates()
    ranges: dict[str, tuple[float, float, int]] = {}
    for col in columns:
        if col.histogram or not _histogrammable(col.kind, col.type) or col.min is None:
            continue
        low, high = _bounds(session, col)
        if low is None or high is None:
            continue
        bins = HISTOGRAM_BINS if high > low else 1
        ranges[col.name] = (low, high, bins)
        agg.add(
            col.name,
            "hist",
            _bucket_expr(_hist_value(quote_ident(col.name), col.kind), low, high, bins),
        )
    if not agg.exprs:
        return 0
    row = session.execute(f"SELECT {', '.join(agg.exprs)} FROM {relation}")[0]
    for col in columns:
        if col.name in ranges:
            low, high, bins = ranges[col.name]
            col.histogram = _histogram_of(agg.get(row, col.name, "hist"), low, high, bins)
    return 1


def _round(value: float) -> float:
    return float(f"{value:.6g}")


def _bounds(session: EngineSession, col: ColumnProfile) -> tuple[float | None, float | None]:
    if col.kind == "numeric":
        return _float(col.min), _float(col.max)
    low, high = session.execute(
        f"SELECT epoch(CAST({sql_literal(col.min)} AS {col.type})), "
        f"epoch(CAST({sql_literal(col.max)} AS {col.type}))"
    )[0]
    return _float(low), _float(high)


def delta_bounds(
    location: str, version: int, storage_options: Mapping[str, str] | None = None
) -> dict[str, tuple[float, float]]:
    """Per-column (min, max) of a Delta table version from the file statistics in its log
    (numbers and times as epoch seconds); columns without statistics in every file are left
    out. Reads no data file."""
    import pyarrow as pa
    from deltalake import DeltaTable

    table = DeltaTable(location, version=version, storage_options=dict(storage_options or {}))
    actions = pa.table(table.get_add_actions(flatten=True))
    out: dict[str, tuple[float, float]] = {}
    for field_name in actions.column_names:
        if not field_name.startswith("min."):
            continue
        column = field_name[4:]
        maxes = f"max.{column}"
        if maxes not in actions.column_names:
            continue
        lows = [_epoch_or_number(v) for v in actions[field_name].to_pylist()]
        highs = [_epoch_or_number(v) for v in actions[maxes].to_pylist()]
        counts = actions["num_records"].to_pylist() if "num_records" in actions.column_names else []
        nulls = (
            actions[f"null_count.{column}"].to_pylist()
            if f"null_count.{column}" in actions.column_names
            else [None] * len(lows)
        )
        usable = True
        found_low: list[float] = []
        found_high: list[float] = []
        for i, (lo, hi) in enumerate(zip(lows, highs, strict=True)):
            all_null = bool(counts) and nulls[i] is not None and nulls[i] == counts[i]
            if all_null:
                continue
            if lo is None or hi is None:
                usable = False
                break
            found_low.append(lo)
            found_high.append(hi)
        if usable and found_low:
            out[column] = (min(found_low), max(found_high))
    return out


def _epoch_or_number(value: Any) -> float | None:
    if value is None or isinstance(value, bool | str | bytes):
        return None
    if isinstance(value, datetime):
        aware: datetime = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.timestamp()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp()
    return _float(value)


# --- storing ------------------------------------------------------------------------------------


def save_profile(store: MetadataStore, profile: DatasetProfile) -> None:
    """Store (or replace) the profile of ``profile.dataset`` at ``profile.version``."""
    if profile.version is None:
        raise DatasetError(
            "a profile needs a dataset version to be stored", dataset=profile.dataset
        )
    with store.session() as s:
        row = s.scalar(
            select(DatasetProfileRow).where(
                DatasetProfileRow.dataset == profile.dataset,
                DatasetProfileRow.version == profile.version,
            )
        )
        if row is None:
            row = DatasetProfileRow(dataset=profile.dataset, version=profile.version)
            s.add(row)
        row.rows = profile.rows
        row.profile = profile.to_json()
        row.seconds = profile.seconds
        row.created_at = utcnow()


def load_profile(store: MetadataStore, dataset: str, version: int) -> DatasetProfile | None:
    """The stored profile of ``dataset`` at ``version``, if it was profiled."""
    with store.session() as s:
        row = s.scalar(
            select(DatasetProfileRow).where(
                DatasetProfileRow.dataset == dataset, DatasetProfileRow.version == version
            )
        )
        if row is None:
            return None
        return DatasetProfile.from_json(row.profile, created_at=store.as_utc(row.created_at))


def profile_versions(store: MetadataStore, dataset: str) -> list[int]:
    """Versions of ``dataset`` that have a stored profile, oldest first."""
    with store.session() as s:
        return list(
            s.scalars(
                select(DatasetProfileRow.version)
                .where(DatasetProfileRow.dataset == dataset)
                .order_by(DatasetProfileRow.version)
            )
        )


# --- comparing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnChange:
    """How one column differs between two profiles (``change``: added, removed, changed,
    same). ``mean_shift`` is the move of the mean in standard deviations of the old version."""

    column: str
    change: str
    old_type: str | None = None
    new_type: str | None = None
    old_null_rate: float | None = None
    new_null_rate: float | None = None
    old_distinct: int | None = None
    new_distinct: int | None = None
    old_mean: float | None = None
    new_mean: float | None = None
    mean_shift: float | None = None
    notes: tuple[str, ...] = ()


def compare_profiles(
    old: DatasetProfile,
    new: DatasetProfile,
    *,
    null_rate_delta: float = 0.01,
    distinct_ratio: float = 0.1,
    mean_shift: float = 0.5,
) -> list[ColumnChange]:
    """Column-by-column differences; ``changed`` when a type, null rate (by more than
    ``null_rate_delta``), distinct count (by more than ``distinct_ratio`` relative) or mean (by
    more than ``mean_shift`` old standard deviations) moved."""
    before = {c.name: c for c in old.columns}
    after = {c.name: c for c in new.columns}
    changes: list[ColumnChange] = []
    for name in [*before, *(n for n in after if n not in before)]:
        a, b = before.get(name), after.get(name)
        if a is None and b is not None:
            changes.append(ColumnChange(name, "added", new_type=b.type, notes=("new column",)))
            continue
        if b is None and a is not None:
            changes.append(ColumnChange(name, "removed", old_type=a.type, notes=("dropped",)))
            continue
        assert a is not None and b is not None
        notes: list[str] = []
        if a.type != b.type:
            notes.append(f"type {a.type} -> {b.type}")
        if abs(b.null_rate - a.null_rate) > null_rate_delta:
            notes.append(f"null rate {a.null_rate:.1%} -> {b.null_rate:.1%}")
        if a.distinct is not None and b.distinct is not None:
            base = max(a.distinct, 1)
            if abs(b.distinct - a.distinct) / base > distinct_ratio:
                notes.append(f"distinct {a.distinct:,} -> {b.distinct:,}")
        shift = None
        if a.mean is not None and b.mean is not None:
            if a.stddev:
                shift = (b.mean - a.mean) / a.stddev
                if abs(shift) > mean_shift:
                    notes.append(f"mean moved {shift:+.2f} sd ({a.mean:.4g} -> {b.mean:.4g})")
            elif b.mean != a.mean:
                notes.append(f"mean {a.mean:.4g} -> {b.mean:.4g}")
        if a.pattern != b.pattern:
            notes.append(f"pattern {a.pattern or 'none'} -> {b.pattern or 'none'}")
        changes.append(
            ColumnChange(
                name,
                "changed" if notes else "same",
                a.type,
                b.type,
                a.null_rate,
                b.null_rate,
                a.distinct,
                b.distinct,
                a.mean,
                b.mean,
                shift,
                tuple(notes),
            )
        )
    return changes


def profile_dataset(
    ws: Workspace, name: str, *, version: int | None = None, histograms: bool = True
) -> DatasetProfile:
    """Profile dataset ``name`` at ``version`` (default: current) and store the profile."""
    from headwater.quality.monitor import relation_of

    lake = ws.lake
    if not lake.exists(name):
        from headwater.errors import DatasetNotFoundError, choices_hint

        raise DatasetNotFoundError(
            f"no dataset named `{name}`",
            dataset=name,
            hint=choices_hint(name, lake.list(), "datasets"),
        )
    resolved = lake.version(name) if version is None else version
    bounds: dict[str, tuple[float, float]] = {}
    if histograms:
        try:
            bounds = delta_bounds(lake.location(name), resolved, lake.storage_options)
        except Exception as exc:  # no usable statistics: pass 2 computes the bounds
            log.debug("no Delta statistics for %s: %s", name, exc)
    with ws.session(version=resolved) as session:
        session.attach(name)
        profile = profile_relation(
            session,
            relation_of(name),
            dataset=name,
            version=resolved,
            histograms=histograms,
            bounds=bounds,
        )
    save_profile(ws.store, profile)
    return profile
