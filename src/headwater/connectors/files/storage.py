"""Where files live: a local directory or an S3 prefix, seen through one fsspec filesystem.

Streams and write targets are paths relative to the connection's base; they may not
escape it. Hidden names (``.x``, ``_x``) are skipped when listing, which is how
in-progress writes (``.name.tmp-<uuid>``) stay invisible to readers.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from headwater.connectors.files.factory import FORMAT_ALIASES, FORMATS, FilesConfig
from headwater.errors import (
    ConfigError,
    ConnectorError,
    ConnectorUnavailableError,
    SourceNotFoundError,
    choices_hint,
    did_you_mean,
)

if TYPE_CHECKING:
    import fsspec
    import pyarrow as pa

__all__ = ["FileRef", "Storage", "redact", "split_extension"]

CONNECTOR = "files"
_COMPRESSION_SUFFIXES = {".gz": "gzip", ".gzip": "gzip", ".zst": "zstd", ".zstd": "zstd"}
_FORMAT_SUFFIXES = {
    ".csv": "csv",
    ".tsv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_GLOB_CHARS = frozenset("*?[")
# the user-info of a URL: scheme://user:password@host
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#@\s'\"]*)@")
_MASK = "****"


def redact(text: str, secrets: tuple[str | None, ...] = ()) -> str:
    """``text`` with the password of every URL masked and each of ``secrets`` removed.

    ``http://admin:pw@host`` -> ``http://admin:****@host``; a URL whose user-info has
    no password keeps the user name.
    """

    def mask(match: re.Match[str]) -> str:
        user, sep, _ = match["userinfo"].partition(":")
        return f"{match['scheme']}{user}{':' + _MASK if sep else ''}@"

    text = _URL_USERINFO.sub(mask, text)
    for secret in secrets:
        if secret and len(secret) >= 4:  # a one-letter "secret" would mask half the text
            text = text.replace(secret, _MASK)
    return text


def split_extension(name: str) -> tuple[str | None, str | None, str]:
    """Return ``(format, compression, extension)`` inferred from a file name.

    ``orders.csv.gz`` -> ``("csv", "gzip", ".csv")``; unknown -> ``(None, None, ext)``.
    """
    base = posixpath.basename(name).lower()
    stem, ext = posixpath.splitext(base)
    compression = _COMPRESSION_SUFFIXES.get(ext)
    if compression:
        stem, ext = posixpath.splitext(stem)
    return _FORMAT_SUFFIXES.get(ext), compression, ext


def normalize_format(value: str, *, key: str = "format") -> str:
    """Validate a format name (aliases allowed) or raise ConfigError listing valid ones."""
    lowered = value.strip().lower()
    fmt = FORMAT_ALIASES.get(lowered, lowered)
    if fmt not in FORMATS:
        raise ConfigError(
            f"Unknown file format {value!r}.",
            connector=CONNECTOR,
            field=key,
            hint=choices_hint(lowered, FORMATS, "formats"),
        )
    return fmt


@dataclass(frozen=True)
class FileRef:
    """One file of a stream."""

    rel: str  # path relative to the base, posix style
    path: str  # filesystem path (local absolute path, or bucket/key on S3)
    uri: str  # what DuckDB opens: the local path, or s3://bucket/key
    format: str | None
    compression: str | None


def _counts(ref: FileRef, fmt: str | None, default_fmt: str | None) -> bool:
    if fmt:
        return ref.format in (fmt, None)
    return ref.format is not None or default_fmt is not None


def _is_hidden(name: str) -> bool:
    return name.startswith((".", "_"))


class Storage:
    """The base location of a ``files`` connection."""

    def __init__(self, config: FilesConfig) -> None:
        self.config = config
        self.is_s3 = config.is_s3
        if self.is_s3:
            self.root = config.path.split("://", 1)[1].strip("/")
            if not self.root:
                raise ConfigError(
                    f"S3 path {config.path!r} names no bucket.",
                    connector=CONNECTOR,
                    field="path",
                    hint="Use s3://bucket or s3://bucket/prefix.",
                )
        else:
            raw = config.path.removeprefix("file://")
            raw = os.path.expanduser(raw)
            if not os.path.isabs(raw):
                raw = os.path.join(config.base_dir or os.getcwd(), raw)
            self.root = os.path.normpath(os.path.abspath(raw))
        self._fs: fsspec.AbstractFileSystem | None = None

    # -- names -------------------------------------------------------------------------
    @property
    def display(self) -> str:
        return f"s3://{self.root}" if self.is_s3 else self.root

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        if self._fs is None:
            self._fs = self._make_fs()
        return self._fs

    def _make_fs(self) -> fsspec.AbstractFileSystem:
        if not self.is_s3:
            from fsspec.implementations.local import LocalFileSystem

            return LocalFileSystem()
        try:
            import s3fs
        except ImportError:  # pragma: no cover - s3fs is a declared extra
            raise ConfigError(
                "Reading s3:// paths needs the s3fs package.",
                connector=CONNECTOR,
                hint="pip install 'headwater[s3]'",
            ) from None
        cfg = self.config
        kwargs: dict[str, Any] = {
            "anon": cfg.anon,
            "skip_instance_cache": True,
            "use_listings_cache": False,
            "config_kwargs": {
                "connect_timeout": cfg.connect_timeout,
                "read_timeout": cfg.read_timeout,
                "retries": {"max_attempts": 2, "mode": "standard"},
            },
        }
        if cfg.region:
            kwargs["client_kwargs"] = {"region_name": cfg.region}
        if cfg.endpoint_url:
            kwargs["endpoint_url"] = cfg.endpoint_url
        if cfg.key_id:
            kwargs["key"] = cfg.key_id
        if cfg.secret is not None:
            kwargs["secret"] = cfg.secret.get_secret_value()
        fs = s3fs.S3FileSystem(**kwargs)
        fs.retries = 2  # s3fs' own retry loop on top of botocore's (default 5)
        return fs

    def clean_relative(self, name: str, *, what: str = "stream") -> str:
        """Normalize a relative name; refuse absolute paths and ``..`` escapes."""
        text = name.strip().replace("\\", "/")
        if "://" in text or text.startswith("/") or (len(text) > 1 and text[1] == ":"):
            raise ConfigError(
                f"The {what} {name!r} must be a path relative to the connection's base "
                f"{self.display}.",
                connector=CONNECTOR,
                hint="Point the connection's `path` at the directory and name files relative "
                "to it.",
            )
        norm = posixpath.normpath(text) if text else "."
        if norm == ".." or norm.startswith("../"):
            raise ConfigError(
                f"The {what} {name!r} leaves the connection's base {self.display}.",
                connector=CONNECTOR,
                hint="Use a path inside the base directory, or another connection.",
            )
        return "" if norm == "." else norm

    def full_path(self, rel: str) -> str:
        if not rel:
            return self.root
        if self.is_s3:
            return f"{self.root}/{rel}"
        return os.path.join(self.root, *rel.split("/"))

    def uri(self, path: str) -> str:
        return f"s3://{path}" if self.is_s3 else path

    def relative(self, path: str) -> str:
        if self.is_s3:
            return path[len(self.root) :].lstrip("/")
        return os.path.relpath(path, self.root).replace(os.sep, "/")

    def ref(self, path: str) -> FileRef:
        fmt, compression, _ = split_extension(path)
        return FileRef(self.relative(path), path, self.uri(path), fmt, compression)

    # -- listing -----------------------------------------------------------------------
    def resolve(
        self, stream: str, *, fmt: str | None = None, default_fmt: str | None = None
    ) -> list[FileRef]:
        """The files of ``stream``: one file, a glob, or a directory (data files in it).

        In a directory, a file counts when its extension names ``fmt`` (or, with no
        ``fmt``, any known format), or names none and a format was given or defaults.
        """
        rel = self.clean_relative(stream)
        full = self.full_path(rel)
        with self._errors(f"listing {stream!r}"):
            if _GLOB_CHARS & set(rel):
                found = self.fs.glob(full, detail=True)
                paths = [
                    p
                    for p, info in found.items()
                    if info.get("type") == "file" and not _is_hidden(posixpath.basename(p))
                ]
                if not paths:
                    raise self._not_found(stream, rel, f"No files match {stream!r}")
                return [self.ref(p) for p in sorted(paths)]
            if self.fs.isdir(full):
                refs = [r for r in self._walk(full) if _counts(r, fmt, default_fmt)]
                if not refs:
                    raise SourceNotFoundError(
                        f"Directory {stream!r} under {self.display} holds no csv, jsonl or "
                        "parquet files.",
                        connector=CONNECTOR,
                        location=self.uri(full),
                        hint="Name the files with a glob such as `dir/*.txt` and set "
                        "`options.format`.",
                    )
                return refs
            if self.fs.isfile(full):
                return [self.ref(full)]
        raise self._not_found(stream, rel, f"No file or directory {stream!r}")

    def list_all(self, default_fmt: str | None = None) -> list[FileRef]:
        """Every data file under the base, recursively, hidden names skipped."""
        with self._errors("listing the base directory"):
            if not self.fs.isdir(self.root):
                raise SourceNotFoundError(
                    f"Base directory {self.display} does not exist.",
                    connector=CONNECTOR,
                    location=self.display,
                    hint="Create it or fix the connection's `path`.",
                )
            return [r for r in self._walk(self.root) if _counts(r, None, default_fmt)]

    def _walk(self, top: str) -> list[FileRef]:
        refs = []
        for path, info in sorted(self.fs.find(top, detail=True).items()):
            if info.get("type") != "file":
                continue
            parts = self.relative(path).split("/")
            if any(_is_hidden(part) for part in parts):
                continue
            refs.append(self.ref(path))
        return refs

    def _not_found(self, stream: str, rel: str, message: str) -> SourceNotFoundError:
        parent = posixpath.dirname(rel)
        hint = "Streams are paths or globs relative to the connection's base `path`."
        try:
            names = [posixpath.basename(p) for p in self.fs.ls(self.full_path(parent), False)]
            close = did_you_mean(posixpath.basename(rel), names)
            if close:
                hint = f"{close} {hint}"
        except (OSError, ValueError):
            if not self.fs.exists(self.root):
                hint = f"The base directory {self.display} does not exist either."
        return SourceNotFoundError(
            f"{message} under {self.display}.",
            connector=CONNECTOR,
            location=self.uri(self.full_path(rel)),
            hint=hint,
        )

    # -- checks ------------------------------------------------------------------------
    def check(self, *, writable: bool = False) -> None:
        """Raise ConnectorError unless the base (or, for writing, its nearest parent) exists."""
        with self._errors("checking the base"):
            if self.is_s3:
                bucket = self.root.split("/", 1)[0]
                self.fs.ls(bucket, detail=False)
                return
            if os.path.isdir(self.root):
                if writable and not os.access(self.root, os.W_OK):
                    raise ConnectorError(
                        f"Base directory {self.root} is not writable.",
                        connector=CONNECTOR,
                        location=self.root,
                    )
                return
            if writable:
                parent = os.path.dirname(self.root)
                while parent and not os.path.exists(parent):
                    parent = os.path.dirname(parent)
                if os.path.isdir(parent) and os.access(parent, os.W_OK):
                    return
            raise SourceNotFoundError(
                f"Base directory {self.root} does not exist.",
                connector=CONNECTOR,
                location=self.root,
                hint="Create it or fix the connection's `path`.",
            )

    # -- io ----------------------------------------------------------------------------
    def open_input(self, path: str) -> Any:
        return self.fs.open(path, "rb")

    def open_output(self, path: str) -> pa.NativeFile:
        import pyarrow as pa

        if self.is_s3:
            return pa.PythonFile(self.fs.open(path, "wb"), mode="w")
        return pa.OSFile(path, "wb")

    def redact(self, text: str) -> str:
        """``text`` without the connection's credentials (URL passwords, key id, secret)."""
        cfg = self.config
        secret = cfg.secret.get_secret_value() if cfg.secret is not None else None
        return redact(text, (secret, cfg.key_id))

    def errors(self, action: str) -> _ErrorContext:
        return self._errors(action)

    def _errors(self, action: str) -> _ErrorContext:
        return _ErrorContext(self, action)


