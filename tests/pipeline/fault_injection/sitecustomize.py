"""Test-only fault injection into a real `sparsepipe run`, with no hook in the pipeline's own code.

A test puts this folder on PYTHONPATH and sets SPARSEPIPE_TEST_FAULT to a prune cell's name
("dense:single_double_quote"). Python imports `sitecustomize` at the start of every process: the CLI's
and each Ray worker's, which inherit the environment. In each, the prune stage's cell function is wrapped so
that the named cell raises `InjectedFault` before it does any work; every other cell runs as usual. Without
the variable this file does nothing. The code fingerprints (cache keys) never see it: it is no project module.
"""

from __future__ import annotations

import os

FAULT_VARIABLE = "SPARSEPIPE_TEST_FAULT"


class InjectedFault(RuntimeError):
    """The error a test injected."""


def _inject(cell: str) -> None:
    from sparsepipe.workers.prune import stage

    run_cell = stage.run_prune_cell

    def run_prune_cell(ctx, params):
        if ctx.cell == cell:
            raise InjectedFault(f"fault injected into prune/{cell} by the test ({FAULT_VARIABLE})")
        return run_cell(ctx, params)

    stage.run_prune_cell = run_prune_cell


if os.environ.get(FAULT_VARIABLE):
    _inject(os.environ[FAULT_VARIABLE])
