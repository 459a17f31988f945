"""Building blocks of the spec models: the node base class and the field types.

Every node of the language derives from :class:`Node` (strict keys, aliases, a
source location, equality by content); fields use the annotated types below so
that names, datasets and columns are validated, and described, the same way
everywhere.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr
from pydantic_core import PydanticCustomError

from headwater.transform.refs import DATASET_NAME_PATTERN

__all__ = [
    "IDENTIFIER_PATTERN",
    "Bound",
    "ColumnName",
    "ConnectionName",
    "DatasetName",
    "Delay",
    "Identifier",
    "Lookback",
    "Node",
    "OnSchemaChange",
    "Scalar",
    "SchemaContractName",
    "Severity",
    "WriteMode",
    "custom_error",
    "derived_name_field",
    "parse_duration",
    "slug",
]

#: Pipeline, step and check names: a letter or ``_``, then letters, digits, ``_`` or ``-``.
IDENTIFIER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*$"

WriteMode: TypeAlias = Literal["append", "overwrite", "merge"]
SchemaContractName: TypeAlias = Literal["evolve", "freeze", "discard_row"]
OnSchemaChange: TypeAlias = Literal["evolve", "freeze", "discard_row", "replace"]
Severity: TypeAlias = Literal["error", "warn"]

DatasetName = Annotated[
    str,
    Field(pattern=DATASET_NAME_PATTERN, description="A managed dataset, `zone.name` (lower-case)."),
]
Identifier = Annotated[str, Field(pattern=IDENTIFIER_PATTERN)]
ColumnName = Annotated[str, Field(min_length=1, description="A column name.")]
ConnectionName = Annotated[
    str, Field(min_length=1, description="A connection declared in the workspace.")
]


def _finite(value: Any) -> Any:
    """Refuse ``.inf`` and ``.nan``: no column value equals them or lies beyond them."""
    if isinstance(value, float) and not math.isfinite(value):
        raise PydanticCustomError("finite_number", "Input should be a finite number")
    return value


Scalar = Annotated[str | bool | int | float | date | datetime, AfterValidator(_finite)]
Bound = Annotated[int | float | date | datetime | str, AfterValidator(_finite)]
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")


def _lookback(value: Any) -> Any:
    if isinstance(value, bool):
        raise PydanticCustomError("lookback", "Input should be a duration or a number")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise PydanticCustomError("lookback", "Input should be a finite number >= 0")
        return value
    if isinstance(value, str) and _DURATION.match(value):
        return value.strip()
    raise PydanticCustomError(
        "lookback",
        "Input should be a duration such as `90s`, `15m`, `2h`, `1d`, `1w`, or a number",
    )


#: A window behind a checkpoint: a duration string (`2h`) or a number (numeric cursors).
Lookback = Annotated[str | int | float, AfterValidator(_lookback)]


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``90s``, ``15m``, ``2h``, ``1d``, ``1w``."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r}")
    number, unit = float(match.group(1)), match.group(2)
    return number * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]


#: Seconds to wait, finite and at most an hour.
Delay = Annotated[float, Field(ge=0, le=3600, allow_inf_nan=False)]


def _hide_default(schema: dict[str, Any]) -> None:
    """The default of a derived name is computed, not the empty string; do not publish it."""
    schema.pop("default", None)


def derived_name_field(description: str) -> Any:
    return Field(
        default="",
        pattern=IDENTIFIER_PATTERN,
        description=description,
        json_schema_extra=_hide_default,
    )


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_")


def custom_error(kind: str, message: str, field: str) -> PydanticCustomError:
    """A validation error that the loader locates at ``field`` of the failing node."""
    return PydanticCustomError(kind, message, {"field": field})


class Node(BaseModel):
    """Base of every node: strict keys, aliases in and out, a source location."""

    model_config = ConfigDict(
        extra="forbid",
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        use_attribute_docstrings=True,
    )

    _location: str | None = PrivateAttr(default=None)

    @property
    def location(self) -> str | None:
        """``file:line:col`` of this node when loaded from YAML, else its field path."""
        return self._location

    def __eq__(self, other: object) -> bool:
        # two nodes are equal when they define the same thing, wherever they were read from
        if not isinstance(other, Node):
            return NotImplemented
        return type(self) is type(other) and self.model_dump() == other.model_dump()

    __hash__ = None  # type: ignore[assignment]
