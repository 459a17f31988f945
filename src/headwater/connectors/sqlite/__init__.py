"""The ``sqlite`` connector: a SQLite database file as source and destination."""
