"""
Where a file goes in or out: a local path, or Airflow's ``ObjectStoragePath`` (a URL such as ``s3://bucket/key``).

A ground-floor module: operators and the hook both ask it. Local paths stay ``pathlib.Path`` and keep every
local behaviour (links, atomic renames); anything with a scheme, or an ``ObjectStoragePath`` the DAG built, goes
through Airflow's object storage, whose store connection is Airflow's own (``conn_id`` on the path, or
``scheme://conn_id@bucket/key``): no credential of a store ever passes through this package.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from airflow_provider_edgeimpulse.compat import object_storage_path_class

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_USERINFO_SECRET = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^/@:\s]*):[^/@\s]*@")
# Read and write through object storage in parts of this size: S3's smallest multipart part, and so the memory
# one transfer holds however big the file (fsspec's own default is 50 MiB).
OBJECT_PART_BYTES = 5 * 1024 * 1024


def is_url(value: Any) -> bool:
    return isinstance(value, str) and bool(_URL.match(value.strip()))


def is_object_path(value: Any) -> bool:
    """True for an ``ObjectStoragePath`` (a ``str`` is answered without importing Airflow's io)."""
    # Ask this before ``isinstance(value, Path)``: on Airflow 2.11 an ObjectStoragePath is also a ``pathlib.Path``.
    return not isinstance(value, str) and isinstance(value, object_storage_path_class())


def shown_location(value: Any) -> str:
    """A path, URL or message for a log or XCom: a URL's ``user:password@`` keeps only the user (the ``conn_id``)."""
    return _USERINFO_SECRET.sub(r"\1@", str(value))


def storage_path(field: str, value: Any) -> Any:
    """
    ``value`` as a ``pathlib.Path`` (a local path, ``~`` expanded) or an ``ObjectStoragePath`` whose store is
    known; a ``ValueError`` naming ``field`` otherwise (no scheme handler: a provider is missing). A URL names its
    store's Airflow connection as ``ObjectStoragePath`` reads it: ``s3://conn_id@bucket/key``.
    """
    if is_object_path(value):
        path = value
    elif isinstance(value, os.PathLike):
        return Path(os.fspath(value)).expanduser()
    elif not isinstance(value, str) or not value.strip():
        raise ValueError(f"{field} must be a path, a URL or an ObjectStoragePath, got {value!r}")
    elif not is_url(value):
        return Path(value).expanduser()
    else:
        try:
            # Never ``conn_id=None`` here: Airflow 2.11 would let it override the URL's own ``conn_id@``.
            path = object_storage_path_class()(value.strip())
        except (ValueError, ImportError, TypeError) as err:
            raise _no_store(field, value, err) from None
    try:
        path.fs  # noqa: B018 -- resolves the store now, so a missing provider fails before any work is done
    except (ValueError, ImportError, TypeError) as err:
        raise _no_store(field, value, err) from None
    return path


def _no_store(field: str, value: Any, err: Exception) -> ValueError:
    location = shown_location(value)
    scheme = location.split("://", 1)[0] if "://" in location else "?"
    return ValueError(
        f"{field} {location!r}: Airflow has no object storage for the scheme {scheme!r} ({type(err).__name__}: "
        f"{shown_location(err)}); install the provider that serves it (for s3: apache-airflow-providers-amazon "
        "and s3fs) or attach a filesystem for it"
    )


def open_for_read(path: Any) -> Any:
    """A binary reader of ``path``: local files as usual, object storage in bounded parts."""
    if is_object_path(path):
        return path.open("rb", block_size=OBJECT_PART_BYTES)
    return open(path, "rb")


def file_size(path: Any) -> int:
    info = path.stat()
    size = getattr(info, "st_size", None)
    if size is None and isinstance(info, dict):
        size = info.get("size")
    return int(size or 0)


def make_object_directory(directory: Any) -> None:
    """
    Create a directory of object storage where it is a real one (a ``file://`` store); an object store has only
    keys, and creating its "directory" could create a bucket, which is the store owner's call, not ours.
    """
    protocols = directory.fs.protocol
    if "file" in ((protocols,) if isinstance(protocols, str) else tuple(protocols)):
        directory.mkdir(parents=True, exist_ok=True)
