"""Helpers of the bridges tests: other test folders' helper modules, imported by path."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def import_by_path(path: Path) -> ModuleType:
    """A helper module of another test folder (pytest adds only this folder to sys.path)."""
    if path.stem in sys.modules:
        return sys.modules[path.stem]
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


TESTS = Path(__file__).parents[1]
tiny_run = import_by_path(TESTS / "train" / "tiny_run.py")
stage_inputs = import_by_path(TESTS / "prune" / "stage_inputs.py")
