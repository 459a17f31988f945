"""The ``files`` connector: CSV, JSON Lines and Parquet on a local directory or S3.

Importing this package is cheap; the DuckDB/pyarrow/s3fs clients load when a
source or destination is built (see :mod:`headwater.connectors.files.factory`).
"""

from headwater.connectors.files.factory import FilesConfig, FilesFactory

__all__ = ["FilesConfig", "FilesFactory"]
