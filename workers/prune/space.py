"""The pruning search space CARBS tunes (paper Appendix A.5, Table 2), defined once.

The centres are `PruneHyperparams`' defaults (the Table 2 values, or a config's `prune.hyper`); this
module adds how CARBS moves each one. Table 2 gives only the centres. Scales follow the upstream README's
convention (learning rates at scale 0.5, i.e. ~0.15 decades per search step; other log-scaled knobs at
scale 1, ~0.3 decades). Bounds are wide guard rails, not a search box: they only reject nonsense values.
  k_coef           weight of the mask-size term vs task loss; may need to move several decades
  init_noise_scale std of the mask init; masks are clamped to [-1, 1], so > 1 is pointless
  init_noise_bias  mean of the mask init, in the clamp range [-1, 1]; the Heaviside threshold is 0
  lr, wd           AdamW on mask logits in [-1, 1]
  inv_beta2        1 - Adam beta2; Logit keeps it in (0, 1) and resolves both 1e-3 and 0.3
  lr_warmup_frac   fraction of steps spent warming up; Logit keeps it in (0, 1)
  heaviside_temp   temperature of the sigmoid surrogate gradient of the Heaviside step
"""

from __future__ import annotations

from ..carbs.space import LinearSpace, LogitSpace, LogSpace, Param, RealSpace
from .config import PruneHyperparams

PRUNING_SPACES: dict[str, RealSpace] = {
    "k_coef": LogSpace(scale=1.0, min=1e-8, max=1.0),
    "init_noise_scale": LogSpace(scale=1.0, min=1e-4, max=1.0),
    "init_noise_bias": LinearSpace(scale=0.5, min=-1.0, max=1.0),
    "wd": LogSpace(scale=1.0, min=1e-7, max=1.0),
    "lr": LogSpace(scale=0.5, min=1e-5, max=0.3),
    "inv_beta2": LogitSpace(scale=1.0, min=1e-4, max=0.5),
    "lr_warmup_frac": LogitSpace(scale=1.0, min=1e-3, max=0.5),
    "heaviside_temp": LogSpace(scale=1.0, min=1e-2, max=1e2),
}


def pruning_search_space(centers: dict[str, float] | None = None) -> list[Param]:
    """The eight pruning hyperparameters, centred on Table 2 (`PruneHyperparams`); `centers` overrides by name."""
    centers = dict(centers or {})
    unknown = sorted(set(centers) - set(PRUNING_SPACES))
    if unknown:
        raise ValueError(f"unknown pruning hyperparameters {unknown}; known: {sorted(PRUNING_SPACES)}")
    table_2 = PruneHyperparams().model_dump()
    return [Param(name, space, centers.get(name, table_2[name])) for name, space in PRUNING_SPACES.items()]
