"""The lake: managed datasets stored as Delta tables under ``<root>/<zone>/<name>``.

Data lives in Delta (ACID commits, versions, time travel); the metadata store keeps the
registry of datasets, their keys and their schema versions. Every commit Headwater makes carries
its run id, row count (when known before committing), write mode and schema version as Delta
custom commit metadata, so the Delta log alone tells the story of a dataset.
"""

from __future__ import annotations

import builtins
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal
from urllib.parse import unquote

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]
import pyarrow.dataset as pads  # type: ignore[import-untyped]
from deltalake import CommitProperties, DeltaTable
from deltalake.exceptions import CommitFailedError, TableNotFoundError

from headwater.errors import (
    DatasetConflictError,
    DatasetError,
    DatasetNotFoundError,
    HeadwaterError,
    choices_hint,
    did_you_mean,
)
from headwater.lake.fields import schema_to_fields
from headwater.lake.history import (
    CommitInfo,
    HistoryEntry,
    SchemaVersion,
    parse_as_of,
    parse_history,
    version_at,
)
from headwater.lake.names import parse_name
from headwater.lake.scan import scan_dataset
from headwater.lake.schema import normalize_schema, plan_write
from headwater.lake.storage import is_local, remove_tree
from headwater.lake.stream import Tally, WriteInput, converted, open_source
from headwater.lake.writer import (
    TARGET_FILE_SIZE,
    PreparedWrite,
    error_text,
    run_merge,
    stream_write,
)
from headwater.metadata.models import DatasetRow
from headwater.metadata.store import MetadataStore

__all__ = ["TARGET_FILE_SIZE", "Lake"]

WriteMode = Literal["append", "overwrite", "merge"]
_MODES = ("append", "overwrite", "merge")
APPEND_ATTEMPTS = 5
"""How many times :meth:`Lake.write` commits an in-memory append that lost a race."""

_CREATING: dict[str, threading.Lock] = {}
_CREATING_GUARD = threading.Lock()


def _creation_lock(location: str) -> threading.Lock:
    """The lock that serializes the creation of the table at ``location`` in this process:
    two writers that both found no table would both commit version 0, and one would fail."""
    with _CREATING_GUARD:
        return _CREATING.setdefault(location, threading.Lock())


def _is_conflict(exc: BaseException) -> bool:
    """A Delta commit refused because another writer committed first."""
    return isinstance(exc, CommitFailedError) or "Failed to commit transaction" in str(exc)


def _arrow_schema(table: DeltaTable) -> pa.Schema:
    return normalize_schema(pa.schema(table.schema().to_arrow()))


# Delta reader features under which a data file can be read as plain Parquet
_PLAIN_READER_FEATURES = frozenset({"timestampNtz"})


