"""Where the nodes of a pipeline file sit, so errors point at ``file:line:col``.

The loader records a :class:`NodeInfo` for every node it reads (keyed by the node's
path in the document, such as ``("steps", 2, "sql")``) into a :class:`SourceMap`;
the spec and the planner ask that map for the position of the field they complain
about, down to a character inside a SQL string (:class:`TextLayout`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

__all__ = ["NodeInfo", "Position", "SourceMap", "SpecPath", "TextLayout", "format_path"]

#: A path into the pipeline document: mapping keys and list indexes.
SpecPath: TypeAlias = tuple[str | int, ...]


@dataclass(frozen=True)
class Position:
    """A 1-based line and column in a source file."""

    line: int
    column: int


@dataclass(frozen=True)
class TextLayout:
    """How character offsets inside a string value map to file positions.

    ``block`` is a literal block scalar (``|``): value line *i* is file line
    ``first_line + i`` starting at ``column``. ``inline`` is a one-line scalar whose
    first character sits at ``first_line:column``.
    """

    kind: Literal["block", "inline"]
    first_line: int
    column: int

    def position(self, value: str, offset: int) -> Position | None:
        offset = max(0, min(offset, len(value)))
        line_start = value.rfind("\n", 0, offset) + 1
        if self.kind == "block":
            return Position(
                self.first_line + value.count("\n", 0, offset), self.column + offset - line_start
            )
        if line_start:
            return None
        return Position(self.first_line, self.column + offset)


@dataclass(frozen=True)
class NodeInfo:
    """Where one YAML node sits: its mapping key (if any), its value, its text layout."""

    value: Position
    key: Position | None = None
    text: TextLayout | None = None


def format_path(path: SpecPath) -> str:
    """``("steps", 2, "sql")`` -> ``steps[2].sql``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


class SourceMap:
    """Positions of the nodes of one pipeline file, keyed by their path in the document."""

    def __init__(self, source: str, nodes: dict[SpecPath, NodeInfo]) -> None:
        self.source = source
        self.nodes = nodes

    def info(self, path: SpecPath) -> tuple[SpecPath, NodeInfo] | None:
        """The node at ``path`` or its nearest ancestor present in the file."""
        for end in range(len(path), -1, -1):
            found = self.nodes.get(path[:end])
            if found is not None:
                return path[:end], found
        return None

    def position(
        self, path: SpecPath, *, key: bool = False, offset: int | None = None, value: Any = None
    ) -> Position | None:
        found = self.info(path)
        if found is None:
            return None
        at, info = found
        exact = at == path
        if exact and offset is not None and info.text is not None and isinstance(value, str):
            inner = info.text.position(value, offset)
            if inner is not None:
                return inner
        if exact and key and info.key is not None:
            return info.key
        return info.value

    def location(self, path: SpecPath, **kwargs: Any) -> str | None:
        pos = self.position(path, **kwargs)
        return f"{self.source}:{pos.line}:{pos.column}" if pos else None
