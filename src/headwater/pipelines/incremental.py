"""Cursor reads: the predicate of the next read, the boundary rule, the checkpoint state.

A checkpoint is ``(value, seen)``: the highest cursor value committed, and a hash of each
committed row carrying exactly that value (by ``keys`` when the step has them, else by
the whole row). The next read asks the source for ``cursor >= value`` (``value - lookback``
with a lookback window) and drops the rows at ``value`` whose hash is in ``seen``. So:

* rows sharing a cursor value across a chunk or run boundary are neither lost (``>=``,
  not ``>``) nor doubled (``seen``);
* a row committed at the current maximum while a read runs is picked up by the next run
  (its hash is not in ``seen``).

Values are kept in JSON with their Arrow type, so a timestamp stays a timestamp (with
its time zone), a decimal keeps its scale, an integer stays exact.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from headwater.errors import ConfigError
from headwater.pipelines._nodes import parse_duration

__all__ = ["CursorState", "CursorTracker", "cursor_predicate", "literal_sql"]

_STATE_VERSION = 1


@dataclass
class CursorState:
    """The committed position of an incremental read."""

    cursor: str
    value: Any = None
    type: str | None = None
    seen: set[str] = field(default_factory=set)
    seq: int = 0
    """How many chunks have been committed (the Delta application-transaction version)."""
    rows: int = 0
    """Rows committed by all chunks so far."""

    def to_json(self) -> dict[str, Any]:
        return {
            "v": _STATE_VERSION,
            "cursor": self.cursor,
            "value": _encode(self.value),
            "type": self.type,
            "seen": sorted(self.seen),
            "seq": self.seq,
            "rows": self.rows,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CursorState:
        return cls(
            cursor=str(data["cursor"]),
            value=_decode(data.get("value")),
            type=data.get("type"),
            seen=set(data.get("seen") or ()),
            seq=int(data.get("seq") or 0),
            rows=int(data.get("rows") or 0),
        )


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, date):
        return {"date": value.isoformat()}
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    raise ConfigError(
        f"A cursor value of type {type(value).__name__} cannot be checkpointed.",
        hint="Use a numeric, date, timestamp or text cursor column.",
    )


def _decode(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    if "datetime" in value:
        return datetime.fromisoformat(value["datetime"])
    if "date" in value:
        return date.fromisoformat(value["date"])
    if "decimal" in value:
        return Decimal(value["decimal"])
    if "bytes" in value:
        return bytes.fromhex(value["bytes"])
    return value


def literal_sql(value: Any) -> str:
    """``value`` as a DuckDB SQL literal: quoted, escaped, cast to its type."""
    from sqlglot import exp

    node: exp.Expression
    if isinstance(value, bool):
        node = exp.Boolean(this=value)
    elif isinstance(value, int):
        node = exp.Literal.number(value)
    elif isinstance(value, float):
        node = exp.Literal.number(repr(value))
    elif isinstance(value, Decimal):
        digits = value.as_tuple()
        exponent = digits.exponent if isinstance(digits.exponent, int) else 0
        scale = max(-exponent, 0)
        precision = min(max(len(digits.digits), scale + 1), 38)
        node = exp.cast(exp.Literal.string(str(value)), f"DECIMAL({precision}, {scale})")
    elif isinstance(value, datetime):
        kind = "TIMESTAMPTZ" if value.tzinfo is not None else "TIMESTAMP"
        node = exp.cast(exp.Literal.string(value.isoformat(sep=" ")), kind)
    elif isinstance(value, date):
        node = exp.cast(exp.Literal.string(value.isoformat()), "DATE")
    elif isinstance(value, str):
        node = exp.Literal.string(value)
    else:
        raise ConfigError(f"Cannot compare a cursor with a {type(value).__name__} value.")
    return str(node.sql(dialect="duckdb"))


def _quoted(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def cursor_predicate(
    cursor: str, value: Any, *, lookback: str | int | float | None = None
) -> str | None:
    """The DuckDB predicate of the next read, or None to read every row."""
    if value is None:
        return None
    start = _minus(value, lookback) if lookback is not None else value
    return f"{_quoted(cursor)} >= {literal_sql(start)}"


def _minus(value: Any, lookback: str | int | float) -> Any:
    if isinstance(value, datetime | date):
        if not isinstance(lookback, str):
            raise ConfigError(
                f"The cursor is a {type(value).__name__}: give `lookback` as a duration "
                f"such as `2h`, not {lookback!r}.",
                field="incremental.lookback",
            )
        delta = timedelta(seconds=parse_duration(lookback))
        if isinstance(value, datetime):
            return value - delta
        return value - timedelta(days=delta.days)
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        if isinstance(lookback, str):
            raise ConfigError(
                f"The cursor is numeric: give `lookback` as a number, not {lookback!r}.",
                field="incremental.lookback",
            )
        if isinstance(value, Decimal):
            return value - Decimal(str(lookback))
        result = value - lookback
        return int(result) if isinstance(value, int) and float(lookback).is_integer() else result
    raise ConfigError(
        f"`lookback` needs a numeric, date or timestamp cursor, not {type(value).__name__}.",
        field="incremental.lookback",
    )


def _row_hashes(batch: pa.RecordBatch | pa.Table, columns: list[str]) -> list[str]:
    """A stable hash of each row's ``columns`` (JSON of the values, BLAKE2b, 16 hex chars)."""
    rows = batch.select(columns).to_pylist()
    out = []
    for row in rows:
        text = json.dumps([row[c] for c in columns], default=str, ensure_ascii=False)
        out.append(hashlib.blake2b(text.encode(), digest_size=8).hexdigest())
    return out


