"""Runs repeat: smoke from two checkouts of this tree in different folders gives the same tokens and checkpoints.

Each checkout is a copy of the tracked and untracked (not ignored) files under a folder named `sparsepipe` (with
the package's __init__ at its top, as a wheel has it), run with PYTHONPATH at its parent: the copy is imported
instead of the editable install (checked), so the code, its folder and the Ray workers' imports all differ from
the other run's; the interpreter and its standard library (the default corpus) are the same, as on one machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
COMPARED = ("tokenize", "pretrain", "dense", "matched_dense")


def _checkout(root: Path) -> Path:
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = REPO / name
        if source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, root / name)
    # The package's own __init__ (pyproject maps `sparsepipe` to pipeline/root) at the top, as in a wheel.
    shutil.copyfile(root / "pipeline" / "root" / "__init__.py", root / "__init__.py")
    return root


def _env(checkout: Path, tmpdir: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(checkout.parent), "TMPDIR": str(tmpdir)}


def _digests(store: Path) -> dict[str, dict[str, str]]:
    """Per committed cell of the compared stages: its key and the sha256 of every checkpoint and token file."""
    out = {}
    for stage in COMPARED:
        for manifest_path in sorted((store / stage).glob("*/MANIFEST*.json")):
            manifest = json.loads(manifest_path.read_text())
            files = {
                path: info["sha256"]
                for path, info in manifest["files"].items()
                if path.endswith((".safetensors", ".parquet", "tokenizer.json", "match.json"))
            }
            out[f"{stage}/{manifest['cell']}"] = {"key": manifest["key"], **files}
    return out


def test_smoke_from_two_checkouts_in_different_folders_gives_equal_checkpoints(tmp_path, ray_tmpdir):
    places = ("a", "b/further/down")
    checkouts = [_checkout(tmp_path / place / "sparsepipe") for place in places]  # both before either runs
    results = []
    for place, checkout in zip(places, checkouts):
        env = _env(checkout, ray_tmpdir)
        where = subprocess.run(
            [sys.executable, "-c", "import sparsepipe, sparsepipe.workers.train.loop as m; print(m.__file__)"],
            env=env, cwd=tmp_path, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert where.startswith(str(checkout)), where  # this checkout's code, not the editable install's
        store = tmp_path / place / "store"
        run = subprocess.run(
            [sys.executable, "-m", "sparsepipe.pipeline", "run", "matched_dense", "--preset", "smoke"]
            + ["--store", str(store)],
            env=env, cwd=checkout, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr[-4000:]
        results.append(_digests(store))
    first, second = results
    assert set(first) == {"tokenize/", "pretrain/smoke", "dense/", "matched_dense/smoke"}
    assert any(name.endswith(".safetensors") for name in first["pretrain/smoke"])
    assert first == second
