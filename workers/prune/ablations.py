"""The written circuit under every ablation, and the accuracy behind its losses: run once per cell, after the trial.

`ablation_losses`: the circuit's test loss with the nodes outside it mean-, zero- and resample-ablated
(`resample.py`), its masks as trained under `prune.ablation` (never retrained): a circuit that holds only under the
ablation it was found with may hold by cancellation rather than by mechanism.

`circuit_accuracy` / `calibrated_accuracy`: the fraction of test prompts whose correct candidate has the larger
logit, before and after calibration. A calibrated loss of 0.000 means a scale on the logit gap (`logit_scale`)
drives the two-way loss to zero because the sign is right on every prompt: it measures accuracy, not how faithfully
the circuit reproduces the model's logits; the accuracy column says so beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..nn.masks import NodeLayout, ablation_values, kept_mask
from .config import PruneConfig
from .inputs import PruneInputs, ablation_source
from .losses import chunks, two_way_loss
from .masked import MaskedModel

ABLATIONS = ("mean", "zero", "resample")


def sign_accuracy(gaps: Tensor, correct: Tensor, scale: float = 1.0, shift: float = 0.0) -> float:
    """Fraction of prompts whose calibrated gap points to the correct candidate (a zero gap counts as wrong)."""
    z = gaps * scale + shift
    sign = correct.to(z.dtype) * 2 - 1
    return float((sign * z > 0).float().mean())


@torch.no_grad()
def ablation_report(
    inputs: PruneInputs, settings: PruneConfig, kept: dict[str, list[int]], mean_cache: Path | None
) -> tuple[dict[str, dict[str, float]], Tensor]:
    """({ablation: {"circuit_loss", "circuit_accuracy", "inverse_loss"}} on the test pairs for each of ABLATIONS
    (mean left out without a mean cache), the circuit's test gaps under `settings.ablation`)."""
    model = inputs.model
    device = next(model.parameters()).device
    layout = NodeLayout(model.config, tie_qk=settings.tie_qk_masks)
    mask = kept_mask(layout, kept).to(device)
    test = inputs.task_data.test.to(device)
    pieces = chunks(test, settings.batch_pairs)
    report: dict[str, dict[str, float]] = {}
    own_gaps = torch.zeros(0)
    for ablation in ABLATIONS:
        if ablation == "mean" and mean_cache is None and settings.ablation != "mean":
            continue
        if ablation == settings.ablation:
            values = inputs.means
        else:
            values = ablation_source(ablation, model, mean_cache, inputs.tokens, settings.resample_contexts)
        masked = MaskedModel(model, layout, ablation_values(layout, values, ablation))
        gaps, inverse = masked.gaps(pieces, mask), masked.gaps(pieces, 1 - mask)
        report[ablation] = {
            "circuit_loss": float(two_way_loss(gaps, test.correct, reduction=settings.loss_reduction)),
            "circuit_accuracy": sign_accuracy(gaps, test.correct),
            "inverse_loss": float(two_way_loss(inverse, test.correct, reduction=settings.loss_reduction)),
        }
        if ablation == settings.ablation:
            own_gaps = gaps
    return report, own_gaps


def add_ablation_report(inputs: PruneInputs, settings: PruneConfig, result: Any, mean_cache: Path | None) -> None:
    """Fill in `result.ablation_losses`, `circuit_accuracy` and `calibrated_accuracy` (a `trial.TrialResult`)."""
    report, gaps = ablation_report(inputs, settings, result.kept, mean_cache)
    correct = inputs.task_data.test.correct.to(gaps.device)
    result.ablation_losses = {"trained_under": settings.ablation, **report}
    result.circuit_accuracy = report[settings.ablation]["circuit_accuracy"]
    result.calibrated_accuracy = sign_accuracy(gaps, correct, result.logit_scale, result.logit_bias)