class CursorTracker:
    """Filters already-committed boundary rows and follows the cursor through batches.

    ``filter`` drops the rows at the checkpoint value whose hash was committed;
    ``observe`` keeps the maximum and the hashes of the rows at the maximum, so that
    :meth:`state` after a chunk is the checkpoint that chunk commits.
    """

    def __init__(
        self,
        start: CursorState,
        *,
        keys: list[str] | None = None,
        dedupe_boundary: bool = True,
    ) -> None:
        self.start = start
        self.keys = list(keys or [])
        self.dedupe_boundary = dedupe_boundary and start.value is not None and bool(start.seen)
        self.value = start.value
        self.type = start.type
        self.seen: set[str] = set(start.seen)
        self.rows_skipped = 0

    def _identity(self, schema: pa.Schema) -> list[str]:
        return self.keys or list(schema.names)

    def _require_cursor(self, batch: pa.RecordBatch) -> pa.Array:
        cursor = self.start.cursor
        index = batch.schema.get_field_index(cursor)
        if index < 0:
            raise ConfigError(
                f"The incremental cursor `{cursor}` is not a column of the stream.",
                field="incremental.cursor",
                column=cursor,
                hint="Columns: " + ", ".join(batch.schema.names),
            )
        return batch.column(index)

    def filter(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """``batch`` without the rows a previous chunk already committed."""
        if not self.dedupe_boundary or batch.num_rows == 0:
            return batch
        column = self._require_cursor(batch)
        at_start = pc.fill_null(pc.equal(column, _scalar(self.start.value, column.type)), False)
        positions = pc.indices_nonzero(at_start).to_pylist()
        if not positions:
            return batch
        hashes = _row_hashes(
            batch.take(pa.array(positions, pa.int64())), self._identity(batch.schema)
        )
        drop = {p for p, h in zip(positions, hashes, strict=True) if h in self.start.seen}
        if not drop:
            return batch
        self.rows_skipped += len(drop)
        keep = pa.array([i not in drop for i in range(batch.num_rows)], pa.bool_())
        return batch.filter(keep)

    def observe(self, batch: pa.RecordBatch) -> None:
        """Follow the maximum cursor value and the identity of the rows carrying it."""
        if batch.num_rows == 0:
            return
        column = self._require_cursor(batch)
        if self.type is None:
            self.type = str(column.type)
        top = pc.max(column)
        if not top.is_valid:
            return
        high = top.as_py()
        if self.value is not None and _less(high, self.value):
            return
        mask = pc.fill_null(pc.equal(column, top), False)
        positions = pc.indices_nonzero(mask).to_pylist()
        hashes = _row_hashes(
            batch.take(pa.array(positions, pa.int64())), self._identity(batch.schema)
        )
        if self.value is None or _less(self.value, high):
            self.value, self.seen = high, set(hashes)
        else:
            self.seen.update(hashes)

    def state(self, *, seq: int, rows: int) -> CursorState:
        return CursorState(
            cursor=self.start.cursor,
            value=self.value,
            type=self.type,
            seen=set(self.seen),
            seq=seq,
            rows=rows,
        )


def _less(a: Any, b: Any) -> bool:
    try:
        return bool(a < b)
    except TypeError:  # e.g. naive vs aware after a column changed type
        raise ConfigError(
            f"Cannot compare cursor values {a!r} and {b!r}: the cursor column changed type.",
            hint="Reset the step's checkpoint (`headwater checkpoints reset PIPELINE STEP`) "
            "after changing the cursor column's type.",
        ) from None


def _scalar(value: Any, type_: pa.DataType) -> pa.Scalar:
    try:
        return pa.scalar(value, type_)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        return pa.scalar(value)
