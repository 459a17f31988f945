"""Streaming input: turn what a caller passes into batches, convert and count them on the fly.

Nothing here materializes the input: batches flow one at a time from the caller's reader,
table or iterator, through a per-batch conversion to the planned schema (casts for widened
columns, nulls for absent nullable ones), into the Delta writer. Batches that already match
the plan pass through untouched.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]

from headwater.errors import DatasetError, SchemaIncompatibleError
from headwater.lake.schema import fits

__all__ = ["Converter", "Tally", "WriteInput", "converted", "make_converter", "open_source"]

WriteInput = pa.RecordBatchReader | pa.Table | pa.RecordBatch | Iterable[pa.RecordBatch]
Converter = Callable[[pa.RecordBatch], pa.RecordBatch]


def open_source(data: Any, dataset: str) -> tuple[pa.Schema | None, Iterator[pa.RecordBatch]]:
    """The input's schema (None for an empty iterator) and an iterator over its batches."""
    if isinstance(data, pa.RecordBatchReader):
        return data.schema, iter(data)
    if isinstance(data, pa.Table):
        return data.schema, iter(data.to_batches())
    if isinstance(data, pa.RecordBatch):
        return data.schema, iter([data])
    if hasattr(data, "__arrow_c_stream__"):  # DuckDB relations, Polars frames, arro3 readers
        reader = pa.RecordBatchReader.from_stream(data)
        return reader.schema, iter(reader)
    if isinstance(data, Iterable):
        batches = iter(data)
        first = next(batches, None)
        if first is None:
            return None, iter(())
        if not isinstance(first, pa.RecordBatch):
            raise DatasetError(
                f"Cannot write {type(first).__name__} items to dataset `{dataset}`.",
                dataset=dataset,
                hint="Pass a pyarrow RecordBatchReader, Table, or an iterable of RecordBatch.",
            )
        return first.schema, itertools.chain([first], batches)
    raise DatasetError(
        f"Cannot write a {type(data).__name__} to dataset `{dataset}`.",
        dataset=dataset,
        hint="Pass a pyarrow RecordBatchReader, Table, or an iterable of RecordBatch.",
    )


def make_converter(dataset: str, source: pa.Schema, target: pa.Schema) -> Converter | None:
    """A function converting batches of ``source`` to ``target``, or None when they match.

    Every source column must exist in ``target`` with a type that widens into it, and every
    target column missing from ``source`` must be nullable; otherwise SchemaIncompatibleError.
    """
    if source.equals(target, check_metadata=False):
        return None
    names = set(target.names)
    for f in source:
        if f.name not in names:
            raise SchemaIncompatibleError(
                f"Cannot write dataset `{dataset}`: a batch has column `{f.name}` that the "
                "first batch did not have.",
                dataset=dataset,
                column=f.name,
                hint="Every batch of one write must share the first batch's columns.",
            )
    steps: list[tuple[int, pa.DataType | None, str]] = []
    for f in target:
        index = source.get_field_index(f.name)
        if index < 0:
            if not f.nullable:
                raise SchemaIncompatibleError(
                    f"Cannot write dataset `{dataset}`: non-nullable column `{f.name}` is "
                    "missing from the input.",
                    dataset=dataset,
                    column=f.name,
                    hint="Add the column to the input.",
                )
            steps.append((-1, f.type, f.name))
            continue
        incoming = source.field(index).type
        if incoming == f.type:
            steps.append((index, None, f.name))
            continue
        if not fits(f.type, incoming):
            raise SchemaIncompatibleError(
                f"Cannot write dataset `{dataset}`: column `{f.name}` has type {incoming} in "
                f"a batch, which cannot be stored as {f.type}.",
                dataset=dataset,
                column=f.name,
                hint="Every batch of one write must share the first batch's schema.",
                old_type=str(f.type),
                new_type=str(incoming),
            )
        steps.append((index, f.type, f.name))

    def convert(batch: pa.RecordBatch) -> pa.RecordBatch:
        arrays = []
        for index, cast_to, name in steps:
            if index < 0:
                arrays.append(pa.nulls(batch.num_rows, cast_to))
            elif cast_to is None:
                arrays.append(batch.column(index))
            else:
                column = batch.column(index)
                if isinstance(column.type, pa.BaseExtensionType):
                    column = column.storage
                column = plain_lists(column)
                try:
                    arrays.append(column.cast(cast_to, safe=True))
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise SchemaIncompatibleError(
                        f"Cannot write dataset `{dataset}`: a value of column `{name}` "
                        f"({column.type}) does not fit the column type {cast_to}: {exc}",
                        dataset=dataset,
                        column=name,
                        hint="Fix or cast the value; nothing was committed.",
                        old_type=str(cast_to),
                        new_type=str(column.type),
                    ) from exc
        return pa.RecordBatch.from_arrays(arrays, schema=target)

    return convert


def _has_list_view(type_: pa.DataType) -> bool:
    if pa.types.is_list_view(type_) or pa.types.is_large_list_view(type_):
        return True
    if pa.types.is_list(type_) or pa.types.is_large_list(type_):
        return _has_list_view(type_.value_type)
    if pa.types.is_struct(type_):
        return any(_has_list_view(f.type) for f in type_.fields)
    return False


def plain_lists(array: pa.Array) -> pa.Array:
    """``array`` with every list view rebuilt as a plain list.

    pyarrow's own list_view -> list cast produces invalid offsets (seen in pyarrow 26), so
    list views (DuckDB's ``arrow_output_list_view``) are rebuilt from their lengths and
    flattened values instead.
    """
    type_ = array.type
    if not _has_list_view(type_):
        return array
    if pa.types.is_struct(type_):
        children = [plain_lists(array.field(i)) for i in range(type_.num_fields)]
        fields = [f.with_type(c.type) for f, c in zip(type_.fields, children, strict=True)]
        return pa.StructArray.from_arrays(children, fields=fields, mask=array.is_null())
    lengths = pc.fill_null(pc.list_value_length(array), 0)
    offsets = pa.concat_arrays([pa.array([0], lengths.type), pc.cumulative_sum(lengths)])
    values = plain_lists(pc.list_flatten(array))
    large = pa.types.is_large_list(type_) or pa.types.is_large_list_view(type_)
    builder = pa.LargeListArray if large else pa.ListArray
    return builder.from_arrays(offsets, values, mask=array.is_null())


@dataclass
class Tally:
    """Rows and bytes that streamed through, and the error that stopped the stream, if any."""

    rows: int = 0
    bytes: int = 0
    error: BaseException | None = None


def converted(
    batches: Iterator[pa.RecordBatch],
    dataset: str,
    source: pa.Schema,
    target: pa.Schema,
    tally: Tally,
    on_batch: Callable[[int], None] | None = None,
) -> Iterator[pa.RecordBatch]:
    """Yield ``batches`` converted to ``target``, counting them into ``tally``.

    Errors are recorded in ``tally.error`` before they propagate, because the Delta writer
    consumes this generator from native code and re-raises them as its own error type.
    """
    try:
        convert = make_converter(dataset, source, target)
        for batch in batches:
            if batch.schema is not source and not batch.schema.equals(source):
                source = batch.schema
                convert = make_converter(dataset, source, target)
            rows = batch.num_rows
            if rows == 0:
                continue
            tally.rows += rows
            tally.bytes += batch.nbytes
            yield batch if convert is None else convert(batch)
            if on_batch is not None:
                on_batch(rows)
    except GeneratorExit:
        raise
    except BaseException as exc:
        tally.error = exc
        raise
