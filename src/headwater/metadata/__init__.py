"""Metadata: SQLAlchemy models, Alembic migrations and the store."""

from headwater.metadata.store import MetadataStore, sqlite_url

__all__ = ["MetadataStore", "sqlite_url"]
