"""Live progress of running cells, kept in the store: `sparsepipe status --running` reads it from anywhere.

Every running cell writes `live.json` into its progress area (`<stage>/<key>/progress/<gen>/live.json`) at
most every WRITE_INTERVAL_S seconds and when it ends: its step (events' completed / total), the last scalars
it reported (losses), its throughput and ETA, host and pid. The store is the only channel, so a laptop sees a
detached run or a cluster's cells with `--store` alone, no Ray connection. A cell counts as running while its
generation has no manifest and its record is not final; a record not updated for STALE_AFTER_S is shown as
stale (its process died without a word: a killed driver, a lost node).
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from .store import Store, StoreProgressArea

LIVE_FILE = "live.json"
WRITE_INTERVAL_S = 5.0
STALE_AFTER_S = 120.0
RUNNING, ENDED, FAILED, STALE = "running", "committing", "failed", "stale"


class LiveStatus:
    """The live record of one running cell; `observe` every progress event, `end` once."""

    def __init__(self, progress: StoreProgressArea, stage: str, cell: str, key: str, generation: int):
        self.progress = progress
        self.record: dict[str, Any] = {
            "stage": stage,
            "cell": cell,
            "key": key,
            "generation": generation,
            "state": RUNNING,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": time.time(),
            "updated": time.time(),
            "completed": None,
            "total": None,
            "description": "",
            "step": None,
            "scalars": {},
            "steps_per_s": None,
            "eta_s": None,
        }
        self._first: tuple[float, float] | None = None  # (time, completed) of the first count seen here
        self._written = 0.0
        self.write()

    def observe(self, event: dict[str, Any]) -> None:
        record, now = self.record, time.time()
        for name in ("completed", "total", "description"):
            if event.get(name) is not None:
                record[name] = event[name]
        if event.get("scalars"):
            record["scalars"].update({k: v for k, v in event["scalars"].items() if v is not None})
            record["step"] = event.get("step", event.get("completed"))
        completed = record["completed"]
        if isinstance(completed, (int, float)):
            # Throughput since this process first saw a count: a resumed cell does not count the steps it skipped.
            if self._first is None:
                self._first = (now, completed)
            elapsed, done = now - self._first[0], completed - self._first[1]
            if elapsed > 0 and done > 0:
                record["steps_per_s"] = done / elapsed
                total = record["total"]
                record["eta_s"] = (total - completed) / record["steps_per_s"] if total else None
        if now - self._written >= WRITE_INTERVAL_S:
            self.write()

    def end(self, ok: bool) -> None:
        """The cell's work ended: it commits now (ok) or failed; either way it is no longer running."""
        self.record["state"] = ENDED if ok else FAILED
        self.write()

    def write(self) -> None:
        self.record["updated"] = self._written = time.time()
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / LIVE_FILE
            path.write_text(json.dumps(self.record, default=str))
            self.progress.put(LIVE_FILE, path)


def running_cells(store: Store, now: float | None = None) -> list[dict[str, Any]]:
    """The live records of every cell in progress in `store`: state "running", or "stale" when not updated for
    STALE_AFTER_S; with "age_s" (seconds since its last update). Committed and ended cells are left out."""
    now = time.time() if now is None else now
    pattern = "/".join([store.root, "*", "*", "progress", "*", LIVE_FILE])
    found = []
    for path in sorted(store._io("listing live progress", store.fs.glob, pattern)):
        try:
            record = json.loads(store._io("reading live progress", store.fs.cat_file, path))
        except (FileNotFoundError, ValueError):
            continue  # the cell just ended (gc) or the file is being replaced
        if record.get("state") != RUNNING:
            continue
        committed = store.lookup(record["stage"], record["key"])
        if committed is not None and committed.generation >= record["generation"]:
            continue
        record["age_s"] = max(0.0, now - float(record.get("updated", now)))
        if record["age_s"] > STALE_AFTER_S:
            record["state"] = STALE
        found.append(record)
    return found
