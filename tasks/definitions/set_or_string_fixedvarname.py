"""set_or_string_fixedvarname: set_or_string with the variable always called `current`.

As in the paper's circuit study (Figure 6), the tracked variable's name never
changes; other names (and a possible second variable) still vary.
"""

from __future__ import annotations

from ..base import Task
from .set_or_string import TEMPLATES, make_generator

FIXED_NAME = "current"

TASK = Task(
    name="set_or_string_fixedvarname",
    description=f"set_or_string with the tracked variable always named `{FIXED_NAME}`.",
    generate=make_generator(FIXED_NAME),
    templates=TEMPLATES,
    max_diff_pretokens=6,
)
