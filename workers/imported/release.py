"""The reference release's checkpoint layout (openai/circuit_sparsity), read into our model and written from it.

A release checkpoint is a folder holding

    beeg_config.json   the release's GPTConfig as JSON (its key names, the alias n_mlp for d_mlp, and
                       leftover training keys such as pfrac or rtopk)
    final_model.pt     a torch state dict (torch.save) whose block names carry the `transformer.` prefix:
                       transformer.wte/wpe, transformer.h.{i}.ln_1/ln_2[/ln_p1/ln_p2], .attn.c_attn (q, k, v
                       stacked), .attn.c_proj, .attn.attn_imp.sink_logit, .mlp.c_fc/c_proj, transformer.ln_f,
                       lm_head, bigram_table, and the buffer final_logits_bias

Names map one to one onto ours, with no transposes. A config value we cannot reproduce exactly is refused
(`UnsupportedRelease`, naming the key), never loaded approximately; keys that only steer training are ignored.
Weights are read with `torch.load(weights_only=True)`: no arbitrary unpickling of a downloaded file.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import fsspec
import torch
from torch import Tensor

from ..nn.config import ALL_NODE_LOCATIONS, RESIDUAL_LOCATIONS, ModelConfig
from ..nn.gpt import GPT, checkpoint_state, load_state, location_width, topk_sizes
from ..stage import ConfigError

CONFIG_FILE = "beeg_config.json"
WEIGHTS_FILE = "final_model.pt"

# The release's GPTConfig defaults, for keys a config file leaves out.
RELEASE_DEFAULTS: dict[str, Any] = {
    "block_size": 1024,
    "vocab_size": 50304,
    "n_layer": 12,
    "n_head": 12,
    "d_head": None,
    "d_model": 768,
    "bias": True,
    "ln_bias": True,
    "rms_norm": False,
    "residual_activation_type": "identity",
    "activation_type": "gelu",
    "afrac": None,
    "afrac_loctypes": "attn_in,attn_out,mlp_in,mlp_out",
    "tied_unembed": True,
    "d_mlp": None,
    "enable_bigram_table": False,
    "learnable_bigram_table": False,
    "d_pos_emb": None,
    "sink": False,
}
ALIASES = {"n_mlp": "d_mlp"}
# Keys that steer training, kernels or logging only: they do not change the forward of the stored weights.
TRAINING_ONLY = {
    "tokenizer_name",
    "dropout",  # off at inference
    "grad_checkpointing",
    "flash",
    "debug_nans",
    "enable_sparse_kernels",
    "dropout_cat_pos_emb",  # dropout, which is off at inference
    "sinusoidal_cat_pos_emb",  # an initialisation; the (frozen) table is stored in wpe
    "learnable_bigram_table",
    "pfrac",
    "expansion_factor",
    "afrac_approx",
    "sparse_matmul_impl",
    "rtopk",
    "debug_exact_topk",
    "ignore_dw_grad",
    "bigram_table_rank",
}
LOCTYPES = set(ALL_NODE_LOCATIONS) | set(RESIDUAL_LOCATIONS)


class UnsupportedRelease(ConfigError):
    """A release checkpoint with a value we cannot reproduce exactly; the message names the key."""

    def __init__(self, key: str, problem: str):
        super().__init__(f"{key}: {problem}")
        self.key = key


# ----------------------------------------------------------------------------- config


def model_config(raw: dict[str, Any]) -> ModelConfig:
    """Our ModelConfig for a release config (after aliases and defaults); UnsupportedRelease if none is exact."""
    raw = dict(raw)
    for alias, name in ALIASES.items():
        if alias in raw:
            if name in raw and raw[name] != raw[alias]:
                raise UnsupportedRelease(alias, f"{raw[alias]} disagrees with {name}={raw[name]}")
            raw[name] = raw.pop(alias)
    if "n_embd" in raw:
        if raw["n_embd"] != raw.get("d_model", RELEASE_DEFAULTS["d_model"]):
            raise UnsupportedRelease("n_embd", f"{raw['n_embd']} disagrees with d_model={raw.get('d_model')}")
        raw.pop("n_embd")
    if raw.pop("use_tied_aux_matrix", False):
        raise UnsupportedRelease("use_tied_aux_matrix", "true is not supported (the release refuses it too)")
    unknown = sorted(set(raw) - set(RELEASE_DEFAULTS) - TRAINING_ONLY)
    if unknown:
        raise UnsupportedRelease(unknown[0], "unknown config key; refusing to guess what it does")
    c = {**RELEASE_DEFAULTS, **{k: v for k, v in raw.items() if k not in TRAINING_ONLY}}
    if c["residual_activation_type"] not in ("identity", "relu"):
        raise UnsupportedRelease("residual_activation_type", f"{c['residual_activation_type']!r} is not identity/relu")
    if c["activation_type"] not in ("gelu", "relu"):
        raise UnsupportedRelease("activation_type", f"{c['activation_type']!r} is not gelu/relu")
    locations = [loc for loc in str(c["afrac_loctypes"]).split(",") if loc]
    if c["afrac"] is not None:
        bad = [loc for loc in locations if loc not in LOCTYPES]
        if bad:
            raise UnsupportedRelease("afrac_loctypes", f"unknown location {bad[0]!r}; known: {sorted(LOCTYPES)}")
    d_model, n_head = c["d_model"], c["n_head"]
    if d_model % n_head:
        raise UnsupportedRelease("n_head", f"d_model={d_model} is not a multiple of n_head={n_head}")
    try:
        config = ModelConfig(
            n_layer=c["n_layer"],
            d_model=d_model,
            n_head=n_head,
            d_head=c["d_head"] or d_model // n_head,
            d_mlp=c["d_mlp"] or 4 * d_model,
            n_ctx=c["block_size"],
            vocab_size=c["vocab_size"],
            bigram_table=bool(c["enable_bigram_table"]),
            attn_sink=bool(c["sink"]),
            pos_emb="concat" if c["d_pos_emb"] is not None else "learned",
            d_pos_emb=c["d_pos_emb"],
            afrac=c["afrac"],
            afrac_locations=locations if c["afrac"] is not None else list(ALL_NODE_LOCATIONS),
            abstopk_ties="torch_topk",
            activation=c["activation_type"],
            residual_activation=c["residual_activation_type"],
            norm="rms" if c["rms_norm"] else "layer",
            norm_bias=bool(c["ln_bias"]) and not c["rms_norm"],
            norm_eps=None,  # RMSNorm: torch's default (the release passes none); LayerNorm: 1e-5, as the release
            bias=bool(c["bias"]),
            tied_embeddings=bool(c["tied_unembed"]),
            final_logits_bias=True,
        )
    except (ValueError, TypeError) as error:  # pydantic's ValidationError is a ValueError
        raise UnsupportedRelease("config", f"no sparsepipe model matches: {error}") from None
    if config.afrac is not None:  # the release keeps int(afrac * width) entries, we keep at least one
        for location, k in topk_sizes(config).items():
            if k is not None and int(config.afrac * location_width(config, location)) == 0:
                raise UnsupportedRelease("afrac", f"keeps no entry at {location} (int(afrac * width) = 0)")
    return config


def release_config(config: ModelConfig) -> dict[str, Any]:
    """The release's config for our model; UnsupportedRelease where the release has no equivalent."""
    if config.norm == "rms" and config.norm_eps is not None:
        raise UnsupportedRelease("norm_eps", "the release's RMSNorm uses torch's default epsilon; set norm_eps: null")
    if config.norm == "layer" and config.norm_eps not in (None, 1e-5):
        raise UnsupportedRelease("norm_eps", "the release's LayerNorm uses 1e-5")
    if config.d_model % config.n_head:
        raise UnsupportedRelease("n_head", "the release needs d_model to be a multiple of n_head")
    return {
        "block_size": config.n_ctx,
        "vocab_size": config.vocab_size,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "d_head": config.d_head,
        "d_model": config.d_model,
        "d_mlp": config.mlp_width,
        "dropout": 0.0,
        "bias": config.bias,
        "ln_bias": config.norm_bias,
        "rms_norm": config.norm == "rms",
        "residual_activation_type": config.residual_activation,
        "activation_type": config.activation,
        "afrac": config.afrac,
        "afrac_loctypes": ",".join(config.afrac_locations),
        "tied_unembed": config.tied_embeddings,
        "enable_bigram_table": config.bigram_table,
        "learnable_bigram_table": config.bigram_table,
        "d_pos_emb": config.d_pos_emb,
        "sink": config.attn_sink,
        "flash": True,  # the release computes sinks on its flash path only
        "grad_checkpointing": False,
    }


