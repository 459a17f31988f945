"""Removing a dataset's files from the lake's storage (local directory or object store)."""

from __future__ import annotations

import shutil
from urllib.parse import urlsplit

__all__ = ["is_local", "remove_tree"]

_ACCESS_KEY = ("aws_access_key_id", "access_key_id")
_SECRET_KEY = ("aws_secret_access_key", "secret_access_key")
_TOKEN = ("aws_session_token", "session_token", "aws_token", "token")
_REGION = ("aws_region", "region", "aws_default_region")
_ENDPOINT = ("aws_endpoint_url", "aws_endpoint", "endpoint_url", "endpoint")


def is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def _pick(options: dict[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        if name in options:
            return options[name]
    return None


def remove_tree(location: str, storage_options: dict[str, str] | None) -> None:
    """Delete every object under ``location``.

    S3 goes through pyarrow's S3 filesystem, which releases the GIL while it waits (deltalake's
    own storage handler does not, which stalls every other Python thread meanwhile); other
    object stores go through deltalake's handler.
    """
    if is_local(location):
        shutil.rmtree(location.removeprefix("file://"), ignore_errors=True)
        return
    parts = urlsplit(location)
    options = {k.lower(): v for k, v in (storage_options or {}).items()}
    if parts.scheme in ("s3", "s3a"):
        from pyarrow import fs  # type: ignore[import-untyped]

        s3 = fs.S3FileSystem(
            access_key=_pick(options, _ACCESS_KEY),
            secret_key=_pick(options, _SECRET_KEY),
            session_token=_pick(options, _TOKEN),
            region=_pick(options, _REGION),
            endpoint_override=_pick(options, _ENDPOINT),
        )
        s3.delete_dir(f"{parts.netloc}{parts.path}".rstrip("/"))
        return
    from deltalake.fs import DeltaStorageHandler

    parent, _, leaf = location.rstrip("/").rpartition("/")
    DeltaStorageHandler(parent, storage_options).delete_dir(leaf)
