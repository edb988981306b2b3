"""Bridges between a frozen dense model and a weight-sparse one, and the loss that trains them (paper §2.3, A.3).

Locations: the residual stream at every sublayer boundary of both models, i.e.
before each attention block, before each MLP block, and the final residual
(`nn.gpt.residual_boundaries`: 2 * n_layer + 1 of them, the models must have the
same n_layer). Location i has an encoder f_i (linear, then AbsTopK; dense ->
sparse) and a decoder g_i (linear; sparse -> dense).

Loss (A.3), with h^d, h^s the residuals of the dense and sparse models and y^d
the dense logits:

    coef_ce     * CE(sparse model)
  + coef_nmse   * sum_i NMSE(f_i(h^d_i), h^s_i) + NMSE(g_i(h^s_i), h^d_i)
  + coef_kl_d2s * sum_i KL(y^d || sparse model from boundary i on f_i(h^d_i))
  + coef_kl_s2d * sum_i KL(y^d || dense model from boundary i on g_i(h^s_i))

The dense model is frozen (no parameter of it requires grad and its own pass
runs under no_grad); gradients of the s->d terms flow through it into the
decoders and the sparse model. NMSE normalises by the target's variance over
tokens, detached (a model cannot lower it by inflating its own residual); on
data-parallel ranks the variance over the whole global batch (`RankSpread`), and
with `train.microbatches` > 1 over the whole step batch, not one microbatch's
(`BridgeObjective.begin_step`: one no-grad pass of both models over the step's
microbatches before the first backward).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from ...kernels import abstopk
from ..nn.config import ModelConfig
from ..nn.gpt import GPT, residual_boundaries
from ..nn.training import next_token_loss
from ..train.loop import evaluate
from .config import BridgesConfig

BRIDGES_FILE = "bridges.safetensors"
BRIDGES_CONFIG_FILE = "bridges.json"
DIRECTIONS = ("d2s", "s2d")  # dense -> sparse (encoder), sparse -> dense (decoder)


def check_bridgeable(dense: ModelConfig, sparse: ModelConfig) -> None:
    """Bridges pair sublayer boundaries one to one and compare logits over one vocabulary."""
    problems = []
    for key in ("n_layer", "n_ctx", "vocab_size"):
        if getattr(dense, key) != getattr(sparse, key):
            problems.append(f"{key}: dense {getattr(dense, key)} vs bridged sparse {getattr(sparse, key)}")
    if problems:
        raise ValueError("the dense checkpoint and bridges.train.model cannot be bridged: " + "; ".join(problems))


class Bridges(nn.Module):
    """One encoder and one decoder per residual location."""

    def __init__(
        self, dense: ModelConfig, sparse: ModelConfig, encoder_afrac: float | None = None, encoder_k: int | None = None
    ):
        """The encoders' AbsTopK keeps `encoder_k` entries, or `encoder_afrac` of the sparse d_model; neither: none."""
        super().__init__()
        check_bridgeable(dense, sparse)
        self.locations = residual_boundaries(sparse)
        self.d_dense, self.d_sparse = dense.d_model, sparse.d_model
        if encoder_k is None and encoder_afrac is not None:
            encoder_k = max(1, int(encoder_afrac * sparse.d_model))
        self.encoder_k = encoder_k if encoder_k is not None and encoder_k < sparse.d_model else None  # None: no AbsTopK
        self.encoders = nn.ModuleList(nn.Linear(dense.d_model, sparse.d_model) for _ in self.locations)
        self.decoders = nn.ModuleList(nn.Linear(sparse.d_model, dense.d_model) for _ in self.locations)

    def encode(self, location: int, h_dense: Tensor) -> Tensor:
        x = self.encoders[location](h_dense)
        return abstopk(x, self.encoder_k) if self.encoder_k is not None else x

    def decode(self, location: int, h_sparse: Tensor) -> Tensor:
        return self.decoders[location](h_sparse)

    def describe(self) -> dict[str, Any]:
        return {
            "locations": self.locations,
            "d_dense": self.d_dense,
            "d_sparse": self.d_sparse,
            "encoder_k": self.encoder_k,
        }


def save_bridges(bridges: Bridges, folder: Path) -> None:
    save_file(
        {n: t.detach().cpu().contiguous() for n, t in bridges.state_dict().items()}, str(Path(folder) / BRIDGES_FILE)
    )
    (Path(folder) / BRIDGES_CONFIG_FILE).write_text(json.dumps(bridges.describe(), indent=1))


def load_bridges(folder: Path, dense: ModelConfig, sparse: ModelConfig) -> Bridges:
    described = json.loads((Path(folder) / BRIDGES_CONFIG_FILE).read_text())
    bridges = Bridges(dense, sparse, encoder_k=described["encoder_k"])
    bridges.load_state_dict(load_file(str(Path(folder) / BRIDGES_FILE)))
    return bridges