# ------------------------------------------------------------------------------ weights


def _ours(name: str) -> str | None:
    """Our parameter name for a release state-dict name (None: a buffer we rebuild, the causal mask)."""
    if name == "bigram_table":
        return "bigram"
    if name in ("lm_head.weight", "final_logits_bias"):
        return name
    if not name.startswith("transformer."):
        raise UnsupportedRelease(name, "not a name of the release's state dict")
    name = name.removeprefix("transformer.")
    if name.startswith("h."):
        name = "blocks." + name.removeprefix("h.")
        if name.endswith(".attn.bias"):  # the non-flash causal mask buffer
            return None
        name = name.replace(".attn.attn_imp.sink_logit", ".attn.sink")
    return name


def _theirs(name: str) -> str:
    if name == "bigram":
        return "bigram_table"
    if name in ("lm_head.weight", "final_logits_bias"):
        return name
    if name.startswith("blocks."):
        name = "h." + name.removeprefix("blocks.").replace(".attn.sink", ".attn.attn_imp.sink_logit")
    return "transformer." + name


def model_from_release(raw_config: dict[str, Any], state: dict[str, Tensor]) -> GPT:
    """Our GPT holding a release checkpoint's weights (float32), exactly its forward."""
    config = model_config(raw_config)
    ours: dict[str, Tensor] = {}
    for name, tensor in state.items():
        if not isinstance(tensor, Tensor):
            raise UnsupportedRelease(name, f"holds a {type(tensor).__name__}, not a tensor")
        mapped = _ours(name)
        if mapped is not None:
            ours[mapped] = tensor.detach().to(torch.float32)
    if config.tied_embeddings:  # stored twice by torch.save (same values); we keep wte.weight
        tied = ours.pop("lm_head.weight", None)
        if tied is not None and "wte.weight" in ours and not torch.equal(tied, ours["wte.weight"]):
            raise UnsupportedRelease("tied_unembed", "lm_head.weight differs from transformer.wte.weight")
    # Zeros add nothing: a release model without positions stores a zero table, and the logits bias is
    # zero unless set (or absent: the release's loader then uses zeros too).
    if config.pos_emb == "learned" and "wpe.weight" in ours and not ours["wpe.weight"].any():
        config = config.model_copy(update={"pos_emb": "none"})
        del ours["wpe.weight"]
    if not ours.get("final_logits_bias", torch.zeros(1)).any():
        config = config.model_copy(update={"final_logits_bias": False})
        ours.pop("final_logits_bias", None)
    model = GPT(config)
    expected = checkpoint_state(model)
    wrong = sorted(n for n in set(ours) & set(expected) if ours[n].shape != expected[n].shape)
    if wrong:
        name = wrong[0]
        raise UnsupportedRelease(
            _theirs(name), f"shape {tuple(ours[name].shape)}, but the config gives {tuple(expected[name].shape)}"
        )
    missing, unexpected = sorted(set(expected) - set(ours)), sorted(set(ours) - set(expected))
    if missing or unexpected:
        name = (missing or unexpected)[0]
        raise UnsupportedRelease(_theirs(name), "missing from the state dict" if missing else "not in this config")
    load_state(model, ours)
    return model.eval()


