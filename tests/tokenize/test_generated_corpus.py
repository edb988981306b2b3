"""The tokenize stage with the generated simple-idiom component: the mix, resume, and bad settings (exit 2)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from sparsepipe.pipeline.cli import app
from sparsepipe.workers.context import local_context
from sparsepipe.workers.tokenize.config import TokenizeConfig
from sparsepipe.workers.tokenize.worker import run_tokenize

runner = CliRunner()


def _corpus(tmp_path, n=12):
    folder = tmp_path / "src"
    folder.mkdir()
    for i in range(n):
        (folder / f"m{i}.py").write_text("\n".join(f"def f{i}_{j}(x):\n    return x * {j} + {i}\n" for j in range(30)))
    return folder


def _params(folder, **generated) -> TokenizeConfig:
    return TokenizeConfig.model_validate(
        {
            "corpus": {"paths": [str(folder)]},
            "generated": {"documents_per_unit": 20, **generated},
            "vocab_size": 280,
            "n_ctx": 16,
            "documents_per_shard": 4,
            "val_fraction": 0.2,
        }
    )


def test_mix_by_bytes_and_generated_shards_in_the_index(tmp_path):
    ctx = local_context(tmp_path / "out")
    run_tokenize(ctx, _params(_corpus(tmp_path), weight=0.5))
    metrics = ctx.metrics
    assert metrics["generated_documents"] > 0
    assert 0.4 < metrics["generated_fraction"] < 0.6
    index = json.loads((tmp_path / "out" / "shards.json").read_text())
    files = [s["file"] for split in ("train", "val") for s in index["splits"][split]]
    assert any("gen-" in f for f in files) and any("gen-" not in f for f in files)


def test_generation_resumes_from_the_progress_area(tmp_path):
    folder = _corpus(tmp_path)
    first = local_context(tmp_path / "out")
    run_tokenize(first, _params(folder, weight=0.5))
    again = local_context(tmp_path / "out2", progress_dir=tmp_path / "out.progress")
    run_tokenize(again, _params(folder, weight=0.5))
    assert again.metrics["generated_units_resumed"] == len(list((tmp_path / "out" / "train").glob("gen-*")))
    assert again.metrics["generated_bytes"] == first.metrics["generated_bytes"]
    for shard in (tmp_path / "out").rglob("*.parquet"):
        assert shard.read_bytes() == (tmp_path / "out2" / shard.relative_to(tmp_path / "out")).read_bytes()


def test_generated_only(tmp_path):
    params = TokenizeConfig.model_validate(
        {
            "corpus": {"max_bytes": 60_000},
            "generated": {"weight": 1, "documents_per_unit": 20},
            "vocab_size": 280,
            "n_ctx": 16,
        }
    )
    ctx = local_context(tmp_path / "out")
    run_tokenize(ctx, params)
    assert ctx.metrics["documents"] == 0 and ctx.metrics["generated_fraction"] == 1
    assert ctx.metrics["generated_bytes"] >= 60_000


def test_max_bytes_samples_the_real_corpus(tmp_path):
    folder = _corpus(tmp_path, n=40)
    ctx = local_context(tmp_path / "out")
    params = _params(folder, weight=0.25)
    params = params.model_copy(update={"corpus": params.corpus.model_copy(update={"max_bytes": 40_000})})
    run_tokenize(ctx, params)
    assert ctx.metrics["real_documents_available"] == 40
    assert ctx.metrics["documents"] < 40
    assert ctx.metrics["corpus_bytes"] + ctx.metrics["generated_bytes"] < 40_000 * 1.2


def test_the_sample_is_not_the_validation_split():
    from sparsepipe.workers.tokenize.corpus import Document
    from sparsepipe.workers.tokenize.generated import sample_real
    from sparsepipe.workers.tokenize.worker import split_of

    documents = [Document(f"d{i}", f"x = {i}\n" * 20) for i in range(2000)]
    sample = sample_real(documents, 20 * 1000 * 7)
    val = sum(split_of(d, 0.02) == "val" for d in sample)
    assert 0 < len(sample) < len(documents) and val < 0.1 * len(sample)


@pytest.mark.parametrize(
    "assignment, named",
    [
        ("tokenize.generated.weight=1.5", "tokenize.generated.weight"),
        ("tokenize.generated.weight=-0.1", "tokenize.generated.weight"),
        ("tokenize.generated.weight=1", "tokenize.corpus.max_bytes"),
    ],
)
def test_bad_mixing_weight_exits_2_naming_the_key(assignment, named, tmp_path):
    result = runner.invoke(
        app,
        [
            "plan",
            "--preset",
            "smoke",
            "--store",
            str(tmp_path / "s"),
            "--set",
            assignment,
            "--set",
            "tokenize.corpus.max_bytes=null",
        ],
    )
    assert result.exit_code == 2, result.output
    assert named in result.output


def test_empty_corpus_exits_2(tmp_path):
    (tmp_path / "empty").mkdir()
    result = runner.invoke(
        app,
        [
            "plan",
            "--preset",
            "smoke",
            "--store",
            str(tmp_path / "s"),
            "--set",
            f'tokenize.corpus.paths=["{tmp_path / "empty"}"]',
        ],
    )
    assert result.exit_code == 2, result.output
    assert "tokenize.corpus.paths" in result.output and "empty" in result.output