class _ErrorContext:
    """Turn filesystem and S3 client failures into short ConnectorErrors."""

    def __init__(self, storage: Storage, action: str) -> None:
        self.storage = storage
        self.action = action

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        """Re-raise filesystem failures as our errors; never swallows an exception."""
        if exc is None or isinstance(exc, ConnectorError | ConfigError):
            return
        if isinstance(exc, FileNotFoundError):
            raise SourceNotFoundError(
                f"Not found while {self.action} under {self.storage.display}: {exc}",
                connector=CONNECTOR,
                location=self.storage.display,
            ) from None
        if isinstance(exc, Exception):
            # network trouble (refused, timed out, reset) may pass: mark it retryable
            cls = ConnectorUnavailableError if _is_network(exc) else ConnectorError
            raise cls(
                f"Failed {self.action} under {self.storage.display}: "
                f"{type(exc).__name__}: {self.storage.redact(_first_line(exc))}",
                connector=CONNECTOR,
                location=self.storage.display,
                hint=_hint_for(self.storage),
            ) from None


def _is_network(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionError | TimeoutError):
            return True
        name = type(current).__name__
        if name in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError"):
            return True
        current = current.__cause__ or current.__context__
    return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def _hint_for(storage: Storage) -> str | None:
    if not storage.is_s3:
        return None
    endpoint = storage.config.endpoint_url
    return storage.redact(
        f"Check endpoint_url ({endpoint or 'AWS default'}), region, credentials and "
        "that the bucket exists."
    )