def nmse(prediction: Tensor, target: Tensor, scale: Tensor | None = None) -> Tensor:
    """|prediction - target|^2 / |target - its mean over tokens|^2, the normaliser detached.
    1.0 is what predicting the target's mean scores. `scale` replaces the normaliser (`RankSpread`)."""
    target_flat = target.float().flatten(0, -2)
    if scale is None:
        scale = (target_flat - target_flat.mean(0)).pow(2).sum()
    return (prediction.float().flatten(0, -2) - target_flat).pow(2).sum() / scale.detach().clamp_min(1e-12)


def spread_sums(targets: list[Tensor]) -> Tensor:
    """Per target: its row count, per-feature sums and sum of squares over tokens, float64, concatenated. Sums of
    these over microbatches and ranks give the whole batch's spreads (`spreads_of`)."""
    flats = [t.detach().double().flatten(0, -2) for t in targets]
    return torch.cat([torch.cat([t.new_tensor([t.shape[0]]), t.sum(0), t.pow(2).sum().reshape(1)]) for t in flats])


def spreads_of(sums: Tensor, widths: list[int]) -> list[Tensor]:
    """Each target's |target - its mean|^2 over the tokens `sums` (spread_sums, of targets `widths` wide) cover."""
    spreads, offset = [], 0
    for width in widths:
        count, features, squares = sums[offset], sums[offset + 1 : offset + 1 + width], sums[offset + 1 + width]
        offset += width + 2
        spreads.append(squares - features.pow(2).sum() / count)
    return spreads


class RankSpread:
    """NMSE normalisers of a data-parallel batch: each target's spread over the whole global batch, not over one
    rank's rows. A rank's loss is its rows' squared error over (global spread / world), so the average of the
    ranks' gradients is the gradient one process computes on the whole batch. One all-reduce per step, float64."""

    def __init__(self, world: int, all_sum: Callable[[Tensor], Tensor]):
        self.world, self.all_sum = world, all_sum

    def scales(self, targets: list[Tensor]) -> list[Tensor]:
        return self.shares(spread_sums(targets), [t.shape[-1] for t in targets])

    def shares(self, local_sums: Tensor, widths: list[int], parts: int = 1) -> list[Tensor]:
        """The global spreads of this rank's `local_sums` (spread_sums) reduced over every rank, each divided by
        world * parts: the normaliser of one of `parts` equal shares of this rank's rows."""
        return [(spread / (self.world * parts)).float() for spread in spreads_of(self.all_sum(local_sums), widths)]


ONE_PROCESS = RankSpread(1, lambda sums: sums)


@dataclass
class FixedSpread:
    """NMSE normalisers fixed before a step's microbatches (`BridgeObjective.begin_step`), whatever rows come."""

    fixed: list[Tensor]

    def scales(self, targets: list[Tensor]) -> list[Tensor]:
        return self.fixed


def kl_from_dense(dense_log_probs: Tensor, logits: Tensor) -> Tensor:
    """KL(dense || other), summed over the vocabulary, averaged over tokens."""
    log_q = F.log_softmax(logits.float(), dim=-1).flatten(0, -2)
    return F.kl_div(log_q, dense_log_probs.flatten(0, -2), log_target=True, reduction="batchmean")


@dataclass
class BridgeTerms:
    """Every loss term of one batch, per location (lists in `residual_boundaries` order)."""

    ce: Tensor
    nmse: dict[str, list[Tensor]] = field(default_factory=dict)  # direction -> per location
    kl: dict[str, list[Tensor]] = field(default_factory=dict)

    def total(self, config: BridgesConfig) -> Tensor:
        return (
            config.coef_ce * self.ce
            + config.coef_nmse * sum(sum(self.nmse[d]) for d in DIRECTIONS)
            + config.coef_kl_d2s * sum(self.kl["d2s"])
            + config.coef_kl_s2d * sum(self.kl["s2d"])
        )


