"""Fixtures for the tuning tests: one set of prune-cell inputs per session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tune_toys import write_cell_inputs


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


@pytest.fixture(scope="session")
def cell_inputs(tmp_path_factory) -> dict[str, Path]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return write_cell_inputs(tmp_path_factory.mktemp("tune_inputs"))
    finally:
        torch.set_num_threads(previous)
