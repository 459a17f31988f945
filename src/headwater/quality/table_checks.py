"""Table checks: judged on the dataset as a whole, with as few aggregate queries as possible.

``row_count``, ``freshness`` and the checked side of ``reconcile`` share one aggregate query
over the dataset; ``schema`` reads only the column types; the other side of a ``reconcile``
is one aggregate over the other dataset; ``drift`` compares the column with a baseline version
of the same dataset (Delta time travel): PSI over category frequencies, or the exact
Kolmogorov-Smirnov statistic over the distinct values of a numeric or temporal column.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from headwater.engine.session import EngineSession
from headwater.engine.types import is_numeric_type, is_temporal_type
from headwater.errors import HeadwaterError
from headwater.pipelines._nodes import parse_duration
from headwater.quality.checks import CompiledCheck, quote_ident

__all__ = ["Resolver", "TableResult", "evaluate_table_checks"]

#: (dataset, version) -> a relation name usable in the session, or None when that version does
#: not exist (a drift baseline on a first load). version: None = current, "previous", or a number.
Resolver = Callable[[str, "int | str | None"], "str | None"]

PSI_FLOOR = 1e-4  # share given to a category missing on one side, so the log stays finite
DEFAULT_THRESHOLD = {"psi": 0.2, "ks": 0.1}
_AGGREGATES = {
    "sum": "sum({c})",
    "count": "count({c})",
    "count_distinct": "count(DISTINCT {c})",
    "min": "min({c})",
    "max": "max({c})",
    "avg": "avg({c})",
}


@dataclass
class TableResult:
    check: CompiledCheck
    passed: bool
    message: str
    observed: Any = None
    sample: list[dict[str, Any]] = field(default_factory=list)


def is_numeric(duck_type: str) -> bool:
    upper = duck_type.upper()
    return is_numeric_type(upper) or is_temporal_type(upper)


def _aggregate(check: CompiledCheck, column: str | None) -> str:
    agg = str(check.params.get("aggregate") or "sum")
    target = quote_ident(column) if column else "*"
    if agg == "count_distinct" and not column:
        target = "*"
    return _AGGREGATES[agg].format(c=target)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def evaluate_table_checks(
    session: EngineSession,
    relation: str,
    checks: Sequence[CompiledCheck],
    *,
    types: Mapping[str, str],
    dataset: str | None,
    resolve: Resolver | None,
    now: datetime | None = None,
) -> tuple[int, list[TableResult]]:
    """Total row count of ``relation`` and one result per table check."""
    aggregates = ["count(*)"]
    slots: dict[str, int] = {}
    for check in checks:
        if check.kind == "freshness":
            slots[check.name] = len(aggregates)
            aggregates.append(f"max({quote_ident(check.columns[0])})")
        elif check.kind == "reconcile":
            slots[check.name] = len(aggregates)
            aggregates.append(_aggregate(check, check.columns[0] if check.columns else None))
    row = session.execute(f"SELECT {', '.join(aggregates)} FROM {relation}")[0]
    total = int(row[0])
    now = now or datetime.now(UTC)
    results: list[TableResult] = []
    for check in checks:
        if check.kind == "row_count":
            results.append(_row_count(check, total))
        elif check.kind == "schema":
            results.append(_schema(session, check, types))
        elif check.kind == "freshness":
            results.append(_freshness(check, row[slots[check.name]], now))
        elif check.kind == "reconcile":
            results.append(_reconcile(session, check, row[slots[check.name]], resolve))
        elif check.kind == "drift":
            results.append(_drift(session, check, relation, types, dataset, resolve))
    return total, results


def _row_count(check: CompiledCheck, total: int) -> TableResult:
    low, high = check.params.get("min"), check.params.get("max")
    failed = (low is not None and total < int(low)) or (high is not None and total > int(high))
    bounds = f"[{'' if low is None else low}, {'' if high is None else high}]"
    message = f"observed {total}" + (f" (outside {bounds})" if failed else "")
    return TableResult(check, not failed, message, observed=total)


def canonical_type(session: EngineSession, type_name: str, check: CompiledCheck) -> str:
    """DuckDB's own name for a type as a user wrote it (`int` -> `INTEGER`)."""
    try:
        return str(session.execute(f"SELECT typeof(CAST(NULL AS {type_name}))")[0][0])
    except HeadwaterError:
        raise check.error(
            f"`{type_name}` is not a DuckDB type",
            field="columns",
            hint="Use a type such as bigint, integer, double, decimal(10,2), varchar, "
            "boolean, date, timestamp, timestamp with time zone.",
        ) from None


