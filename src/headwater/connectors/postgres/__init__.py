"""The ``postgres`` connector: PostgreSQL tables as Arrow streams, read through ADBC."""
