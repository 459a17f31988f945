"""The ``files`` destination: write an Arrow stream as Parquet, CSV or JSON Lines.

Targets are relative to the base path. A *file target* (``exports/orders.parquet``)
is replaced atomically on ``overwrite``: the data goes to a hidden temporary name in
the same directory, which is renamed over the target once complete (on S3 the
temporary object is copied to the final key and deleted; a copy is atomic per
object). A *directory target* (``exports/orders/``, or a name without a known
extension) holds part files ``part-<UTC timestamp>-<uuid>.<ext>``: ``append`` adds
one, ``overwrite`` replaces the whole directory (locally by swapping in a freshly
written directory; on S3 by writing the new part, then deleting the old objects).

Appends are idempotent when the engine passes a ``load_id``: the part file is named
``part-<load id>.<ext>`` and written atomically, so a load re-run after a crash
replaces its own part instead of adding a second one. Schema contracts: ``evolve``
writes the input as is; ``freeze`` and ``discard_row`` compare it with an existing
Parquet target (the file, or a part of the directory) and refuse or reject rows that
do not fit. CSV and JSON Lines targets carry no schema to hold a contract against.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from headwater.connectors.base import RejectSink, SchemaContract, WriteMode, WriteResult
from headwater.connectors.contract import Conformer, plan_contract
from headwater.connectors.files.factory import FilesConfig
from headwater.connectors.files.options import WriteOptions, parse_options
from headwater.connectors.files.storage import CONNECTOR, Storage, split_extension
from headwater.connectors.files.writers import COMPRESSION_EXTENSIONS, EXTENSIONS, write_file
from headwater.errors import ConfigError, ConnectorError, HeadwaterError, UnsupportedOperationError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["FilesDestination"]


class FilesDestination:
    """Writes Arrow streams to files under the connection's base path."""

    def __init__(self, config: FilesConfig) -> None:
        self.config = config
        self.storage = Storage(config)

    def check(self) -> None:
        self.storage.check(writable=True)

    def write(
        self,
        target: str,
        batches: pa.RecordBatchReader,
        *,
        mode: WriteMode = "append",
        keys: list[str] | None = None,
        options: Mapping[str, Any] | None = None,
        load_id: str | None = None,
        schema_contract: SchemaContract = "evolve",
        rejects: RejectSink | None = None,
    ) -> WriteResult:
        """Write ``batches`` to ``target``; ``keys`` are not used (no merge)."""
        if mode == "merge":
            raise UnsupportedOperationError(
                "The files connector cannot merge (upsert) into files.",
                connector=CONNECTOR,
                hint="Load into a managed dataset to merge by keys, or write with "
                "mode='overwrite' or 'append'.",
            )
        if mode not in ("append", "overwrite"):
            raise ConfigError(
                f"Unknown write mode {mode!r}.",
                connector=CONNECTOR,
                hint="Valid modes for files: append, overwrite.",
            )
        opts = parse_options(WriteOptions, options, "write")
        rel = self.storage.clean_relative(target, what="target")
        if set("*?[") & set(rel):
            raise ConfigError(
                f"The target {target!r} is a glob; name one file or directory.",
                connector=CONNECTOR,
            )
        full = self.storage.full_path(rel)
        is_dir = self._is_directory(target, rel, full)
        fmt, compression = self._format(target, rel, is_dir, opts)
        contract = None
        if schema_contract != "evolve" and fmt == "parquet":
            batches, contract = self._contract(
                target, full, is_dir, batches, schema_contract, rejects
            )
        try:
            if not is_dir:
                if mode == "append":
                    raise UnsupportedOperationError(
                        f"Cannot append to the single file {target!r}.",
                        connector=CONNECTOR,
                        hint=f"Use a directory target such as '{_stem(rel)}/' (each append "
                        "adds a part file), or mode='overwrite'.",
                    )
                rows = self._write_atomic(full, batches, fmt, compression, opts)
                files = [full]
            elif mode == "append":
                name = _part_name(fmt, compression, load_id)
                part = self.storage.full_path(posixpath.join(rel, name))
                rows = self._write_atomic(part, batches, fmt, compression, opts)
                files = [part]
            else:
                rows, files = self._overwrite_directory(full, batches, fmt, compression, opts)
            size = sum(self.storage.fs.size(f) for f in files)
        except HeadwaterError:
            raise
        except Exception as exc:
            raise ConnectorError(
                f"Writing {target!r} under {self.storage.display} failed: "
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                connector=CONNECTOR,
                location=self.storage.uri(full),
            ) from exc
        return WriteResult(
            rows=rows,
            bytes=size,
            location=self.storage.uri(full),
            details={
                "format": fmt,
                "mode": mode,
                "files": [self.storage.uri(f) for f in files],
                "load_id": load_id,
                "rows_rejected": contract.rows_rejected if contract is not None else 0,
            },
        )

    def _contract(
        self,
        target: str,
        full: str,
        is_dir: bool,
        batches: pa.RecordBatchReader,
        contract: SchemaContract,
        rejects: RejectSink | None,
    ) -> tuple[pa.RecordBatchReader, Conformer | None]:
        """Hold ``batches`` to the schema of an existing Parquet target, if there is one."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        fs = self.storage.fs
        with self.storage.errors(f"reading the schema of {target!r}"):
            if is_dir:
                parts = (
                    sorted(p for p in fs.find(full) if p.endswith(".parquet"))
                    if fs.isdir(full)
                    else []
                )
            else:
                parts = [full] if fs.exists(full) else []
            if not parts:
                return batches, None
            with fs.open(parts[-1], "rb") as handle:
                existing = pq.read_schema(handle)
        plan = plan_contract(target, existing, batches.schema, contract, what="file target")
        conformer = Conformer(plan, rejects)
        return (
            pa.RecordBatchReader.from_batches(plan.schema, (conformer(b) for b in batches)),
            conformer,
        )

    # -- planning ----------------------------------------------------------------------
    def _is_directory(self, target: str, rel: str, full: str) -> bool:
        if not rel or target.rstrip().endswith(("/", "\\")):
            return True
        with self.storage.errors(f"inspecting {target!r}"):
            if self.storage.fs.isdir(full):
                return True
        return split_extension(rel)[0] is None

    def _format(
        self, target: str, rel: str, is_dir: bool, opts: WriteOptions
    ) -> tuple[str, str | None]:
        """The format and the compression codec (None: parquet default / uncompressed)."""
        ext_format, ext_compression, _ = (None, None, "") if is_dir else split_extension(rel)
        if opts.format and ext_format and opts.format != ext_format:
            raise ConfigError(
                f"options.format={opts.format!r} contradicts the target name {target!r}.",
                connector=CONNECTOR,
                field="options.format",
                hint=f"Name the file {_stem(rel)}{EXTENSIONS[opts.format]}.",
            )
        fmt = opts.format or ext_format or self.config.format
        if fmt is None:
            raise ConfigError(
                f"Cannot tell which format to write to {target!r}.",
                connector=CONNECTOR,
                hint="Set options.format (csv, jsonl, parquet) or the connection's `format`, "
                "or give the target an extension.",
            )
        compression = opts.compression
        if fmt == "parquet":
            return fmt, compression  # a codec inside the file; None means zstd
        if compression == "snappy":
            raise ConfigError(
                f"snappy compression applies to parquet only, not {fmt}.",
                connector=CONNECTOR,
                field="options.compression",
                hint="Use gzip or zstd.",
            )
        wanted = None if compression == "none" else compression
        if is_dir:
            return fmt, wanted
        if compression is None:
            return fmt, ext_compression
        if wanted != ext_compression:
            raise ConfigError(
                f"options.compression={compression!r} does not match the target name {target!r}.",
                connector=CONNECTOR,
                field="options.compression",
                hint=f"Name the file {_stem(rel)}{EXTENSIONS[fmt]}"
                f"{COMPRESSION_EXTENSIONS.get(wanted or '', '')}.",
            )
        return fmt, wanted

    # -- writing -----------------------------------------------------------------------
    def _write_atomic(
        self,
        path: str,
        reader: pa.RecordBatchReader,
        fmt: str,
        compression: str | None,
        opts: WriteOptions,
    ) -> int:
        """Write to a hidden temporary name beside ``path``, then rename it into place."""
        fs = self.storage.fs
        parent, name = posixpath.split(path) if self.storage.is_s3 else os.path.split(path)
        tmp = _join(self.storage, parent, f".{name}.tmp-{uuid.uuid4().hex[:12]}")
        if not self.storage.is_s3:
            os.makedirs(parent, exist_ok=True)
        try:
            rows = write_file(self.storage, tmp, reader, fmt, compression, opts)
            if self.storage.is_s3:
                fs.mv(tmp, path)
            else:
                os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(Exception):
                fs.rm(tmp)
            raise
        return rows

    def _overwrite_directory(
        self,
        path: str,
        reader: pa.RecordBatchReader,
        fmt: str,
        compression: str | None,
        opts: WriteOptions,
    ) -> tuple[int, list[str]]:
        part_name = _part_name(fmt, compression)
        fs = self.storage.fs
        if self.storage.is_s3:
            old = [p for p in fs.find(path)] if fs.isdir(path) else []
            part = f"{path}/{part_name}"
            rows = self._write_atomic(part, reader, fmt, compression, opts)
            stale = [p for p in old if p != part]
            if stale:
                fs.rm(stale)
            return rows, [part]
        if os.path.isfile(path):
            raise ConfigError(
                f"The directory target {path} is an existing file.",
                connector=CONNECTOR,
                hint="Write to the file name itself, or remove the file.",
            )
        parent, name = os.path.split(path)
        os.makedirs(parent, exist_ok=True)
        tag = uuid.uuid4().hex[:12]
        staging = os.path.join(parent, f".{name}.tmp-{tag}")
        os.makedirs(staging)
        try:
            rows = write_file(
                self.storage, os.path.join(staging, part_name), reader, fmt, compression, opts
            )
            if os.path.exists(path):
                retired = os.path.join(parent, f".{name}.old-{tag}")
                os.rename(path, retired)
                os.rename(staging, path)
                shutil.rmtree(retired, ignore_errors=True)
            else:
                os.rename(staging, path)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return rows, [os.path.join(path, part_name)]


def _join(storage: Storage, parent: str, name: str) -> str:
    return f"{parent}/{name}" if storage.is_s3 else os.path.join(parent, name)


def _stem(rel: str) -> str:
    _, compression, ext = split_extension(rel)
    stem = rel
    for suffix in (COMPRESSION_EXTENSIONS.get(compression or "", ""), ext):
        if suffix and stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    return stem


def _part_name(fmt: str, compression: str | None, load_id: str | None = None) -> str:
    suffix = EXTENSIONS[fmt]
    if fmt != "parquet":
        suffix += COMPRESSION_EXTENSIONS.get(compression or "", "")
    if load_id:  # deterministic: a re-run of the same load replaces its own part
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in load_id)
        return f"part-{safe}{suffix}"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"part-{stamp}-{uuid.uuid4().hex[:12]}{suffix}"
