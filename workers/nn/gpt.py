"""The weight-sparse GPT: one forward for training, bridges, pruning and reports.

GPT-2-style decoder (Radford et al., 2019) with the changes of the paper's
Appendix A.1 and the reference release (openai/circuit_sparsity `gpt.py`):
pre-norm RMSNorm blocks, biased Linears, untied embedding / unembedding,
exact GELU, d_head independent of d_model, an optional dense bigram logit
table, optional attention sinks, no positional embeddings by default, and
AbsTopK activation sparsity at the configured node locations.

Weight sparsity is not represented here: weights are dense tensors holding
zeros, kept sparse by `sparsity.WeightSparsifier` during training.

Hook points (reference names; every one is captured after its top-k):

    L.resid_in                                  [B, T, d_model]
    L.attn.act_in                               [B, T, d_model]
    L.attn.q / L.attn.k / L.attn.v              [B, T, n_head * d_head]
    L.attn.resid_delta                          [B, T, d_model]
    L.resid_mid                                 [B, T, d_model]
    L.mlp.act_in                                [B, T, d_model]
    L.mlp.post_act                              [B, T, d_mlp]
    L.mlp.resid_delta                           [B, T, d_model]
    final_resid (before the final norm)         [B, T, d_model]

Each is a `HookPoint`, an identity module named by its reference name
(`model.hook_points["0.attn.q"]`; module path `blocks.0.attn.hook_q`), so a
plain `register_forward_hook` or any module-hooking tool reaches it.
`model(tokens, record=..., interventions=...)` records and/or replaces the
activation at any of them for that call only (the hooks are removed when the
forward ends, also on error); an intervention's output is what the rest of the
forward sees, and what gets recorded.

`residual_boundaries` names the residual stream at every sublayer boundary and
`forward_from` runs the model from any of them to the logits (bridges use both).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Callable, Literal, NamedTuple

import torch
import torch.nn.functional as F
from pydantic import ValidationError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from ...kernels import abstopk, abstopk_torch_topk
from .config import ALL_NODE_LOCATIONS, NODE_LOCATIONS, RESIDUAL_LOCATIONS, ModelConfig

# Config location name -> hook name within a layer (defined once, in nn/config.py).
LOCATION_HOOKS: dict[str, str] = NODE_LOCATIONS
HOOK_LOCATIONS: dict[str, str] = {hook: location for location, hook in LOCATION_HOOKS.items()}
FINAL_RESID = "final_resid"

Intervention = Callable[[Tensor], Tensor]
RecordSpec = set[str] | frozenset[str] | list[str] | tuple[str, ...] | str | re.Pattern | None


def location_width(config: ModelConfig, location: str) -> int:
    if location in ("attn_q", "attn_k", "attn_v"):
        return config.n_head * config.d_head
    if location == "mlp_neuron":
        return config.mlp_width
    if location in ("attn_in", "mlp_in"):
        return config.d_in  # with concatenated positions, their channels follow the residual ones
    return config.d_model


def hook_name(layer: int, location: str) -> str:
    """`hook_name(3, "mlp_neuron") == "3.mlp.post_act"`."""
    return f"{layer}.{LOCATION_HOOKS[location]}"


def parse_hook_name(name: str) -> tuple[int, str]:
    """The inverse of `hook_name`: (layer, config location name)."""
    layer, _, suffix = name.partition(".")
    if not layer.isdigit() or suffix not in HOOK_LOCATIONS:
        raise ValueError(f"{name!r} is not a node-location hook; those look like '0.attn.q' or '1.mlp.post_act'")
    return int(layer), HOOK_LOCATIONS[suffix]


def node_locations(config: ModelConfig) -> list[tuple[str, int]]:
    """Every node location as (hook name, width), in forward order: what pruning masks."""
    return [
        (hook_name(layer, loc), location_width(config, loc))
        for layer in range(config.n_layer)
        for loc in ALL_NODE_LOCATIONS
    ]


def hook_names(config: ModelConfig) -> list[str]:
    """All hook points, node locations and residual stream, in forward order."""
    names = []
    for layer in range(config.n_layer):
        locations = [hook_name(layer, loc) for loc in ALL_NODE_LOCATIONS]
        names += [f"{layer}.resid_in", *locations[:5], f"{layer}.resid_mid", *locations[5:]]
    return names + [FINAL_RESID]


def residual_boundaries(config: ModelConfig) -> list[str]:
    """The residual stream at every sublayer boundary, in forward order: before each attention
    block (`L.resid_in`), before each MLP block (`L.resid_mid`), and `final_resid`; 2 * n_layer + 1
    names. Boundary i is the input of sublayer i (even i: attention of layer i // 2, odd: its MLP)."""
    return [f"{layer}.{half}" for layer in range(config.n_layer) for half in ("resid_in", "resid_mid")] + [FINAL_RESID]


def topk_sizes(config: ModelConfig) -> dict[str, int | None]:
    """k of AbsTopK at each config location (node and residual locations); None where it is left dense."""
    sizes: dict[str, int | None] = {}
    for location in ALL_NODE_LOCATIONS + RESIDUAL_LOCATIONS:
        width = location_width(config, location)
        active = config.afrac is not None and location in config.afrac_locations
        k = max(1, int(config.afrac * width)) if active else width
        sizes[location] = k if k < width else None
    return sizes


class HookPoint(nn.Module):
    """An identity module that marks one activation (the TransformerLens pattern).

    `name` is the reference name ("0.attn.q"). Anything that hooks modules sees it: a plain
    `model.hook_points["0.attn.q"].register_forward_hook(fn)` records or replaces the activation on
    every call until removed; `GPT.forward(record=..., interventions=...)` hooks for one call only.
    """

    def __init__(self, name: str):
        super().__init__()
        self.name = name

    def forward(self, x: Tensor) -> Tensor:
        return x

    def extra_repr(self) -> str:
        return repr(self.name)


class CallHooks:
    """Records and replaces activations during one forward pass: forward hooks on the hook points,
    registered on entry and always removed on exit, so nothing leaks into the next call."""

    def __init__(self, points: dict[str, HookPoint], record: RecordSpec, interventions: dict[str, Intervention] | None):
        names = list(points)
        known = set(names)
        self.points = points
        self.interventions = dict(interventions or {})
        unknown = sorted(set(self.interventions) - known)
        if unknown:
            raise KeyError(f"no hook point named {unknown}; hook points look like {names[:3]} ... {names[-1]!r}")
        if record is None:
            self.record: frozenset[str] = frozenset()
        elif isinstance(record, (str, re.Pattern)):
            pattern = re.compile(record)
            self.record = frozenset(n for n in names if pattern.fullmatch(n))
        else:
            self.record = frozenset(record)
            unknown = sorted(self.record - known)
            if unknown:
                raise KeyError(f"cannot record {unknown}: no such hook point")
        self.recorded: dict[str, Tensor] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def _hook(self, name: str) -> Callable[[nn.Module, tuple, Tensor], Tensor]:
        intervention = self.interventions.get(name)
        keep = name in self.record

        def hook(module: nn.Module, inputs: tuple, x: Tensor) -> Tensor:
            if intervention is not None:
                x = intervention(x)
            if keep:
                self.recorded[name] = x
            return x

        return hook

    def __enter__(self) -> "CallHooks":
        for name in self.points:  # forward order, so `recorded` is in forward order
            if name in self.interventions or name in self.record:
                self._handles.append(self.points[name].register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


class Attention(nn.Module):
    def __init__(self, config: ModelConfig, layer: int, topk: dict[str, int | None]):
        super().__init__()
        self.n_head, self.d_head = config.n_head, config.d_head
        inner = config.n_head * config.d_head
        self.c_attn = nn.Linear(config.d_in, 3 * inner, bias=config.bias)  # q, k, v in that order
        self.c_proj = nn.Linear(inner, config.d_model, bias=config.bias)
        self.topk = topk
        self.ties = config.abstopk_ties
        self.hook_act_in = HookPoint(hook_name(layer, "attn_in"))  # [B, T, d_model]; applied by Block
        self.hook_q, self.hook_k, self.hook_v = (
            HookPoint(hook_name(layer, loc)) for loc in ("attn_q", "attn_k", "attn_v")
        )  # [B, T, nh * dh]
        self.hook_resid_delta = HookPoint(hook_name(layer, "attn_out"))  # [B, T, d_model]
        # Attention sink (Xiao et al., 2023): a per-head logit for an always-visible zero key/value slot,
        # i.e. exp(sink) is added to the softmax denominator.
        self.sink = nn.Parameter(torch.zeros(config.n_head)) if config.attn_sink else None
        if self.sink is not None:
            causal = torch.full((config.n_ctx, config.n_ctx), float("-inf")).triu(1)
            self.register_buffer("causal_bias", causal, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        B, T, _ = x.shape
        q, k, v = self.c_attn(x).chunk(3, dim=-1)
        # AbsTopK runs over the concatenation of all heads, as in the reference.
        q, k, v = (
            point(_sparsify(t, self.topk[loc], self.ties))
            for t, loc, point in ((q, "attn_q", self.hook_q), (k, "attn_k", self.hook_k), (v, "attn_v", self.hook_v))
        )
        q, k, v = (t.view(B, T, self.n_head, self.d_head).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, dh)
        if self.sink is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            empty = q.new_zeros(B, self.n_head, 1, self.d_head)
            k, v = torch.cat([empty, k], dim=2), torch.cat([empty, v], dim=2)  # (B, nh, 1 + T, dh)
            sink = self.sink.to(q.dtype).view(self.n_head, 1, 1).expand(self.n_head, T, 1)
            bias = torch.cat([sink, self.causal_bias[:T, :T].to(q.dtype).expand(self.n_head, T, T)], dim=-1)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        y = y.transpose(1, 2).reshape(B, T, self.n_head * self.d_head)
        return self.hook_resid_delta(_sparsify(self.c_proj(y), self.topk["attn_out"], self.ties))


class MLP(nn.Module):
    def __init__(self, config: ModelConfig, layer: int, topk: dict[str, int | None]):
        super().__init__()
        self.c_fc = nn.Linear(config.d_in, config.mlp_width, bias=config.bias)
        self.c_proj = nn.Linear(config.mlp_width, config.d_model, bias=config.bias)
        self.act = nn.GELU() if config.activation == "gelu" else nn.ReLU()  # exact (erf) GELU
        self.topk = topk
        self.ties = config.abstopk_ties
        self.hook_act_in = HookPoint(hook_name(layer, "mlp_in"))  # [B, T, d_model]; applied by Block
        self.hook_post_act = HookPoint(hook_name(layer, "mlp_neuron"))  # [B, T, d_mlp]
        self.hook_resid_delta = HookPoint(hook_name(layer, "mlp_out"))  # [B, T, d_model]

    def forward(self, x: Tensor) -> Tensor:
        h = self.hook_post_act(_sparsify(self.act(self.c_fc(x)), self.topk["mlp_neuron"], self.ties))
        return self.hook_resid_delta(_sparsify(self.c_proj(h), self.topk["mlp_out"], self.ties))


def make_norm(config: ModelConfig, width: int) -> nn.Module:
    """RMSNorm (eps None: the dtype's machine epsilon), or LayerNorm (eps None: 1e-5), learned weight."""
    if config.norm == "layer":
        eps = 1e-5 if config.norm_eps is None else config.norm_eps
        return nn.LayerNorm(width, eps=eps, bias=config.norm_bias)
    return nn.RMSNorm(width, eps=config.norm_eps)


class Block(nn.Module):
    def __init__(self, config: ModelConfig, layer: int, topk: dict[str, int | None]):
        super().__init__()
        self.ln_1 = make_norm(config, config.d_model)
        self.attn = Attention(config, layer, topk)
        self.ln_2 = make_norm(config, config.d_model)
        self.mlp = MLP(config, layer, topk)
        # Concatenated positions get their own norm before each sublayer.
        self.ln_p1 = make_norm(config, config.d_pos_emb) if config.d_pos_emb else None
        self.ln_p2 = make_norm(config, config.d_pos_emb) if config.d_pos_emb else None
        self.topk = topk
        self.ties = config.abstopk_ties
        self.residual_relu = config.residual_activation == "relu"
        self.hook_resid_in = HookPoint(f"{layer}.resid_in")  # [B, T, d_model]
        self.hook_resid_mid = HookPoint(f"{layer}.resid_mid")  # [B, T, d_model]

    def forward(self, x: Tensor, positions: Tensor | None = None) -> Tensor:
        return self.mlp_sublayer(self.attn_sublayer(x, positions), positions)

    def attn_sublayer(self, x: Tensor, positions: Tensor | None = None) -> Tensor:
        """resid_in -> resid_mid: the attention half of the block. `positions` [T, d_pos_emb]: pos_emb=concat."""
        x = self.hook_resid_in(x)
        read = self._read(self.ln_1(x), self.ln_p1, positions)
        return self._residual(
            x + self.attn(self.attn.hook_act_in(_sparsify(read, self.topk["attn_in"], self.ties))), "resid_post_attn"
        )

    def mlp_sublayer(self, x: Tensor, positions: Tensor | None = None) -> Tensor:
        """resid_mid -> the next block's resid_in: the MLP half of the block."""
        x = self.hook_resid_mid(x)
        read = self._read(self.ln_2(x), self.ln_p2, positions)
        return self._residual(
            x + self.mlp(self.mlp.hook_act_in(_sparsify(read, self.topk["mlp_in"], self.ties))), "resid_post_mlp"
        )

    @staticmethod
    def _read(normed: Tensor, position_norm: nn.Module | None, positions: Tensor | None) -> Tensor:
        if position_norm is None:
            return normed
        if positions is None:
            raise ValueError("this model concatenates positions to every read (pos_emb=concat): pass positions")
        p = position_norm(positions).to(normed.dtype).expand(*normed.shape[:-1], -1)
        return torch.cat([normed, p], dim=-1)

    def _residual(self, x: Tensor, location: str) -> Tensor:
        if self.residual_relu:
            x = torch.relu(x)
        return _sparsify(x, self.topk[location], self.ties)


def _sparsify(x: Tensor, k: int | None, ties: str = "lowest_index") -> Tensor:
    if k is None:
        return x
    return abstopk(x, k) if ties == "lowest_index" else abstopk_torch_topk(x, k)


class ParamRole(NamedTuple):
    """How weight sparsity treats a parameter.

    kind: "matrix" (block weights, scheduled to target_l0), "embed" (token/position embedding
    and unembedding), "bias", or "dense" (never sparsified: norms, sinks, the bigram table).
    neuron_dim: for matrices, the axis whose entries are neurons / attention channels
    (0: each row is one, 1: each column is one); the min-alive rule protects along it.
    """

    kind: Literal["matrix", "embed", "bias", "dense"]
    neuron_dim: int | None = None


class GPT(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.vocab_size is None:
            raise ValueError("ModelConfig.vocab_size is None: set it from the tokenizer before building the model")
        self.config = config
        self.topk = topk_sizes(config)
        self.wte = nn.Embedding(config.vocab_size, config.d_model)
        pos_width = {"none": None, "learned": config.d_model, "concat": config.d_pos_emb}[config.pos_emb]
        self.wpe = nn.Embedding(config.n_ctx, pos_width) if pos_width else None
        self.blocks = nn.ModuleList(Block(config, layer, self.topk) for layer in range(config.n_layer))
        self.ln_f = make_norm(config, config.d_model)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tied_embeddings:
            self.lm_head.weight = self.wte.weight
        # Dense vocab x vocab table: row `bigram[token_t]` is added to the logits at position t (Appendix A.1).
        self.bigram = nn.Parameter(torch.zeros(config.vocab_size, config.vocab_size)) if config.bigram_table else None
        if config.final_logits_bias:  # fixed (a buffer, not trained), as in the reference release
            self.register_buffer("final_logits_bias", torch.zeros(config.vocab_size))
        else:
            self.final_logits_bias = None
        self.hook_final_resid = HookPoint(FINAL_RESID)  # [B, T, d_model], before the final norm
        self._init_weights()
        # Built once (TransformerLens's setup()): reference name -> hook point, in forward order.
        self.hook_names = hook_names(config)
        points = {m.name: m for m in self.modules() if isinstance(m, HookPoint)}
        assert set(points) == set(self.hook_names), (
            f"hook points {sorted(set(points) ^ set(self.hook_names))} do not match hook_names"
        )
        self.hook_points: dict[str, HookPoint] = {name: points[name] for name in self.hook_names}

    def _init_weights(self) -> None:
        std = self.config.init_std
        for name, p in self.named_parameters():
            if name.endswith("bias") or name.endswith("sink") or name == "bigram":
                nn.init.zeros_(p)
            elif name.startswith("ln") or ".ln_" in name:
                nn.init.ones_(p)
            elif name.endswith("c_proj.weight"):  # scaled residual-branch init (GPT-2)
                nn.init.normal_(p, std=std / math.sqrt(2 * self.config.n_layer))
            else:
                nn.init.normal_(p, std=std)

    def forward(
        self,
        tokens: Tensor,
        record: RecordSpec = None,
        interventions: dict[str, Intervention] | None = None,
        positions: Tensor | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """tokens [B, T] -> (logits [B, T, vocab], recorded activations by hook name).

        `record`: a set of hook names, or a regex matched against the whole name.
        `interventions[name](x)` replaces the activation at `name`.
        `positions` [B]: unembed only there and return logits [B, vocab]; tasks read one
        position per row, and the unembedding is most of a small model's forward.
        """
        with CallHooks(self.hook_points, record, interventions) as hooks:
            x = self.embed(tokens)
            positions_read = self.concatenated_positions(tokens.shape[1])
            for block in self.blocks:
                x = block(x, positions_read)
            x = self.hook_final_resid(x)
        if positions is not None:
            rows = torch.arange(tokens.shape[0], device=tokens.device)
            x, tokens = x[rows, positions], tokens[rows, positions]
        return self.unembed(x, tokens), hooks.recorded

    def forward_from(
        self,
        x: Tensor,
        boundary: int,
        tokens: Tensor,
        interventions: dict[str, Intervention] | None = None,
    ) -> Tensor:
        """Logits [B, T, vocab] from the residual stream `x` at sublayer boundary `boundary`
        (an index into `residual_boundaries`): runs sublayers boundary.. to the end, then unembeds.
        `tokens` [B, T] feed the bigram table. The hook point of boundary `boundary` itself sees `x`;
        `interventions` as in `forward`, for this call only."""
        n_boundaries = 2 * self.config.n_layer + 1
        if not 0 <= boundary < n_boundaries:
            raise IndexError(
                f"boundary {boundary} out of range: this model has {n_boundaries} (0 .. {n_boundaries - 1})"
            )
        positions = self.concatenated_positions(x.shape[1])
        with CallHooks(self.hook_points, None, interventions):
            for sublayer in range(boundary, n_boundaries - 1):
                block = self.blocks[sublayer // 2]
                x = block.attn_sublayer(x, positions) if sublayer % 2 == 0 else block.mlp_sublayer(x, positions)
            x = self.hook_final_resid(x)
        return self.unembed(x, tokens)

    def embed(self, tokens: Tensor) -> Tensor:
        """tokens [B, T] -> the residual stream entering layer 0 [B, T, d_model]."""
        T = tokens.shape[1]
        assert T <= self.config.n_ctx, f"sequence of {T} tokens is longer than n_ctx={self.config.n_ctx}"
        x = self.wte(tokens)
        if self.wpe is not None and self.config.pos_emb == "learned":
            x = x + self.wpe(torch.arange(T, device=tokens.device))
        return x

    def concatenated_positions(self, T: int) -> Tensor | None:
        """[T, d_pos_emb]: the position table every block concatenates to its reads (pos_emb=concat), else None."""
        return self.wpe.weight[:T] if self.config.pos_emb == "concat" else None

    def unembed(self, final_resid: Tensor, tokens: Tensor) -> Tensor:
        """The final residual stream [B, T, d_model] (and the tokens, for the bigram table) -> logits."""
        logits = self.lm_head(self.ln_f(final_resid))
        if self.final_logits_bias is not None:
            logits = logits + self.final_logits_bias.to(logits.dtype)
        if self.bigram is not None:
            logits = logits + self.bigram[tokens].to(logits.dtype)
        return logits

    def parameter_roles(self) -> dict[str, ParamRole]:
        roles = {}
        for name, p in self.named_parameters():
            if name in ("wte.weight", "wpe.weight", "lm_head.weight"):
                roles[name] = ParamRole("embed")
            elif name.endswith(("c_attn.weight", "c_fc.weight")):
                roles[name] = ParamRole("matrix", neuron_dim=0)  # rows are q/k/v channels / neurons
            elif name.endswith("c_proj.weight"):
                roles[name] = ParamRole("matrix", neuron_dim=1)  # columns are v channels / neurons
            elif name.endswith(".bias") and not (name.startswith("ln_") or ".ln_" in name):
                roles[name] = ParamRole("bias")
            else:
                roles[name] = ParamRole("dense")
        return roles


# ---------------------------------------------------------------------------- checkpoints

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


class CheckpointError(ValueError):
    """A checkpoint folder that does not match the model its config describes."""


def save_checkpoint(model: GPT, folder: str | Path) -> None:
    """Write `model.safetensors` and `config.json` (the full ModelConfig) into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {name: t.detach().cpu().contiguous() for name, t in checkpoint_state(model).items()}
    save_file(state, str(folder / WEIGHTS_FILE))
    (folder / CONFIG_FILE).write_text(model.config.model_dump_json(indent=2))


def load_checkpoint(folder: str | Path, device: str | torch.device = "cpu") -> GPT:
    """Rebuild the model from `config.json` and load `model.safetensors` strictly."""
    folder = Path(folder)
    for file in (CONFIG_FILE, WEIGHTS_FILE):
        if not (folder / file).exists():
            raise CheckpointError(f"{folder} has no {file}: not a model checkpoint")
    try:
        config = ModelConfig.model_validate(json.loads((folder / CONFIG_FILE).read_text()))
    except ValidationError as error:
        raise CheckpointError(f"{folder / CONFIG_FILE} is not a valid ModelConfig:\n{error}") from None
    model = GPT(config)
    state = load_file(str(folder / WEIGHTS_FILE))
    expected = checkpoint_state(model)
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong_shape = sorted(n for n in set(state) & set(expected) if state[n].shape != expected[n].shape)
    if missing or unexpected or wrong_shape:
        raise CheckpointError(
            f"{folder / WEIGHTS_FILE} does not match its config.json: missing {missing}, unexpected {unexpected}, "
            f"wrong shape {[(n, tuple(state[n].shape), tuple(expected[n].shape)) for n in wrong_shape]}"
        )
    load_state(model, state)
    return model.to(device)


TIED_ALIAS = "lm_head.weight"  # with tied_embeddings, the same tensor as wte.weight: stored once


def checkpoint_state(model: GPT) -> dict[str, Tensor]:
    """The model's state dict as stored: every tensor once (a tied unembedding is wte.weight)."""
    state = model.state_dict()
    if model.config.tied_embeddings:
        del state[TIED_ALIAS]
    return state


def load_state(model: GPT, state: dict[str, Tensor]) -> None:
    """Load `state` (as `checkpoint_state` names it) strictly: every tensor, nothing else."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    if model.config.tied_embeddings and TIED_ALIAS in missing:
        missing.remove(TIED_ALIAS)
    if missing or unexpected:
        raise CheckpointError(f"state does not match the model: missing {missing}, unexpected {unexpected}")
