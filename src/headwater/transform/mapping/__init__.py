"""Mapping rules (rename, cast, derive, filter, lookup, aggregate, dedupe, mask, flatten,
explode, union) compiled to one DuckDB query."""

from headwater.transform.mapping.compile import SALT_VARIABLE, CompiledMap, compile_map
from headwater.transform.mapping.rules import RULES

__all__ = ["RULES", "SALT_VARIABLE", "CompiledMap", "compile_map"]
