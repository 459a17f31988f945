"""The ``duckdb`` connector: a DuckDB database file as source and destination."""
