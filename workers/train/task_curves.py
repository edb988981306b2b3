"""Task losses of the training checkpoints a running (or finished) pipeline keeps: a learning curve for free.

    python -m sparsepipe.workers.train.task_curves ./artifacts [--tasks a,b,c] [--pairs 64]

Every pretrain/dense cell keeps its latest training state in its progress area
(`train_state.pt`, every `checkpoint_every` steps) and, once done, the final
model.  This loads each, scores it on the tasks' test pairs and prints one JSON
line per checkpoint (stage, step, load average, loss per task).  Call it every
few minutes during training to see whether the models are learning the tasks,
without training anything twice.  Local stores only.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import time

import torch
from tokenizers import Tokenizer

from ...tasks.evaluation import evaluate_model
from ..nn.config import TrainConfig
from ..nn.gpt import GPT, load_checkpoint

READ_TASKS = "single_double_quote,bracket_counting,set_or_string_fixedvarname"


def _describe(train: TrainConfig) -> str:
    """What tells the cells of one sweep apart: width, depth, lr, L0, activation fraction."""
    l0 = f" l0={train.sparsity.target_l0:g}" if train.sparsity.enabled else ""
    return f"{train.model.n_layer}x{train.model.d_model} lr={train.optim.lr:g}{l0} afrac={train.model.afrac}"


def _models(store: str, tokenizer: Tokenizer):
    for stage in ("pretrain", "dense"):
        for path in sorted(glob.glob(f"{store}/{stage}/*/progress/*/train_state.pt")):
            state = torch.load(path, map_location="cpu", weights_only=True)
            train = TrainConfig.model_validate(state["train_config"])
            config = train.model
            if config.vocab_size is None:
                config = config.model_copy(update={"vocab_size": tokenizer.get_vocab_size()})
            model = GPT(config)
            model.load_state_dict(state["trainer"]["model"])
            yield f"{stage} {_describe(train)}", state["trainer"]["step"], model
        for folder in sorted(glob.glob(f"{store}/{stage}/*/attempts/*/")):
            if os.path.exists(os.path.join(folder, "model.safetensors")):
                yield stage, "final", load_checkpoint(folder)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("store")
    parser.add_argument("--tasks", default=READ_TASKS, help="comma-separated task names")
    parser.add_argument("--pairs", type=int, default=64)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    tokenizer = Tokenizer.from_file(sorted(glob.glob(f"{args.store}/tokenize/*/attempts/*/tokenizer.json"))[-1])
    names = args.tasks.split(",")
    for stage, step, model in _models(args.store, tokenizer):
        scores = evaluate_model(model, tokenizer, names, "test", args.pairs)
        row = {"stage": stage, "step": step, "time": time.strftime("%H:%M:%S"), "load": round(os.getloadavg()[0], 1)}
        print(json.dumps({**row, **{s.task: round(s.loss, 3) for s in scores}}), flush=True)


if __name__ == "__main__":
    main()
