"""Hypothesis strategies for Arrow types, shared by the lake's property tests."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import strategies as st

SIGNED = [pa.int8(), pa.int16(), pa.int32(), pa.int64()]
UNSIGNED = [pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64()]
TZS = [None, "UTC", "Europe/Paris", "+02:00"]

scalar_types = st.one_of(
    st.sampled_from(
        [
            pa.bool_(),
            *SIGNED,
            *UNSIGNED,
            pa.float16(),
            pa.float32(),
            pa.float64(),
            pa.string(),
            pa.large_string(),
            pa.string_view(),
            pa.binary(),
            pa.large_binary(),
            pa.binary_view(),
            pa.binary(8),
            pa.date32(),
            pa.date64(),
        ]
    ),
    st.builds(pa.timestamp, st.sampled_from(["s", "ms", "us", "ns"]), st.sampled_from(TZS)),
    st.integers(1, 38).flatmap(lambda p: st.builds(pa.decimal128, st.just(p), st.integers(0, p))),
)
dictionary_types = st.sampled_from([pa.int8(), pa.int32()]).map(
    lambda index: pa.dictionary(index, pa.string())
)
names = st.text(alphabet="abcdefgh_", min_size=1, max_size=4)


def _nested(children: st.SearchStrategy[pa.DataType]) -> st.SearchStrategy[pa.DataType]:
    field = st.builds(pa.field, names, children, st.booleans())
    return st.one_of(
        children.map(pa.list_),
        children.map(pa.large_list),
        st.lists(field, min_size=1, max_size=3, unique_by=lambda f: f.name).map(pa.struct),
        children.map(lambda t: pa.map_(pa.string(), t)),
    )


# every Arrow type a writer may hand over (dictionaries included)
arrow_types = st.recursive(st.one_of(scalar_types, dictionary_types), _nested, max_leaves=6)
# the same without dictionaries, which normalization always removes
plain_types = st.recursive(scalar_types, _nested, max_leaves=6)
