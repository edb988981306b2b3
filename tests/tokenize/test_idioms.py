"""The generated simple-idiom corpus: deterministic, and disjoint from the task data it is meant to teach for."""

from __future__ import annotations

import importlib
import io
import pkgutil
import re
import tokenize
from string import Formatter

import pytest

from sparsepipe import tasks as tasks_package
from sparsepipe.tasks import get_task, task_names
from sparsepipe.tasks.splits import Pool, Templates
from sparsepipe.tasks.tokenization import ApproximateMeasure
from sparsepipe.workers.tokenize import idioms

HELD_OUT = ("val", "test")
WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@pytest.fixture(scope="module")
def corpus() -> str:
    return "\n".join(idioms.documents(seed=0, start=0, stop=400) + idioms.documents(seed=7, start=0, stop=100))


def _task_modules():
    # The framework modules and the task definitions (tasks/definitions/).
    for info in pkgutil.walk_packages(tasks_package.__path__, prefix="sparsepipe.tasks."):
        yield importlib.import_module(info.name)


def _pools() -> list[Pool]:
    return [value for module in _task_modules() for value in vars(module).values() if isinstance(value, Pool)]


def _templates() -> list[Templates]:
    found = {id(v): v for m in _task_modules() for v in vars(m).values() if isinstance(v, Templates)}
    return list(found.values())


def test_documents_are_a_function_of_seed_and_index():
    assert idioms.document(3, 11) == idioms.document(3, 11)
    assert idioms.documents(0, 5, 8) == [idioms.document(0, i) for i in range(5, 8)]
    assert idioms.document(0, 1) != idioms.document(1, 1)


def test_generated_programs_are_valid_python(corpus):
    for index in range(200):
        compile(idioms.document(0, index), f"<idioms {index}>", "exec")


def test_exercises_the_read_tasks_idioms(corpus):
    assert '")\n' in corpus and "')\n" in corpus  # strings closed by their own quote at the end of a call
    assert "]]\n" in corpus and "]\n" in corpus  # nested and flat lists
    assert "= set()\n" in corpus and ".add(" in corpus and " += " in corpus  # sets vs strings
    for keyword in ("while True:", "elif ", "else:", "with open(", "lambda ", "def __init__(self", "f'", 'f"'):
        assert keyword in corpus, keyword


def test_own_pools_are_disjoint_from_every_task_pool():
    task_words = {word for pool in _pools() for word in pool.words}
    own = (
        set(idioms.NAMES)
        | set(idioms.SHORT)
        | set(idioms.VERBS)
        | set(idioms.CLASSES)
        | set(idioms.ATTRS)
        | set(idioms.WORDS)
        | set(idioms.CALLS)
    )
    assert not own & task_words, sorted(own & task_words)


def _identifiers(source: str) -> set[str]:
    return {
        token.string for token in tokenize.generate_tokens(io.StringIO(source).readline) if token.type == tokenize.NAME
    }


def test_no_held_out_identifier_occurs(corpus):
    # Names in the code (string contents come from the generator's own word pools, checked above).
    words = set().union(*(_identifiers(idioms.document(seed, i)) for seed in (0, 7) for i in range(300)))
    held_out = {word for pool in _pools() for split in HELD_OUT for word in pool.part(split)}
    assert held_out, "no held-out identifiers found: the test would check nothing"
    assert not words & held_out, sorted(words & held_out)


def _template_pattern(body: str) -> str:
    """The template as a regex: its literal text, {q} a quote, any other {placeholder} a name or a number."""
    parts = []
    for literal, field, *_ in Formatter().parse(body):
        parts.append(re.escape(literal))
        if field is not None:
            parts.append("[\"']" if field == "q" else r"[\w.]+")
    return "".join(parts)


def test_no_held_out_template_string_occurs(corpus):
    checked = 0
    for templates in _templates():
        for split in HELD_OUT:
            for template in templates.part(split):
                # Bare Python words (`print`, `sys.exit`) are not a template's own text.
                if not isinstance(template.body, str) or len(template.body) < 6:
                    continue
                checked += 1
                match = re.search(rf"(?<![\w.]){_template_pattern(template.body)}", corpus)
                assert match is None, (templates.family, template.name, match and match.group())
    assert checked > 20


@pytest.mark.parametrize("name", task_names())
def test_no_task_prompt_occurs(name, corpus):
    task = get_task(name)
    for split in ("train", *HELD_OUT):
        for pair in task.make_pairs(split, 8, seed=0, measure=ApproximateMeasure(), budget=120):
            for prompt in pair.prompts:
                assert prompt.strip() not in corpus, (name, split, prompt)
