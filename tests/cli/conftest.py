from __future__ import annotations

from collections.abc import Iterator

import pytest

from headwater.cli._state import console, err_console


@pytest.fixture(autouse=True)
def wide_console() -> Iterator[None]:
    """Render like a wide terminal so assertions do not depend on line wrapping."""
    old = console.width, err_console.width
    console.width = err_console.width = 200
    yield
    console.width, err_console.width = old