def release_state(model: GPT) -> dict[str, Tensor]:
    """Our model's weights under the release's names (every tensor the release's model holds)."""
    config = model.config
    state = {_theirs(n): t.detach().cpu().clone() for n, t in model.state_dict().items()}
    if config.pos_emb == "none":  # the release always adds a position table: zeros leave the forward unchanged
        state["transformer.wpe.weight"] = torch.zeros(config.n_ctx, config.d_model)
    if not config.final_logits_bias:
        state["final_logits_bias"] = torch.zeros(config.vocab_size)
    return state


# ------------------------------------------------------------------------------- files


def source_files(source: str) -> tuple[str, str]:
    """(config URL, weights URL) of a release source: a folder, or either file of one."""
    source = source.rstrip("/")
    if source.endswith(".json"):
        return source, source.rsplit("/", 1)[0] + "/" + WEIGHTS_FILE if "/" in source else WEIGHTS_FILE
    if source.endswith(".pt"):
        return source.rsplit("/", 1)[0] + "/" + CONFIG_FILE if "/" in source else CONFIG_FILE, source
    return f"{source}/{CONFIG_FILE}", f"{source}/{WEIGHTS_FILE}"


def read_bytes(url: str) -> bytes:
    """A local path or any fsspec URL (s3://...); FileNotFoundError names it."""
    try:
        with fsspec.open(url, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"{url} does not exist") from None


def read_release_config(source: str) -> dict[str, Any]:
    url, _ = source_files(source)
    return _parse_config(read_bytes(url), url)


def _parse_config(data: bytes, url: str) -> dict[str, Any]:
    try:
        raw = json.loads(data)
    except json.JSONDecodeError as error:
        raise UnsupportedRelease(CONFIG_FILE, f"{url} is not JSON: {error}") from None
    if not isinstance(raw, dict):
        raise UnsupportedRelease(CONFIG_FILE, f"{url} holds no JSON object")
    return raw


def load_state_dict(data: bytes, where: str) -> dict[str, Tensor]:
    """torch.load(weights_only=True): tensors and plain containers only, never arbitrary objects."""
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, ... for what it refuses
        raise UnsupportedRelease(WEIGHTS_FILE, f"{where} is not a weights-only torch state dict: {error}") from None
    if not isinstance(state, dict):
        raise UnsupportedRelease(WEIGHTS_FILE, f"{where} holds a {type(state).__name__}, not a state dict")
    return state


def read_release(source: str) -> tuple[GPT, dict[str, Any], dict[str, str]]:
    """(our model, the release config as read, sha256 of each file read) for a release source."""
    config_url, weights_url = source_files(source)
    config_bytes, weights = read_bytes(config_url), read_bytes(weights_url)
    digests = {CONFIG_FILE: hashlib.sha256(config_bytes).hexdigest(), WEIGHTS_FILE: hashlib.sha256(weights).hexdigest()}
    raw = _parse_config(config_bytes, config_url)
    return model_from_release(raw, load_state_dict(weights, weights_url)), raw, digests


def write_release(model: GPT, folder: str | Path) -> None:
    """Write `beeg_config.json` and `final_model.pt` in the release's layout."""
    config = release_config(model.config)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    torch.save(release_state(model), folder / WEIGHTS_FILE)
