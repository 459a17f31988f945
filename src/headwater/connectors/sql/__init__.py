"""What the file-backed SQL connectors (``sqlite``, ``duckdb``) share: config and writes."""
