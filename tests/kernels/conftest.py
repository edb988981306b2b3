"""Kernel tests start from the default dispatch, whatever the shell exported."""

import pytest


@pytest.fixture(autouse=True)
def _default_kernel_choice(monkeypatch):
    monkeypatch.delenv("SPARSEPIPE_KERNELS", raising=False)
