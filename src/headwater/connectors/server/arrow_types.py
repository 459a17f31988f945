"""Arrow types both servers store the same way (as their one text or one binary type)."""

from __future__ import annotations

import pyarrow as pa

__all__ = ["is_binary_like", "is_text_like"]


def is_text_like(t: pa.DataType) -> bool:
    """Strings of any layout, and all-null columns (stored as text)."""
    return bool(
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_string_view(t)
        or pa.types.is_null(t)
    )


def is_binary_like(t: pa.DataType) -> bool:
    """Bytes of any layout, fixed-size included."""
    return bool(
        pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_fixed_size_binary(t)
        or pa.types.is_binary_view(t)
    )