class Lake:
    """Managed datasets on Delta Lake, registered in a :class:`MetadataStore`.

    ``root`` is a local directory or an object-store URI such as ``s3://bucket/prefix``;
    ``storage_options`` go to deltalake as they are (e.g. ``AWS_ENDPOINT_URL``,
    ``AWS_REGION``, ``AWS_ALLOW_HTTP``).
    """

    def __init__(
        self,
        root: str,
        store: MetadataStore,
        storage_options: dict[str, str] | None = None,
    ) -> None:
        root = str(root)
        if is_local(root):
            root = os.path.abspath(os.path.expanduser(root.removeprefix("file://")))
        self.root = root.rstrip("/") or "/"
        self.store = store
        self.storage_options = dict(storage_options) if storage_options else None

    # -- registry ------------------------------------------------------------------------
    def location(self, name: str) -> str:
        """Where dataset ``name`` lives: ``<root>/<zone>/<name>``."""
        parsed = parse_name(name)
        return f"{self.root}/{parsed.zone}/{parsed.table}"

    def exists(self, name: str) -> bool:
        """Whether ``name`` is a registered dataset."""
        parse_name(name)
        return self.store.get_dataset(name) is not None

    def list(self) -> list[str]:
        """Names of the registered datasets, sorted."""
        return [row.name for row in self.store.list_datasets()]

    def delete(self, name: str) -> None:
        """Delete the dataset's data (every version) and its registration."""
        table = self._load(name)
        if table is None and self.store.get_dataset(name) is None:
            raise self._not_found(name)
        if table is not None:
            remove_tree(self.location(name), self.storage_options)
        self.store.delete_dataset(name)

    def delete_rows(
        self, name: str, equals: Mapping[str, str], *, run_id: str | None = None
    ) -> int:
        """Delete the rows whose columns equal ``equals`` (all of them), in one commit.

        Returns how many rows were deleted; nothing is committed when none match.
        """
        table = self._require(name)
        condition = None
        for column, value in equals.items():
            term = pc.field(column) == value
            condition = term if condition is None else condition & term
        matching = 0 if condition is None else int(self.dataset(name).count_rows(filter=condition))
        if matching == 0:
            return 0
        predicate = " AND ".join(
            f"{quote_column(c)} = '" + v.replace("'", "''") + "'" for c, v in equals.items()
        )
        table.delete(
            predicate,
            commit_properties=CommitProperties(custom_metadata={"headwater.run_id": run_id or ""}),
        )
        return matching

    # -- reading -------------------------------------------------------------------------
    def read(
        self,
        name: str,
        *,
        columns: Sequence[str] | None = None,
        filter: pc.Expression | None = None,
        version: int | None = None,
        as_of: datetime | str | None = None,
    ) -> pa.Table:
        """Read ``name`` (optionally a past version) with projection and filter pushdown."""
        dataset = self.dataset(name, version=version, as_of=as_of)
        if columns is not None:
            for column in columns:
                if column not in dataset.schema.names:
                    raise DatasetError(
                        f"Dataset `{name}` has no column `{column}`.",
                        dataset=name,
                        column=column,
                        hint=choices_hint(column, dataset.schema.names, "columns"),
                    )
        try:
            return dataset.to_table(columns=list(columns) if columns else columns, filter=filter)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise DatasetError(
                f"Cannot read dataset `{name}`: {exc}",
                dataset=name,
                hint=f"Columns: {', '.join(dataset.schema.names)}.",
            ) from exc

    def dataset(
        self, name: str, *, version: int | None = None, as_of: datetime | str | None = None
    ) -> pads.Dataset:
        """A pyarrow dataset over ``name`` (scan it from DuckDB with pushdown)."""
        table = self._open(name, version=version, as_of=as_of)
        return scan_dataset(table, _arrow_schema(table))

    def parquet_scan(
        self, name: str, *, version: int | None = None, as_of: datetime | str | None = None
    ) -> tuple[builtins.list[str], pa.Schema] | None:
        """The Parquet files and schema of one version, when DuckDB may read them directly.

        Reading a snapshot's files with DuckDB's own Parquet reader is several times faster
        than scanning the pyarrow dataset, and exact when the table uses no reader feature
        that changes what a file means (deletion vectors, column mapping) and is not
        partitioned. Returns None when that does not hold, or when the files are not local
        (DuckDB cannot reach object storage here); callers then use :meth:`dataset`.
        """
        table = self._open(name, version=version, as_of=as_of)
        if "://" in self.root and not self.root.startswith("file://"):
            return None
        features = set(table.protocol().reader_features or [])
        if features - _PLAIN_READER_FEATURES or table.metadata().partition_columns:
            return None
        uris = table.file_uris()
        if not uris:
            return None
        # file URIs are percent-encoded; DuckDB takes paths, and reads `*?[]{}` as globs
        paths = [unquote(u.removeprefix("file://")) for u in uris]
        if any(ch in p for p in paths for ch in "*?[]{}"):
            return None
        return paths, _arrow_schema(table)

    def schema(self, name: str, *, version: int | None = None) -> pa.Schema:
        """The Arrow schema of ``name`` (at ``version``, by default the latest)."""
        return _arrow_schema(self._open(name, version=version))

    def version(self, name: str) -> int:
        """The current version of dataset ``name``."""
        return int(self._require(name).version())

    def transaction_version(self, name: str, app_id: str) -> int | None:
        """The last version of application transaction ``app_id`` committed to ``name``."""
        table = self._load(name)
        if table is None:
            return None
        version = table.transaction_version(app_id)
        return None if version is None else int(version)

    def commit_metadata(
        self, name: str, key: str, value: str, *, limit: int = 1000
    ) -> dict[str, Any] | None:
        """The custom metadata of the newest commit (of the last ``limit``) whose ``key`` is
        ``value``, or None."""
        table = self._load(name)
        if table is None:
            return None
        for entry in table.history(limit=limit):
            if str(entry.get(key, "")) == value:
                return dict(entry)
        return None

    def history(self, name: str) -> builtins.list[HistoryEntry]:
        """Every commit of ``name``, newest first."""
        return parse_history(self._require(name).history())

    def schema_history(self, name: str) -> builtins.list[SchemaVersion]:
        """The recorded schema versions of ``name``, oldest first."""
        parse_name(name)
        if self.store.get_dataset(name) is None:
            raise self._not_found(name)
        return [
            SchemaVersion(
                version=row.version,
                fields=list(row.fields),
                change=row.change,
                table_version=row.table_version,
                run_id=row.run_id,
                created_at=MetadataStore.as_utc(row.created_at),
            )
            for row in self.store.schema_versions(name)
        ]

    def resolve_version(self, name: str, as_of: datetime | str) -> int:
        """The version of ``name`` that was current at ``as_of``."""
        when = parse_as_of(as_of, name)
        return version_at(self.history(name), when, name)

    # -- writing -------------------------------------------------------------------------
    def write(
        self,
        name: str,
        data: WriteInput,
        *,
        mode: WriteMode = "append",
        keys: Sequence[str] | None = None,
        run_id: str | None = None,
        allow_schema_replace: bool = False,
        on_batch: Callable[[int], None] | None = None,
        metadata: Mapping[str, str] | None = None,
        transaction: tuple[str, int] | None = None,
    ) -> CommitInfo:
        """Write ``data`` to dataset ``name`` in one Delta commit, streaming batch by batch.

        ``append`` adds rows, ``overwrite`` atomically replaces them (readers see the old or
        the new version, never a mix), ``merge`` upserts on ``keys``. The schema is checked
        before anything is written (see :func:`~headwater.lake.schema.plan_write`); a missing
        table is created, even from empty input. ``on_batch(rows)`` is called as each batch
        streams through. ``metadata`` is added to the commit's custom metadata, and
        ``transaction`` — ``(app_id, version)`` — records a Delta application transaction
        in the same commit: an atomic marker of what a writer has committed, read back by
        :meth:`transaction_version` (the pipeline engine keeps extract checkpoints there).

        A merge holds its (converted) input in memory: it must see every key to deduplicate
        the source, keeping the **last** row of each key, so that duplicates within one write
        never double rows, and to prune the target files it rewrites. Split very large upserts
        into several writes.
        """
        parsed = parse_name(name)
        if mode not in _MODES:
            raise DatasetError(
                f"Unknown write mode {mode!r} for dataset `{name}`.",
                dataset=name,
                hint=choices_hint(str(mode), _MODES, "modes"),
            )
        if allow_schema_replace and mode != "overwrite":
            raise DatasetError(
                f"allow_schema_replace only applies to mode='overwrite' (got {mode!r}).",
                dataset=name,
                hint="Overwrite the dataset to replace its schema.",
            )
        # A missing table is created under a per-location lock, so that concurrent writers
        # in this process (a backfill's intervals) do not race to commit version 0.
        creating: threading.Lock | None = None
        table = self._load(name)
        if table is None:
            creating = _creation_lock(self.location(name))
            creating.acquire()
            table = self._load(name)
            if table is not None:
                creating.release()
                creating = None
        try:
            attempt = 1
            while True:
                try:
                    return self._write_once(
                        name,
                        parsed.zone,
                        table,
                        data,
                        mode,
                        keys,
                        run_id,
                        allow_schema_replace,
                        on_batch,
                        metadata,
                        transaction,
                    )
                except DatasetConflictError:
                    # Appends do not conflict logically: an append of in-memory data is
                    # simply committed again on top of the newer version. A streamed input
                    # was consumed, and an overwrite or merge must see the other writer's
                    # rows: those are left to the caller (a step's retries) to run again.
                    replayable = mode == "append" and isinstance(data, pa.Table)
                    if not replayable or attempt >= APPEND_ATTEMPTS:
                        raise
                    time.sleep(0.05 * attempt)
                    attempt += 1
                    table = self._load(name)
        finally:
            if creating is not None:
                creating.release()

    def _write_once(
        self,
        name: str,
        zone: str,
        table: DeltaTable | None,
        data: WriteInput,
        mode: WriteMode,
        keys: Sequence[str] | None,
        run_id: str | None,
        allow_schema_replace: bool,
        on_batch: Callable[[int], None] | None,
        metadata: Mapping[str, str] | None,
        transaction: tuple[str, int] | None,
    ) -> CommitInfo:
        record = self.store.get_dataset(name)
        recorded_keys = list(record.keys) if record is not None and record.keys else []
        keys = self._resolve_keys(name, mode, keys, recorded_keys, allow_schema_replace)
        source, batches = open_source(data, name)
        existing = _arrow_schema(table) if table is not None else None
        if source is None:
            if existing is None:
                raise DatasetError(
                    f"Cannot create dataset `{name}` from an empty iterator: no schema.",
                    dataset=name,
                    hint="Pass a pyarrow Table or RecordBatchReader, which carry a schema.",
                )
            source = existing
        plan = plan_write(name, existing, source, keys=keys, replace=allow_schema_replace)
        schema_version = self._reconcile(name, zone, record, table, existing, run_id)
        if plan.change is not None:
            schema_version += 1
        tally = Tally()
        prepared = PreparedWrite(
            dataset=name,
            location=self.location(name),
            storage_options=self.storage_options,
            table=table,
            plan=plan,
            mode=mode,
            keys=keys,
            run_id=run_id,
            schema_version=schema_version,
            extra_metadata=dict(metadata) if metadata else None,
            transaction=transaction,
        )
        stream = converted(batches, name, source, plan.schema, tally, on_batch)
        try:
            if mode == "merge":
                table, rows = run_merge(prepared, stream)
            else:
                known = data.num_rows if isinstance(data, pa.Table) else None
                reader = pa.RecordBatchReader.from_batches(plan.schema, stream)
                table = stream_write(prepared, reader, known)
                rows = tally.rows
        except HeadwaterError:
            raise
        except Exception as exc:
            if tally.error is not None:
                raise tally.error from exc
            if _is_conflict(exc):
                raise DatasetConflictError(
                    f"Writing dataset `{name}` failed: another writer committed to it first "
                    f"({error_text(exc)}).",
                    dataset=name,
                    hint="Nothing was committed; the dataset is unchanged. Run the write "
                    "again (give the step `retries:`), or write this dataset from one "
                    "writer at a time.",
                ) from exc
            raise DatasetError(
                f"Writing dataset `{name}` failed: {error_text(exc)}",
                dataset=name,
                hint="Nothing was committed; the dataset is unchanged.",
            ) from exc
        version = table.version()
        self._record(prepared, table, version, record is None or not recorded_keys)
        return CommitInfo(
            dataset=name,
            version=version,
            operation=mode,
            rows=rows,
            bytes=tally.bytes,
            schema_version=schema_version,
            schema_change=plan.change,
        )

    # -- internals -----------------------------------------------------------------------
    def _resolve_keys(
        self,
        name: str,
        mode: str,
        keys: Sequence[str] | None,
        recorded: builtins.list[str],
        replace: bool,
    ) -> builtins.list[str]:
        given = list(keys) if keys else []
        if given and recorded and given != recorded and not replace:
            raise DatasetError(
                f"Dataset `{name}` is keyed on {recorded}, not {given}.",
                dataset=name,
                hint="Keys are fixed by the first keyed write; omit keys= to use them, or "
                "overwrite with allow_schema_replace=True to redefine them.",
            )
        resolved = given or recorded
        if mode == "merge" and not resolved:
            raise DatasetError(
                f"Merging into dataset `{name}` needs key columns.",
                dataset=name,
                hint="Pass keys=[...] naming the columns that identify a row.",
            )
        return resolved

    def _reconcile(
        self,
        name: str,
        zone: str,
        record: DatasetRow | None,
        table: DeltaTable | None,
        existing: pa.Schema | None,
        run_id: str | None,
    ) -> int:
        """Current schema version, first recording a schema the metadata has not seen (a
        crash between commit and bookkeeping, or another engine evolving the table)."""
        current = record.schema_version if record is not None else 0
        if table is None or existing is None:
            return current
        versions = self.store.schema_versions(name) if record is not None else []
        fields = schema_to_fields(existing)
        if versions and versions[-1].fields == fields:
            return current
        if record is None:
            self.store.upsert_dataset(name, zone=zone, location=self.location(name))
        row = self.store.add_schema_version(
            name,
            fields,
            change="evolved" if versions else "created",
            table_version=table.version(),
            run_id=run_id,
        )
        return row.version

    def _record(
        self, prepared: PreparedWrite, table: DeltaTable, version: int, set_keys: bool
    ) -> None:
        name, plan = prepared.dataset, prepared.plan
        zone = parse_name(name).zone
        fields: dict[str, Any] = {}
        if prepared.keys and (set_keys or plan.change == "replaced"):
            fields["keys"] = list(prepared.keys)
        if plan.change == "created" or fields:
            self.store.upsert_dataset(name, zone=zone, location=prepared.location, **fields)
        if plan.change is not None:
            self.store.add_schema_version(
                name,
                schema_to_fields(_arrow_schema(table)),
                change=plan.change,
                table_version=version,
                run_id=prepared.run_id,
            )

    def _load(self, name: str) -> DeltaTable | None:
        try:
            return DeltaTable(self.location(name), storage_options=self.storage_options)
        except TableNotFoundError:
            return None

    def _require(self, name: str) -> DeltaTable:
        table = self._load(name)
        if table is None:
            raise self._not_found(name)
        return table

    def _not_found(self, name: str) -> DatasetNotFoundError:
        known = self.list()
        close = did_you_mean(name, known)
        return DatasetNotFoundError(
            f"Dataset `{name}` does not exist.",
            dataset=name,
            hint=close or f"Known datasets: {', '.join(known) if known else '(none)'}.",
        )

    def _open(
        self, name: str, *, version: int | None = None, as_of: datetime | str | None = None
    ) -> DeltaTable:
        table = self._require(name)
        if version is not None and as_of is not None:
            raise DatasetError(
                f"Pass either version or as_of for dataset `{name}`, not both.", dataset=name
            )
        if as_of is not None:
            version = version_at(parse_history(table.history()), parse_as_of(as_of, name), name)
        if version is None or version == table.version():
            return table
        latest = table.version()
        if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version < latest:
            raise self._bad_version(name, version, table)
        try:
            table.load_as_version(version)
        except Exception as exc:  # the log of that version was cleaned up
            raise self._bad_version(name, version, table) from exc
        return table

    def _bad_version(self, name: str, version: object, table: DeltaTable) -> DatasetError:
        versions = [e.version for e in parse_history(table.history())]
        low, high = (min(versions), max(versions)) if versions else (0, table.version())
        return DatasetError(
            f"Dataset `{name}` has no version {version!r}; valid versions: {low} to {high}.",
            dataset=name,
            hint="See Lake.history() for the versions and their times.",
        )


def quote_column(name: str) -> str:
    """A column name quoted for a Delta (DataFusion) SQL predicate."""
    return '"' + name.replace('"', '""') + '"'
