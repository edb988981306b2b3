"""Per-cell scratch folders in the temp directory, and removing the ones a killed worker left
(and the half-done downloads it left in the local artifact cache).

A unit works in `<tmp>/sparsepipe-<stage>-<pid>-<random>`.  The folder removes
itself when the unit ends normally; when the worker is killed (Ctrl-C, ray
cancel) it stays, so the driver removes the folders of dead processes after an
interrupted or failed run, and `sparsepipe gc` removes them too.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from pathlib import Path

# Folders without a pid (older releases) are only removed once untouched this long.
UNOWNED_MIN_AGE_S = 3600.0
_NAME = re.compile(r"^sparsepipe-(?P<stage>[A-Za-z0-9_]+)-(?:(?P<pid>\d+)-)?")


def scratch_dir(stage: str) -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix=f"sparsepipe-{stage}-{os.getpid()}-")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_scratch(older_than_s: float = 0.0, root: Path | None = None, include_unowned: bool = False) -> list[Path]:
    """Scratch folders whose process is gone; with include_unowned also folders without a pid
    in their name (older releases) untouched for older_than_s (at least an hour)."""
    root = Path(root or tempfile.gettempdir())
    found = []
    now = time.time()
    for path in root.glob("sparsepipe-*"):
        match = _NAME.match(path.name)
        if match is None or not path.is_dir():
            continue
        pid = match.group("pid")
        if pid is not None and _alive(int(pid)):
            continue
        try:
            age = now - path.stat().st_mtime
        except OSError:
            continue
        if pid is None and (not include_unowned or age < max(older_than_s, UNOWNED_MIN_AGE_S)):
            continue  # a pid-less folder may belong to a unit in flight: only by age
        if older_than_s > 0 and age < older_than_s:
            continue
        found.append(path)
    return sorted(found)


def stale_fetches(cache_root: Path, older_than_s: float = 0.0) -> list[Path]:
    """Downloads into the local artifact cache that a killed process left half done: nothing in them
    was written for older_than_s (a download in flight keeps writing)."""
    from .store import FETCH_PREFIX

    if not cache_root.is_dir():
        return []
    now = time.time()
    found = []
    for path in cache_root.glob(f"{FETCH_PREFIX}*"):
        try:
            newest = max([path.stat().st_mtime] + [entry.stat().st_mtime for entry in path.rglob("*")])
        except OSError:  # finished or removed meanwhile
            continue
        if now - newest >= older_than_s:
            found.append(path)
    return sorted(found)


def remove_stale_scratch(older_than_s: float = 0.0, wait_s: float = 0.0) -> list[Path]:
    """Remove stale scratch folders; for up to wait_s, keep removing those of workers still exiting."""
    deadline = time.monotonic() + wait_s
    removed: list[Path] = []
    while True:
        for path in stale_scratch(older_than_s):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        pending = [
            p for p in Path(tempfile.gettempdir()).glob("sparsepipe-*") if (m := _NAME.match(p.name)) and m.group("pid")
        ]
        if time.monotonic() >= deadline or not pending:
            return removed
        time.sleep(0.25)
