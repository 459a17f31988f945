"""Headwater: a self-hostable data management workbench."""

from headwater.errors import HeadwaterError

__version__ = "0.1.0"
__all__ = ["HeadwaterError", "__version__"]
