"""`sparsepipe tasks`: list, show, check and score the 20 pruning tasks.

Thin commands over `sparsepipe.tasks`: parse, call, print.  Exit codes: 0 done,
1 a check failed, 2 usage error (unknown task or split, missing tokenizer).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table
from rich.text import Text

from .console import make_console

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
        "  sparsepipe tasks check --tokenizer <tokenize artifact folder>\n"
        "  sparsepipe tasks eval --checkpoint <pretrain artifact folder> --tokenizer <tokenize artifact folder>\n\n"
        "Artifact folders are the `path` entries of `sparsepipe status --json`."
    ),
)
out = make_console()
err = make_console(stderr=True)
EXIT_FAILED, EXIT_USAGE = 1, 2

TokenizerOption = Annotated[
    Path, typer.Option("--tokenizer", help="tokenizer.json written by the tokenize stage (or its folder).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
TaskOption = Annotated[
    Optional[list[str]], typer.Option("--task", "-t", help="Only this task (repeat for several). Default: all 20.")
]
SeedOption = Annotated[int, typer.Option(help="Generator seed: the same seed gives the same pairs.")]
MaxTokensOption = Annotated[
    int, typer.Option(help="Context budget: [<|endoftext|>] + prompt + candidate fit in this many tokens (>= 48).")
]


def _fail(message: str, code: int) -> None:
    err.print(f"[red]error:[/] {message}")
    raise typer.Exit(code)


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


def _mark(good: bool) -> str:
    return "[green]yes[/]" if good else "[red]no[/]"


def _visible(token: str) -> str:
    """A candidate with its whitespace made visible (newline as ⏎, spaces as ·)."""
    return token.replace(" ", "·").replace("\n", "⏎")


@app.command("list")
def list_tasks(json_output: JsonOption = False) -> None:
    """List the tasks with what each asks the model to predict."""
    from sparsepipe.tasks import TASKS

    if json_output:
        rows = [
            {"name": t.name, "description": t.description, "templates": len(t.templates.all)} for t in TASKS.values()
        ]
        print(json.dumps(rows, indent=2))
        return
    table = Table("task", "what the model must predict", "templates", title=f"{len(TASKS)} tasks")
    for task in TASKS.values():
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
    from sparsepipe.tasks.dataset import prompt_budget
    from sparsepipe.tasks.tokenization import ApproximateMeasure, TokenizerMeasure

    from sparsepipe.tasks import TaskError

    task, split_name = _task(name), _split(split)
    measure = TokenizerMeasure(_tokenizer(tokenizer)) if tokenizer else ApproximateMeasure()
    if not tokenizer:
        err.print("[dim]no --tokenizer: lengths are estimated (~) and candidates shown as the generator wrote them[/]")
    try:
        pairs = task.make_pairs(split_name, n, seed, measure, prompt_budget(max_tokens, True))
    except TaskError as error:
        _fail(str(error), EXIT_FAILED)
    for index, pair in enumerate(pairs):
        out.rule(f"{name} · {split} · pair {index}")
        own = [t for t in pair.templates if t.startswith(f"{task.templates.family}:")]
        out.print(
            Text(
                f"template {', '.join(own)} (+{len(pair.templates) - len(own)} surrounding-code templates)", style="dim"
            )
        )
        for label, prompt, right, wrong in (
            ("A", pair.prompt_a, pair.candidate_a, pair.candidate_b),
            ("B", pair.prompt_b, pair.candidate_b, pair.candidate_a),
        ):
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
    tokenizer: TokenizerOption,
    json_output: JsonOption = False,
    tasks: TaskOption = None,
    n_pairs: Annotated[int, typer.Option(help="Pairs per split.")] = 100,
    seed: SeedOption = 0,
    max_tokens: MaxTokensOption = 256,
) -> None:
    """Check every task's data under a tokenizer; exit code 1 if any check fails.

    Per task: pairs generate in all three splits; candidates are single tokens and appending one
    to its prompt only appends its id; each candidate is the token the program really goes on
    with; the prompts of a pair differ in few pre-tokens; train/val/test share no template and no
    identifier; the rule-based oracle (tasks/oracles.py) gets 100%.
    """
    from sparsepipe.tasks.checks import check_task

    tok = _tokenizer(tokenizer)
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
    checkpoint: Annotated[Path, typer.Option(help="Model checkpoint folder (as written by pretrain).")],
    tokenizer: TokenizerOption,
    json_output: JsonOption = False,
    tasks: TaskOption = None,
    split: Annotated[str, typer.Option(help="train, val or test.")] = "test",
    n_pairs: Annotated[int, typer.Option(help="Pairs per task.")] = 128,
    seed: SeedOption = 0,
) -> None:
    """Task loss (two-way cross-entropy, nats) and accuracy of a trained model, per task.

    The model is loaded with `sparsepipe.workers.nn.gpt.load_checkpoint` and called as
    `model(tokens)` -> logits [B, T, V] (or a tuple whose first element is the logits).
    Prompts are kept within the model's `config.n_ctx` when it has one.
    """
    from sparsepipe.tasks import TaskError
    from sparsepipe.tasks.evaluation import evaluate_model

    names, split_name, tok = _selected(tasks), _split(split), _tokenizer(tokenizer)
    try:
        scores = evaluate_model(load_model(checkpoint), tok, names, split_name, n_pairs, seed)
    except TaskError as error:
        _fail(str(error), EXIT_FAILED)
    if json_output:
        print(json.dumps([s.as_dict() for s in scores], indent=2))
        return
    table = Table("task", "loss", "accuracy", title=f"{checkpoint} · {split} · {n_pairs} pairs/task")
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
