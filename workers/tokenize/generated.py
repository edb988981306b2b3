"""The generated component of the corpus in the tokenize stage: plan, sample for the BPE, encode in parallel.

The mix is by bytes: `tokenize.generated.weight` w of the corpus is generated
programs (`idioms.py`), 1 - w real documents.  Generation runs in units of
`documents_per_unit` documents, each a parallel call that generates, splits
(train/val by document hash, like real documents), encodes and packs its
documents into one shard per split; finished units are kept in the cell's
progress area, so a killed run resumes with the units still missing.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from ..context import WorkContext, run_calls
from . import idioms
from .config import TokenizeConfig
from .encoding import encode_shard
from .shards import write_shard

# Documents measured to estimate the mean generated document size (the same for a given seed).
_SIZE_SAMPLE = 200


@dataclass(frozen=True)
class GeneratedPlan:
    documents: int
    units: list[tuple[int, int]]  # [start, stop) document indices

    @property
    def shard_names(self) -> list[tuple[str, str]]:
        return [(f"train/gen-{n:05d}.parquet", f"val/gen-{n:05d}.parquet") for n in range(len(self.units))]


def real_budget(params: TokenizeConfig) -> int | None:
    """Bytes of real documents to keep: (1 - w) of corpus.max_bytes, or all of them when unset."""
    if params.corpus.max_bytes is None:
        return None
    return int((1 - params.generated.weight) * params.corpus.max_bytes)


def plan(params: TokenizeConfig, real_bytes: int) -> GeneratedPlan:
    """How many generated documents make the configured share of the corpus."""
    weight = params.generated.weight
    if weight == 0:
        return GeneratedPlan(0, [])
    if weight == 1:
        target = params.corpus.max_bytes
    elif params.corpus.max_bytes:
        # Keep the mix when the real corpus is smaller than its share of max_bytes.
        target = min(params.corpus.max_bytes * weight, real_bytes * weight / (1 - weight))
    else:
        target = real_bytes * weight / (1 - weight)
    mean = sum(len(d.encode("utf-8")) for d in idioms.documents(params.generated.seed, 0, _SIZE_SAMPLE)) / _SIZE_SAMPLE
    documents = max(1, math.ceil(target / mean))
    step = params.generated.documents_per_unit
    return GeneratedPlan(documents, [(start, min(start + step, documents)) for start in range(0, documents, step)])


def sample_real(documents: list, budget_bytes: int | None) -> list:
    """A deterministic sample (by salted content hash) of whole real documents up to the byte budget, in corpus order.

    The salt matters: the train/val split also goes by the content hash, and a sample of the smallest
    hashes would be the validation documents.
    """
    if budget_bytes is None:
        return documents
    keep, used = set(), 0
    for document in sorted(documents, key=lambda d: hashlib.sha256(f"sample:{d.digest}".encode()).hexdigest()):
        if used >= budget_bytes:
            break
        keep.add(document.digest)
        used += len(document.text.encode("utf-8"))
    return [d for d in documents if d.digest in keep]


def tokenizer_sample(params: TokenizeConfig, generated_plan: GeneratedPlan, budget_bytes: int) -> list[str]:
    """Generated documents for the BPE sample (used only when the corpus has no real document)."""
    texts, used = [], 0
    for index in range(generated_plan.documents):
        if used >= budget_bytes:
            break
        texts.append(idioms.document(params.generated.seed, index))
        used += len(texts[-1])
    return texts


def _is_val(text: str, val_fraction: float) -> bool:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:12], 16) / 16**12 < val_fraction


def generate_unit(seed: int, start: int, stop: int, tokenizer_json: str, n_ctx: int, val_fraction: float) -> dict:
    """One parallel unit: generate documents [start, stop), split them, encode and pack each split."""
    texts = list(dict.fromkeys(idioms.documents(seed, start, stop)))
    splits = {
        "train": [t for t in texts if not _is_val(t, val_fraction)],
        "val": [t for t in texts if _is_val(t, val_fraction)],
    }
    return {
        "rows": {split: encode_shard(tokenizer_json, docs, n_ctx) for split, docs in splits.items()},
        "documents": {split: len(docs) for split, docs in splits.items()},
        "bytes": sum(len(t.encode("utf-8")) for t in texts),
        "duplicates": (stop - start) - len(texts),
    }


def generate_all(ctx: WorkContext, params: TokenizeConfig, generated_plan: GeneratedPlan, tokenizer_json: str) -> dict:
    """Run every unit not already in the progress area; returns counts for the metrics."""
    totals = {"documents": 0, "train_documents": 0, "val_documents": 0, "bytes": 0, "duplicates": 0, "units_resumed": 0}
    todo = []
    for number, ((start, stop), names) in enumerate(zip(generated_plan.units, generated_plan.shard_names)):
        targets = [ctx.out_dir / name for name in names]
        for target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
        meta = ctx.out_dir / f".gen-{number:05d}.meta"
        if ctx.progress is not None and all(
            ctx.progress.get(n, t) for n, t in zip([*names, meta.name], [*targets, meta])
        ):
            _add(totals, eval_meta(meta.read_text()))
            meta.unlink()
            totals["units_resumed"] += 1
        else:
            todo.append((number, start, stop, names, meta))

    def save(position: int, result: dict) -> None:
        number, _, _, names, meta = todo[position]
        for split, name in zip(("train", "val"), names):
            write_shard(result["rows"][split], str(ctx.out_dir / name))
        summary = {k: result[k] for k in ("documents", "bytes", "duplicates")}
        if ctx.progress is not None:
            for name in names:
                ctx.progress.put(name, ctx.out_dir / name)
            meta.write_text(repr(summary))
            ctx.progress.put(meta.name, meta)
            meta.unlink()
        _add(totals, summary)
        ctx.report({"description": f"generated {position + 1}/{len(todo)} idiom units"})

    calls = [
        (
            generate_unit,
            (params.generated.seed, start, stop, tokenizer_json, params.n_ctx, params.val_fraction),
            {"num_cpus": 1},
        )
        for _, start, stop, _, _ in todo
    ]
    run_calls(ctx, calls, on_result=save)
    return totals


def eval_meta(text: str) -> dict:
    import ast

    return ast.literal_eval(text)


def _add(totals: dict, summary: dict) -> None:
    totals["documents"] += sum(summary["documents"].values())
    totals["train_documents"] += summary["documents"]["train"]
    totals["val_documents"] += summary["documents"]["val"]
    totals["bytes"] += summary["bytes"]
    totals["duplicates"] += summary["duplicates"]
