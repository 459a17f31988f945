"""Transforms: SQL with ``{{ ref('zone.name') }}`` over managed datasets."""

from headwater.transform.refs import (
    DATASET_NAME_PATTERN,
    RefSpan,
    SqlIssue,
    check_sql,
    find_ref_spans,
    find_refs,
    quote_dataset,
    render_refs,
)

__all__ = [
    "DATASET_NAME_PATTERN",
    "RefSpan",
    "SqlIssue",
    "check_sql",
    "find_ref_spans",
    "find_refs",
    "quote_dataset",
    "render_refs",
]
