"""The model shapes of each preset, as data (as torchtitan keeps its model flavours).

Every stage that trains a model of a preset's size (pretrain, dense, bridges) starts from these;
`ModelConfig` fills in the rest (vocabulary, sparsity-related fields).
"""

from __future__ import annotations

from typing import Any

MODEL_FLAVOURS: dict[str, dict[str, Any]] = {
    "smoke": {"n_layer": 1, "d_model": 32, "n_head": 2, "d_head": 8, "n_ctx": 128},
    "tiny": {"n_layer": 2, "d_model": 128, "n_head": 8, "d_head": 16, "n_ctx": 64},
    "small": {"n_layer": 4, "d_model": 512, "n_head": 32, "d_head": 16, "n_ctx": 256},
    "paper": {"n_layer": 8, "d_model": 2048, "n_head": 128, "d_head": 16, "n_ctx": 256},
}
