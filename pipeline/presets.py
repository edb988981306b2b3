"""Named presets: partial configs laid over the defaults, contributed by the stages.

smoke  CI: every stage in seconds.
tiny   the default of `run full`: the whole pipeline on a 2-core laptop in minutes.
small  one GPU, or a CPU overnight.
paper  the paper's settings (8 layers, d_model 2048, n_ctx 256, the Fig. 3 L0 sweep), for a GPU cluster.

Each stage declares its own sections' values per preset (`Stage.presets`, kept
in `workers/<stage>/config.py`); a preset is all of them merged.
"""

from __future__ import annotations

from typing import Any, Iterable

from ..workers.stage import Stage

PRESET_NAMES = ("smoke", "tiny", "small", "paper")


def collect_presets(stages: Iterable[Stage]) -> dict[str, dict[str, Any]]:
    """preset name -> partial config, every stage's contribution side by side."""
    presets: dict[str, dict[str, Any]] = {name: {} for name in PRESET_NAMES}
    for stage in stages:
        for name, sections in stage.presets.items():
            target = presets.setdefault(name, {})
            for section, values in sections.items():
                if section in target:
                    raise ValueError(
                        f"preset {name!r}: section {section!r} is contributed twice (again by stage {stage.name!r})"
                    )
                target[section] = values
    return presets
