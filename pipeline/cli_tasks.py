"""`sparsepipe tasks`: list, show, check and score the 20 pruning tasks.

Thin commands over `sparsepipe.tasks`: parse, call, print.  Exit codes: 0 done,
1 a check failed, 2 usage error (unknown task or split, missing tokenizer).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from .console import EXIT_FAILED, EXIT_STORE, EXIT_USAGE, RULE_WIDTH, ConfigOpt, PresetOpt, SetOpt, StoreOpt, err, out
from .console import fail as _fail

app = typer.Typer(
    name="tasks",
    no_args_is_help=True,
    help=(
        "The 20 binary next-token tasks of the paper (Table 1) that circuits are pruned for.\n\n"
        "Each datapoint is a pair of Python prompts that differ minimally; the difference decides which "
        "of two candidate tokens comes next (prompt A -> candidate A, prompt B -> candidate B).  The task "
        "loss is the cross-entropy of the right candidate under the two-way softmax over both candidates.\n\n"
        "  sparsepipe tasks list\n"
        "  sparsepipe tasks show bracket_counting -n 2\n"
        "  sparsepipe tasks check                      # the committed tokenizer of this config and store\n"
        "  sparsepipe tasks eval --checkpoints pretrain/tiny   # committed checkpoints, by cell (default: all)\n"
        "  sparsepipe tasks eval --checkpoint <folder> --tokenizer <folder or tokenizer.json>\n\n"
        "Store references follow --preset/--config/--set/--store as `run` does; artifact folders are the `path` "
        "entries of `sparsepipe status --json`."
    ),
)

TokenizerOption = Annotated[
    Optional[str],
    typer.Option(
        "--tokenizer",
        help=(
            "tokenizer.json written by the tokenize stage (or its folder), or a store reference (tokenize). "
            "Default: the committed tokenizer of the current config and store."
        ),
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
TaskOption = Annotated[
    Optional[list[str]], typer.Option("--task", "-t", help="Only this task (repeat for several). Default: all 20.")
]
SeedOption = Annotated[int, typer.Option(help="Generator seed: the same seed gives the same pairs.")]
MaxTokensOption = Annotated[
    int, typer.Option(help="Context budget: [<|endoftext|>] + prompt + candidate fit in this many tokens (>= 48).")
]


def _task(name: str):
    from sparsepipe.tasks import UnknownTaskError, get_task

    try:
        return get_task(name)
    except UnknownTaskError as error:
        _fail(str(error), EXIT_USAGE)


def _selected(tasks: list[str] | None) -> list[str]:
    from sparsepipe.tasks import task_names

    names = [name for item in tasks for name in item.split(",") if name] if tasks else task_names()
    return [_task(name).name for name in names]


def _split(split: str):
    from sparsepipe.tasks.splits import check_split

    try:
        return check_split(split)
    except ValueError as error:
        _fail(str(error), EXIT_USAGE)


def _tokenizer(path: Path):
    from sparsepipe.tasks import load_tokenizer

    try:
        return load_tokenizer(path)
    except FileNotFoundError as error:
        _fail(str(error), EXIT_USAGE)


class StoreSettings:
    """--preset/--config/--set/--store: which config and store a store reference is resolved in."""

    def __init__(self, preset: str | None, config: Path | None, assignments: list[str] | None, store: str | None):
        self.preset, self.config, self.assignments, self.store = preset, config, assignments, store

    def committed(self, kind: str, patterns: list[str] | None) -> list[tuple[str, Path]]:
        from .artifacts import ArtifactNotFound, committed
        from .console import STORE_PLAN, load_config, open_store, registry
        from .store import StoreError

        cfg = load_config(self.preset, self.config, self.assignments, self.store)
        try:
            return committed(registry(), open_store(cfg, STORE_PLAN), cfg, kind, patterns)
        except ArtifactNotFound as error:
            _fail(str(error), EXIT_USAGE)
        except StoreError as error:
            _fail(str(error), EXIT_STORE)
        except OSError as error:
            _fail(f"the store {cfg.store} cannot be read: {error}", EXIT_STORE)
        raise AssertionError("unreachable")


def _tokenizer_from(value: str | None, where: StoreSettings):
    """A path (file or folder) as before, else a store reference (default: the committed tokenizer)."""
    if value is not None and (Path(value).exists() or value.endswith(".json") or "/" in value):
        return _tokenizer(Path(value))
    _, folder = where.committed("tokenizer", [value] if value else None)[0]
    return _tokenizer(folder)


def _mark(good: bool) -> str:
    return "[green]yes[/]" if good else "[red]no[/]"


def _visible(token: str) -> str:
    """A candidate with its whitespace made visible (newline as ⏎, spaces as ·)."""
    return token.replace(" ", "·").replace("\n", "⏎")


@app.command("list")
def list_tasks(json_output: JsonOption = False) -> None:
    """List the tasks with what each asks the model to predict, then their control twins (`prune.controls`)."""
    from sparsepipe.tasks import TASKS, TWINS

    tasks = [*TASKS.values(), *TWINS.values()]
    if json_output:
        rows = [
            {
                "name": t.name,
                "description": t.description,
                "templates": len(t.templates.all),
                "derived_from": t.base.name if t.name in TWINS else None,
            }
            for t in tasks
        ]
        print(json.dumps(rows, indent=2))
        return
    title = f"{len(TASKS)} tasks (Table 1) and {len(TWINS)} control twins"
    table = Table("task", "what the model must predict", "templates", title=title)
    for task in tasks:
        table.add_row(task.name, task.description, str(len(task.templates.all)))
    out.print(table)


@app.command()
def show(
    name: Annotated[str, typer.Argument(help="Task name (see `sparsepipe tasks list`).")],
    n: Annotated[int, typer.Option("-n", help="How many pairs.")] = 3,
    split: Annotated[str, typer.Option(help="train, val or test.")] = "train",
    tokenizer: Annotated[
        Optional[Path],
        typer.Option(help="tokenizer.json: exact lengths and the tokenizer's own candidates. Without it, raw strings."),
    ] = None,
    seed: SeedOption = 0,
    max_tokens: MaxTokensOption = 256,
    lines: Annotated[int, typer.Option(help="Show the last LINES lines of each prompt; 0 for all.")] = 12,
) -> None:
    """Print pairs of a task: each prompt, then its right candidate highlighted in green.

    Whitespace in candidates is made visible: a space as ·, a newline as ⏎.
    """
    from sparsepipe.tasks import TaskError
    from sparsepipe.tasks.dataset import prompt_budget
    from sparsepipe.tasks.tokenization import ApproximateMeasure, TokenizerMeasure

    task, split_name = _task(name), _split(split)
    measure = TokenizerMeasure(_tokenizer(tokenizer)) if tokenizer else ApproximateMeasure()
    if not tokenizer:
        err.print("[dim]no --tokenizer: lengths are estimated (~) and candidates shown as the generator wrote them[/]")
    try:
        pairs = task.make_pairs(split_name, n, seed, measure, prompt_budget(max_tokens, True))
    except TaskError as error:
        _fail(str(error), EXIT_FAILED)
    for index, pair in enumerate(pairs):
        out.print(Rule(f"{name} · {split} · pair {index}"), width=min(out.width, RULE_WIDTH))
        own = [t for t in pair.templates if t.startswith(f"{task.templates.family}:")]
        out.print(
            Text(
                f"template {', '.join(own)} (+{len(pair.templates) - len(own)} surrounding-code templates)", style="dim"
            )
        )
        a, b = pair.candidates
        if getattr(task, "swapped", lambda pair: False)(pair):  # a control twin's transformed answer
            a, b = b, a
        for label, prompt, right, wrong in (("A", pair.prompt_a, a, b), ("B", pair.prompt_b, b, a)):
            length = f"{'' if tokenizer else '~'}{measure.count(prompt)} tokens"
            header = Text(f"prompt {label} ({length})  ", style="bold")
            header.append(f"right {right!r}", style="green")
            header.append(f"  wrong {wrong!r}", style="red")
            body = Text(prompt if lines == 0 else "\n".join(prompt.split("\n")[-lines:]))
            body.append(_visible(right), style="bold green reverse")
            out.print(header)
            out.print(body)


@app.command()
def check(
    tokenizer: TokenizerOption = None,
    json_output: JsonOption = False,
    tasks: TaskOption = None,
    n_pairs: Annotated[int, typer.Option(help="Pairs per split.")] = 100,
    seed: SeedOption = 0,
    max_tokens: MaxTokensOption = 256,
    preset: PresetOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    store: StoreOpt = None,
) -> None:
    """Check every task's data under a tokenizer; exit code 1 if any check fails.

    Per task: pairs generate in all three splits; candidates are single tokens and appending one
    to its prompt only appends its id; each candidate is the token the program really goes on
    with; the prompts of a pair differ in few pre-tokens; train/val/test share no template and no
    identifier; the rule-based oracle (tasks/oracles.py) gets 100%.
    """
    from sparsepipe.tasks.checks import check_task

    tok = _tokenizer_from(tokenizer, StoreSettings(preset, config, set_, store))
    results = [check_task(name, tok, n_pairs, seed, max_tokens) for name in _selected(tasks)]
    if json_output:
        print(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        table = Table("task", "pairs", "1 token", "natural", "diff", "disjoint", "oracle", "ok")
        for r in results:
            table.add_row(
                r.task,
                str(sum(r.pairs.values())),
                _mark(r.tokens_ok),
                f"{r.natural:.0%}",
                f"{r.max_diff}/{r.max_diff_allowed}",
                _mark(r.disjoint),
                f"{min(r.oracle.values(), default=0.0):.0%}",
                _mark(r.ok),
            )
        out.print(table)
        out.print(
            "[dim]pairs: over the 3 splits · natural: candidate = the token the program goes on with · "
            "diff: largest pre-token difference of a pair / allowed · oracle: worst split[/]"
        )
        for r in results:
            for error in r.errors:
                err.print(f"[red]{r.task}[/]: {error}")
    failed = [r.task for r in results if not r.ok]
    if failed:
        _fail(f"{len(failed)} task(s) failed: {', '.join(failed)}", EXIT_FAILED)


def load_model(checkpoint: Path):
    """The model behind `eval`: `sparsepipe.workers.nn.gpt.load_checkpoint(path)`, imported lazily."""
    from sparsepipe.workers.nn.gpt import load_checkpoint

    return load_checkpoint(checkpoint)


@app.command("eval")
def evaluate(
    checkpoint: Annotated[
        Optional[Path],
        typer.Option(help="A model checkpoint folder (as written by pretrain), instead of --checkpoints."),
    ] = None,
    checkpoints: Annotated[
        Optional[list[str]],
        typer.Option(
            "--checkpoints",
            help="Committed checkpoints by cell: all (default; imported models only when named), a stage (pretrain, "
            "dense), a cell (pretrain/tiny) or a "
            "glob; comma-separated or repeated.",
        ),
    ] = None,
    tokenizer: TokenizerOption = None,
    json_output: JsonOption = False,
    tasks: TaskOption = None,
    split: Annotated[str, typer.Option(help="train, val or test.")] = "test",
    n_pairs: Annotated[int, typer.Option(help="Pairs per task.")] = 128,
    seed: SeedOption = 0,
    preset: PresetOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    store: StoreOpt = None,
) -> None:
    """Task loss (two-way cross-entropy, nats) and accuracy of trained models, per task.

    Models are the committed checkpoints of the current config and store (--checkpoints selects them),
    or one checkpoint folder (--checkpoint).

    The model is loaded with `sparsepipe.workers.nn.gpt.load_checkpoint` and called as
    `model(tokens)` -> logits [B, T, V] (or a tuple whose first element is the logits).
    Prompts are kept within the model's `config.n_ctx` when it has one.
    """
    from sparsepipe.tasks import TaskError
    from sparsepipe.tasks.evaluation import evaluate_model

    where = StoreSettings(preset, config, set_, store)
    names, split_name = _selected(tasks), _split(split)
    if checkpoint is not None and checkpoints:
        _fail("pass --checkpoint (a folder) or --checkpoints (store references), not both", EXIT_USAGE)
    if checkpoint is not None:
        models = [(str(checkpoint), checkpoint)]
    else:
        patterns = [c for item in checkpoints for c in item.split(",") if c] if checkpoints else None
        models = where.committed("checkpoint", patterns)
    tok = _tokenizer_from(tokenizer, where)
    results = []
    for label, folder in models:
        try:
            results.append((label, evaluate_model(load_model(folder), tok, names, split_name, n_pairs, seed)))
        except TaskError as error:
            _fail(str(error), EXIT_FAILED)
    if json_output:
        if checkpoint is not None:  # one folder: the scores, as before
            print(json.dumps([s.as_dict() for s in results[0][1]], indent=2))
        else:
            print(
                json.dumps(
                    [{"checkpoint": label, **s.as_dict()} for label, scores in results for s in scores], indent=2
                )
            )
        return
    for label, scores in results:
        _print_scores(label, split, n_pairs, scores)


def _print_scores(label: str, split: str, n_pairs: int, scores) -> None:
    table = Table("task", "loss", "accuracy", title=f"{label} · {split} · {n_pairs} pairs/task")
    for s in scores:
        table.add_row(s.task, f"{s.loss:.3f}", f"{s.accuracy:.1%}")
    if scores:
        table.add_section()
        table.add_row(
            "mean",
            f"{sum(s.loss for s in scores) / len(scores):.3f}",
            f"{sum(s.accuracy for s in scores) / len(scores):.1%}",
        )
    out.print(table)