class BridgeObjective:
    """The frozen dense model, the sparse model and the bridges; computes the A.3 loss."""

    def __init__(self, dense: GPT, sparse: GPT, bridges: Bridges, config: BridgesConfig):
        self.dense, self.sparse, self.bridges, self.config = dense.eval().requires_grad_(False), sparse, bridges, config
        self.names = residual_boundaries(sparse.config)
        self.rank_spread: RankSpread | None = None  # set on every rank of a data-parallel cell
        self.step_spread: FixedSpread | None = None  # the step batch's normalisers while its microbatches run

    def begin_step(self, batch: Tensor, microbatches: int) -> None:
        """Before a training step's microbatches (`Trainer.begin_step`): with more than one, fix NMSE's normalisers
        to the whole step batch's (every rank's rows on data-parallel ranks), each divided by the number of
        microbatches, so that the microbatches' losses, each divided by that number by the trainer, sum to the
        whole batch's. It takes one no-grad forward of both models, a microbatch at a time. With one, the batch
        normalises itself in `terms` (over the ranks' rows by `rank_spread`), as before."""
        self.step_spread = None
        if microbatches == 1:
            return
        sums: Tensor | None = None
        with torch.no_grad():
            for chunk in batch.chunk(microbatches):
                targets = self.residuals(chunk[:, :-1])
                sums = spread_sums(targets) if sums is None else sums + spread_sums(targets)
        widths = [t.shape[-1] for t in targets]
        self.step_spread = FixedSpread((self.rank_spread or ONE_PROCESS).shares(sums, widths, microbatches))

    def residuals(self, inputs: Tensor) -> list[Tensor]:
        """NMSE's targets on `inputs`: the sparse model's residual at every location, then the dense model's."""
        sparse, dense = self.sparse(inputs, record=self.names)[1], self.dense(inputs, record=self.names)[1]
        return [sparse[n] for n in self.names] + [dense[n] for n in self.names]

    def terms(self, batch: Tensor, spread: RankSpread | FixedSpread | None = None) -> BridgeTerms:
        """Every term of `batch`; `spread` (training on data-parallel ranks, or in microbatches) gives the NMSE
        normalisers of the whole step batch. Validation, on rank 0 alone, normalises by its own batch."""
        inputs, targets = batch[:, :-1], batch[:, 1:]
        with torch.no_grad():
            dense_logits, recorded = self.dense(inputs, record=self.names)
            h_dense = [recorded[n] for n in self.names]
            dense_log_probs = F.log_softmax(dense_logits.float(), dim=-1)
        sparse_logits, recorded = self.sparse(inputs, record=self.names)
        h_sparse = [recorded[n] for n in self.names]
        terms = BridgeTerms(
            ce=next_token_loss(sparse_logits, targets), nmse={d: [] for d in DIRECTIONS}, kl={d: [] for d in DIRECTIONS}
        )
        n = len(self.names)
        scales = spread.scales(h_sparse + h_dense) if spread is not None else [None] * (2 * n)
        for i in range(n):
            encoded, decoded = self.bridges.encode(i, h_dense[i]), self.bridges.decode(i, h_sparse[i])
            sparse_target = h_sparse[i].detach() if self.config.nmse_d2s_target == "detached" else h_sparse[i]
            terms.nmse["d2s"].append(nmse(encoded, sparse_target, scales[i]))
            terms.nmse["s2d"].append(nmse(decoded, h_dense[i], scales[n + i]))
            terms.kl["d2s"].append(kl_from_dense(dense_log_probs, self.sparse.forward_from(encoded, i, inputs)))
            terms.kl["s2d"].append(kl_from_dense(dense_log_probs, self.dense.forward_from(decoded, i, inputs)))
        return terms

    def loss(self, batch: Tensor) -> Tensor:
        """The training loss of `batch` (for `Trainer.train_step(batch, loss_fn)`)."""
        return self.terms(batch, self.step_spread or self.rank_spread).total(self.config)


def summarize(terms: BridgeTerms, names: list[str]) -> dict[str, Any]:
    """{nmse,kl}_{d2s,s2d}_sum: the sum over locations; {nmse,kl}_{d2s,s2d}: location -> value."""
    out: dict[str, Any] = {}
    for kind, table in (("nmse", terms.nmse), ("kl", terms.kl)):
        for direction in DIRECTIONS:
            values = [float(v.detach()) for v in table[direction]]
            out[f"{kind}_{direction}_sum"] = sum(values)
            out[f"{kind}_{direction}"] = dict(zip(names, values))
    return out


@dataclass
class BridgeEval:
    """Validation of a bridges run: `loss` is the sparse model's CE (what pretrain's history calls val_loss)."""

    loss: float
    dead_neurons: int
    dense_loss: float
    terms: dict[str, Any]  # summarize(): sums and per-location values of NMSE and KL, both directions

    def history_fields(self) -> dict[str, Any]:
        return {"dense_val_loss": self.dense_loss, **self.terms}


@torch.no_grad()
def evaluate_bridges(objective: BridgeObjective, batches: Iterable[Tensor]) -> BridgeEval:
    batches = list(batches)
    sparse_eval = evaluate(objective.sparse, batches)
    dense_eval = evaluate(objective.dense, batches)
    objective.bridges.eval()
    sums: dict[str, Any] | None = None
    for batch in batches:
        row = summarize(objective.terms(batch), objective.names)
        if sums is None:
            sums = row
        else:
            for key, value in row.items():
                sums[key] = (
                    {n: sums[key][n] + v for n, v in value.items()} if isinstance(value, dict) else sums[key] + value
                )
    objective.bridges.train()
    assert sums is not None
    means = {
        k: ({n: x / len(batches) for n, x in v.items()} if isinstance(v, dict) else v / len(batches))
        for k, v in sums.items()
    }
    return BridgeEval(
        loss=sparse_eval.loss, dead_neurons=sparse_eval.dead_neurons, dense_loss=dense_eval.loss, terms=means
    )
