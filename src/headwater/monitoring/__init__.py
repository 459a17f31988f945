"""Monitoring: the stored run event stream, per-run JSON logs, Prometheus metrics and
connection health checks.

Cheap to import: the heavy parts (SQLAlchemy queries, prometheus_client) load inside the
modules that need them.
"""
