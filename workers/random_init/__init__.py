"""The random_init stage: a never-trained twin of every pruned pretrain and dense checkpoint (a control).

`random_init/<checkpoint>` (e.g. "random_init/pretrain/tiny") has the trained model's architecture, is initialised
with its training seed and carries its final weight L0 (weight top-k at the trained model's final fractions), but
sees no data. Pruned with the same settings and CARBS budget as its twin, it says how small a circuit pruning finds
where training put nothing to find (DESIGN.md, "Controls"). Cell names: `prune/controls.py`.
"""

STAGE_NAME = "random_init"
