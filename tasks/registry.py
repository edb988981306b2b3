"""The 20 tasks of the paper's Table 1, by name, in the table's order, and their derived twins.

`TASKS` and `task_names()` are Table 1 exactly; `TWINS` holds the derived tasks (`variants.py`: each task's
`__flipped` and `__shuffled` control), which `get_task` resolves like any task.
"""

from __future__ import annotations

from .base import Task
from .definitions import (
    bracket_brace,
    bracket_counting,
    class_init,
    else_elif,
    enumerate_range,
    final_kwarg,
    for_while,
    fstring_brace,
    if_equals,
    if_ternary,
    indent_for,
    lambda_func,
    set_or_string,
    set_or_string_fixedvarname,
    single_double_quote,
    var_if,
    var_swap,
    while_return_true,
    with_as,
    with_open,
)
from .errors import UnknownTaskError
from .variants import TaskTwin, twins_of

TASKS: dict[str, Task] = {
    module.TASK.name: module.TASK
    for module in (
        single_double_quote,
        final_kwarg,
        set_or_string,
        set_or_string_fixedvarname,
        class_init,
        with_as,
        bracket_brace,
        with_open,
        bracket_counting,
        for_while,
        else_elif,
        fstring_brace,
        if_ternary,
        var_swap,
        indent_for,
        lambda_func,
        if_equals,
        enumerate_range,
        var_if,
        while_return_true,
    )
}


TWINS: dict[str, TaskTwin] = twins_of(TASKS)


def task_names() -> list[str]:
    """The 20 tasks of Table 1 (no derived task)."""
    return list(TASKS)


def all_task_names() -> list[str]:
    """Table 1's tasks, then every derived twin."""
    return [*TASKS, *TWINS]


def get_task(name: str) -> Task | TaskTwin:
    found = TASKS.get(name) or TWINS.get(name)
    if found is None:
        raise UnknownTaskError(name, all_task_names())
    return found
