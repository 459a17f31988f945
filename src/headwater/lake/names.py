"""Dataset names: ``zone.name``, each part a lower-case identifier."""

from __future__ import annotations

import re
from typing import NamedTuple

from headwater.errors import InvalidDatasetNameError

__all__ = ["QUARANTINE_SUFFIX", "DatasetName", "parse_name", "quarantine_name"]

QUARANTINE_SUFFIX = "__quarantine"
_PART = r"[a-z_][a-z0-9_]*"
_NAME = re.compile(rf"^({_PART})\.({_PART})$")
_MAX_LENGTH = 255  # the metadata column is VARCHAR(255)
_EXPECTED = "`zone.name`, each part a lower-case identifier matching [a-z_][a-z0-9_]*"


class DatasetName(NamedTuple):
    """A validated dataset name split into its zone and table parts."""

    zone: str
    table: str

    @property
    def full(self) -> str:
        return f"{self.zone}.{self.table}"

    @property
    def is_quarantine(self) -> bool:
        return self.table.endswith(QUARANTINE_SUFFIX)


def parse_name(name: str) -> DatasetName:
    """Validate ``name`` and split it; raise :class:`InvalidDatasetNameError` otherwise."""
    match = _NAME.match(name) if isinstance(name, str) else None
    if match is None or len(name) > _MAX_LENGTH:
        hint = f"Use {_EXPECTED}, e.g. `raw.orders` (at most {_MAX_LENGTH} characters)."
        if isinstance(name, str) and _NAME.match(name.lower().replace("-", "_")):
            hint += f" Did you mean `{name.lower().replace('-', '_')}`?"
        raise InvalidDatasetNameError(
            f"Invalid dataset name {name!r}: expected {_EXPECTED}.",
            dataset=str(name),
            hint=hint,
        )
    return DatasetName(match.group(1), match.group(2))


def quarantine_name(name: str) -> str:
    """The quarantine dataset of ``name``: ``zone.name__quarantine``."""
    parsed = parse_name(name)
    if parsed.is_quarantine:
        return parsed.full
    return parse_name(parsed.full + QUARANTINE_SUFFIX).full
