"""The generated code is Python: prompt + completion starts a program that compiles."""

from __future__ import annotations

import random

import pytest

from sparsepipe.tasks import SPLITS, task_names
from sparsepipe.tasks.context import PairContext
from sparsepipe.tasks.snippets import MEMBERS, MODULE_BLOCKS, STATEMENTS
from sparsepipe.tasks.tokenization import ApproximateMeasure


def _indentation(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def close_open_blocks(code: str) -> str:
    """Append what a program cut after `code` minimally needs: a body for a trailing block header,
    and `except` clauses for `try` blocks that are still open."""
    lines = [line for line in code.rstrip("\n").split("\n") if line.strip()]
    open_tries: list[int] = []
    for line in lines:
        indent, text = _indentation(line), line.strip()
        if text.startswith(("except", "finally")):
            open_tries = [t for t in open_tries if t != indent]
        if text == "try:":
            open_tries.append(indent)
    suffix = ""
    if lines[-1].rstrip().endswith(":"):
        suffix += " " * (_indentation(lines[-1]) + 4) + "pass\n"
    for indent in sorted(open_tries, reverse=True):
        suffix += " " * indent + "except Exception:\n" + " " * (indent + 4) + "pass\n"
    return code.rstrip("\n") + "\n" + suffix


@pytest.mark.parametrize("name", task_names())
def test_prompt_plus_completion_compiles(name, pairs):
    for split in SPLITS:
        for pair in pairs(name, split):
            for prompt, completion in zip(pair.prompts, pair.completions):
                source = close_open_blocks(prompt + completion)
                try:
                    compile(source, f"<{name}>", "exec")
                except SyntaxError as error:
                    pytest.fail(f"{name}/{split}: {error}\n{source[-400:]}")


@pytest.mark.parametrize(
    "templates, wrap",
    [(MODULE_BLOCKS, "{}"), (STATEMENTS, "def f():\n{}    pass\n"), (MEMBERS, "class C:\n{}    pass\n")],
)
def test_every_snippet_compiles_in_its_place(templates, wrap):
    indent = {"module_snippets": 0, "statement_snippets": 4, "member_snippets": 4}[templates.family]
    for split in SPLITS:
        for template in templates.part(split):
            for draw in range(10):
                ctx = PairContext(
                    "snippets", split, random.Random(f"{template.name}/{draw}"), ApproximateMeasure(), 256
                )
                compile(wrap.format(template.body(ctx, indent)), template.name, "exec")
