"""Checking a `--store` value before any work: exit 4 naming the path, never a traceback later.

Local stores: not a file, not below a file, not under /proc, /sys or /dev; for
commands that only read (`status`, `verify`, `gc`) the folder must exist; for
`run` it must be creatable and writable, which is probed by creating a file.
Remote stores: a known protocol (s3) with a bucket.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .store import StoreError

REMOTE_PROTOCOLS = ("s3",)
SYSTEM_ROOTS = (Path("/proc"), Path("/sys"), Path("/dev"))


def check_store_url(url: str, *, must_exist: bool = False, writable: bool = False) -> None:
    """Raise StoreError (exit 4) when `url` cannot be the store of the command about to run."""
    if "://" in url and not url.startswith("file://"):
        protocol, _, rest = url.partition("://")
        if protocol not in REMOTE_PROTOCOLS:
            raise StoreError(
                f"store {url}: unsupported protocol {protocol + '://'!r}; use a folder or s3://bucket/prefix"
            )
        if not rest.strip("/"):
            raise StoreError(f"store {url}: no bucket named; use s3://bucket/prefix")
        return
    path = Path(url.removeprefix("file://")).expanduser().absolute()
    resolved = path.resolve()
    for root in SYSTEM_ROOTS:
        if resolved == root or root in resolved.parents:
            raise StoreError(f"store {url}: {root} is a system folder, not a place for artifacts")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing == path and not path.is_dir():
        raise StoreError(f"store {url}: {path} is a file, not a folder")
    if existing != path:
        if not existing.is_dir():
            raise StoreError(f"store {url}: {existing} is a file, so no store can be created below it")
        if must_exist:
            raise StoreError(f"store {url}: {path} does not exist (check --store or SPARSEPIPE_STORE)")
    if writable:
        try:
            path.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path, prefix=".sparsepipe-write-probe-"):
                pass
        except OSError as error:
            reason = error.strerror or type(error).__name__
            raise StoreError(f"store {url}: {path} is not writable ({reason})") from None
    elif existing == path and not os.access(path, os.R_OK | os.X_OK):
        raise StoreError(f"store {url}: {path} is not readable")
