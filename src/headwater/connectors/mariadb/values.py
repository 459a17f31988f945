"""Values a MariaDB column cannot hold although Arrow can, checked before LOAD DATA.

``LOAD DATA LOCAL`` turns such values into warnings (which fail the whole write with the
first warning's text); checked here, each failing row is named, and under the
``discard_row`` schema contract it goes to the reject sink while the others load:

* ``NaN`` / ``±inf`` in a ``float``/``double`` column;
* a ``timestamp`` column value outside 1970-01-01 00:00:00.000001 .. 2038-01-19
  03:14:07.999999 UTC;
* text longer than a ``char(n)``/``varchar(n)`` column;
* a uuid MariaDB's ``uuid`` type refuses;
* a null merge key.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from headwater.connectors.base import Reject, RejectSink, SchemaContract
from headwater.connectors.mariadb.catalog import TableInfo
from headwater.connectors.mariadb.factory import CONNECTOR
from headwater.errors import SchemaIncompatibleError

__all__ = ["Check", "check_values", "checks_for", "is_uuid"]

_TS_MIN_US, _TS_MAX_US = 1, 2**31 * 1_000_000 - 1  # MariaDB `timestamp`: (1970, 2038-01-19]
_FLOATS = ("float", "double", "real", "double precision")
_LENGTH = re.compile(r"^(?:var)?char\((\d+)\)")


@dataclass(frozen=True)
class Check:
    column: str
    kind: str  # "null_key" | "float" | "timestamp" | "uuid" | "length"
    length: int = 0


def checks_for(dest: TableInfo, schema: pa.Schema, keys: tuple[str, ...] = ()) -> list[Check]:
    """Values of ``schema`` that the columns of ``dest`` cannot hold and Arrow cannot tell
    (and null merge ``keys``)."""
    folded = {k.casefold() for k in keys}
    out = [Check(f.name, "null_key") for f in schema if f.name.casefold() in folded]
    for f in schema:
        c = dest.column(f.name)
        if c is None:
            continue
        if c.data_type in _FLOATS and pa.types.is_floating(f.type):
            out.append(Check(f.name, "float"))
        elif c.data_type == "timestamp" and pa.types.is_timestamp(f.type):
            out.append(Check(f.name, "timestamp"))
        elif c.data_type == "uuid" and (is_uuid(f.type) or pa.types.is_string(f.type)):
            out.append(Check(f.name, "uuid"))
        elif (
            c.data_type in ("char", "varchar")
            and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))
            and (m := _LENGTH.match(c.column_type.lower()))
        ):
            out.append(Check(f.name, "length", int(m.group(1))))
    return out


def _bad(array: pa.Array, check: Check) -> pa.Array:
    if check.kind == "null_key":
        return pc.is_null(array)
    if check.kind == "float":
        return pc.or_(pc.is_nan(array), pc.is_inf(array))
    if check.kind == "timestamp":
        micros = array.cast(pa.timestamp("us", array.type.tz)).cast(pa.int64())
        return pc.or_(pc.less(micros, _TS_MIN_US), pc.greater(micros, _TS_MAX_US))
    if check.kind == "uuid":
        return pa.array([_refused_uuid(v) for v in array.to_pylist()], pa.bool_())
    return pc.greater(pc.utf8_length(array), check.length)


def is_uuid(t: pa.DataType) -> bool:
    return isinstance(t, pa.BaseExtensionType) and t.extension_name == "arrow.uuid"


def _refused_uuid(value: Any) -> bool:
    """MariaDB's ``uuid`` type refuses a value whose stored form would read as a swapped
    version 1-5 uuid: byte 6 >= 0x80 (version nibble 8-f) and byte 8 in 0x01..0x80."""
    if value is None:
        return False
    text = str(value)
    if len(text) != 36:
        return False  # not canonical: MariaDB parses it (or warns) itself
    try:
        byte6, byte8 = int(text[14:16], 16), int(text[19:21], 16)
    except ValueError:
        return False
    return byte6 >= 0x80 and 0x01 <= byte8 <= 0x80


def _why(check: Check) -> str:
    if check.kind == "null_key":
        return "a null merge key can never match a row"
    if check.kind == "float":
        return "NaN and infinities cannot be stored in a MariaDB float/double column"
    if check.kind == "timestamp":
        return (
            "MariaDB `timestamp` holds 1970-01-01 00:00:00.000001 .. 2038-01-19 03:14:07.999999 UTC"
        )
    if check.kind == "uuid":
        return (
            "MariaDB's uuid type refuses a version nibble 8-f when the next group starts "
            "with 01..80 (xxxxxxxx-xxxx-[8-f]xxx-[01..80]xx-xxxxxxxxxxxx)"
        )
    return f"longer than the column's {check.length} characters"


def check_values(
    batch: pa.RecordBatch,
    checks: list[Check],
    *,
    table: str,
    contract: SchemaContract,
    rejects: RejectSink | None,
) -> tuple[pa.RecordBatch, int]:
    """``batch`` without the rows failing ``checks``, and how many were rejected.

    Under ``discard_row`` those rows go to ``rejects``; otherwise the first one fails the
    write with the column, the value and the reason.
    """
    if not checks or batch.num_rows == 0:
        return batch, 0
    reasons: dict[int, str] = {}
    for check in checks:
        mask = pc.fill_null(_bad(batch.column(check.column), check), False)
        if not pc.any(mask).as_py():
            continue
        rows = pc.indices_nonzero(mask).to_pylist()
        if contract != "discard_row" and check.kind == "null_key":
            raise SchemaIncompatibleError(
                f"Merge key {check.column!r} is null in {len(rows)} incoming row(s); a null "
                f"key can never match a row, so the merge into {table} was refused. "
                "No row was committed.",
                connector=CONNECTOR,
                column=check.column,
                hint=f"Filter out or fill the rows where {check.column!r} is null in a "
                "transform, or use `schema_contract: discard_row` to quarantine them.",
            )
        if contract != "discard_row":
            value = batch.column(check.column)[rows[0]].as_py()
            raise SchemaIncompatibleError(
                f"Column `{check.column}` of {table}: the value {value!r} cannot be stored "
                f"({_why(check)}). No row was committed.",
                connector=CONNECTOR,
                column=check.column,
                hint="Fix or filter the values in a transform, or use `schema_contract: "
                "discard_row` to quarantine such rows.",
            )
        for i in rows:
            reasons.setdefault(int(i), f"column `{check.column}`: {_why(check)}")
    if not reasons:
        return batch, 0
    order = sorted(reasons)
    if rejects is not None:
        rows_ = batch.take(pa.array(order, pa.int64())).to_pylist()
        rejects.add(
            Reject(
                raw_record=json.dumps(row, default=str, ensure_ascii=False),
                error=f"{reasons[i]} (schema contract discard_row)",
                column=reasons[i].split("`")[1],
            )
            for i, row in zip(order, rows_, strict=True)
        )
    keep = [True] * batch.num_rows
    for i in order:
        keep[i] = False
    return batch.filter(pa.array(keep, pa.bool_())), len(order)