def _schema(session: EngineSession, check: CompiledCheck, types: Mapping[str, str]) -> TableResult:
    expected: Mapping[str, str | None] = check.params.get("columns") or {}
    problems: list[str] = []
    for column, type_name in expected.items():
        actual = types.get(column)
        if actual is None:
            problems.append(f"missing column `{column}`")
        elif type_name is not None:
            wanted = canonical_type(session, type_name, check)
            if wanted.upper() != actual.upper():
                problems.append(f"`{column}` is {actual}, expected {wanted}")
    if check.params.get("exact"):
        problems += [f"unexpected column `{c}`" for c in types if c not in expected]
    observed = dict(types)
    if problems:
        return TableResult(check, False, "; ".join(problems), observed=observed)
    return TableResult(check, True, f"{len(expected)} columns as expected", observed=observed)


def _as_utc(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return None


def _freshness(check: CompiledCheck, newest: Any, now: datetime) -> TableResult:
    limit = parse_duration(str(check.params["max_age"]))
    when = _as_utc(newest)
    if newest is None:
        return TableResult(check, False, "no value: the column is empty or all NULL")
    if when is None:
        raise check.error(
            f"`freshness` needs a date or timestamp column; `{check.columns[0]}` holds "
            f"{type(newest).__name__} values",
            field="column",
        )
    age = (now - when).total_seconds()
    failed = age > limit
    message = f"newest {when.isoformat()} is {age:.0f} s old" + (
        f" (more than {check.params['max_age']})" if failed else ""
    )
    return TableResult(
        check, not failed, message, observed={"newest": when.isoformat(), "age_s": age}
    )


def _reconcile(
    session: EngineSession, check: CompiledCheck, ours: Any, resolve: Resolver | None
) -> TableResult:
    assert check.other is not None
    other = resolve(check.other, None) if resolve else None
    if other is None:
        raise check.error(f"dataset `{check.other}` cannot be read here", field="to")
    column = check.params.get("to_column") or (check.columns[0] if check.columns else None)
    theirs = session.execute(f"SELECT {_aggregate(check, column)} FROM {other}")[0][0]
    a, b = _number(ours), _number(theirs)
    tolerance = float(check.params.get("tolerance") or 0.0)
    pct = check.params.get("tolerance_pct")
    if a is not None and b is not None:
        allowed = max(tolerance, abs(b) * float(pct) / 100 if pct is not None else 0.0)
        diff = abs(a - b)
        passed = diff <= allowed + 1e-9 * max(abs(a), abs(b), 1.0)
        message = (
            f"{check.params['aggregate']} {a:g} vs {b:g} in `{check.other}`: difference {diff:g}"
        )
        if not passed:
            message += f" (allowed {allowed:g})"
    else:
        passed = ours == theirs
        message = f"{check.params['aggregate']} {ours!r} vs {theirs!r} in `{check.other}`"
    observed = {"value": _jsonable(ours), "other": _jsonable(theirs)}
    return TableResult(check, passed, message, observed=observed)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    number = _number(value)
    return number if number is not None else str(value)


def _drift(
    session: EngineSession,
    check: CompiledCheck,
    relation: str,
    types: Mapping[str, str],
    dataset: str | None,
    resolve: Resolver | None,
) -> TableResult:
    column = check.columns[0]
    baseline_version = check.params.get("baseline", "previous")
    baseline = resolve(dataset, baseline_version) if resolve and dataset else None
    if baseline is None:
        if isinstance(baseline_version, int) or not dataset:
            raise check.error(
                f"baseline version {baseline_version!r} of `{dataset}` does not exist",
                field="baseline",
            )
        return TableResult(check, True, "no baseline version yet (first load): nothing to compare")
    method = str(check.params.get("method") or "auto")
    if method == "auto":
        method = "ks" if is_numeric(types[column]) else "psi"
    threshold = float(check.params.get("threshold") or DEFAULT_THRESHOLD[method])
    col = quote_ident(column)
    if method == "psi":
        value, sample = _psi(session, col, relation, baseline)
    else:
        if not is_numeric(types[column]):
            raise check.error(
                f"`ks` needs a numeric, date or timestamp column; `{column}` is {types[column]}",
                field="method",
                hint="Use `method: psi` for categories.",
            )
        value, sample = _ks(session, col, relation, baseline)
    if value is None:
        return TableResult(check, True, "one side has no values: nothing to compare")
    failed = value > threshold
    message = f"{method} {value:.4f} against version {baseline_version}" + (
        f" (above {threshold:g})" if failed else ""
    )
    observed = {"method": method, "value": value, "threshold": threshold}
    return TableResult(check, not failed, message, observed=observed, sample=sample)


def _psi(
    session: EngineSession, col: str, relation: str, baseline: str
) -> tuple[float | None, list[dict[str, Any]]]:
    floor = repr(PSI_FLOOR)
    sql = f"""
        WITH cur AS (SELECT CAST({col} AS VARCHAR) AS v, count(*) AS n FROM {relation} GROUP BY 1),
        base AS (SELECT CAST({col} AS VARCHAR) AS v, count(*) AS n FROM {baseline} GROUP BY 1),
        shares AS (
            SELECT coalesce(c.v, b.v) AS v,
                   greatest(coalesce(c.n, 0) / (SELECT sum(n) FROM cur), {floor}) AS p,
                   greatest(coalesce(b.n, 0) / (SELECT sum(n) FROM base), {floor}) AS q
            FROM cur c FULL OUTER JOIN base b ON c.v IS NOT DISTINCT FROM b.v
        )
        SELECT v, p, q, (p - q) * ln(p / q) AS part FROM shares ORDER BY part DESC
    """
    rows = session.execute(sql)
    if not rows or any(r[1] is None or r[2] is None for r in rows):
        return None, []
    value = float(sum(r[3] for r in rows))
    sample = [
        {"value": r[0], "share": round(float(r[1]), 6), "baseline_share": round(float(r[2]), 6)}
        for r in rows[:5]
    ]
    return value, sample


def _ks(
    session: EngineSession, col: str, relation: str, baseline: str
) -> tuple[float | None, list[dict[str, Any]]]:
    sql = f"""
        WITH v AS (
            SELECT {col} AS x, 1 AS a, 0 AS b FROM {relation} WHERE {col} IS NOT NULL
            UNION ALL
            SELECT {col} AS x, 0 AS a, 1 AS b FROM {baseline} WHERE {col} IS NOT NULL
        ),
        g AS (SELECT x, sum(a) AS a, sum(b) AS b FROM v GROUP BY x),
        cdf AS (
            SELECT x,
                   sum(a) OVER (ORDER BY x) / sum(a) OVER () AS fa,
                   sum(b) OVER (ORDER BY x) / sum(b) OVER () AS fb
            FROM g
        )
        SELECT max(abs(fa - fb)), arg_max(CAST(x AS VARCHAR), abs(fa - fb)),
               arg_max(fa, abs(fa - fb)), arg_max(fb, abs(fa - fb))
        FROM cdf
    """
    d, at, fa, fb = session.execute(sql)[0]
    if d is None or fa is None or fb is None or math.isnan(float(fa)) or math.isnan(float(fb)):
        return None, []
    return float(d), [{"at": at, "cdf": float(fa), "baseline_cdf": float(fb)}]
