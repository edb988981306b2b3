"""The prune result schema: cell names, and result.json validated where it is written."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sparsepipe.workers.prune.result import cell_name, read_result, split_cell, write_result


def test_cell_names_round_trip_with_slashes_in_the_checkpoint():
    assert cell_name("pretrain/tiny", "bracket_counting") == "pretrain/tiny:bracket_counting"
    assert split_cell("imported/csp_yolo1:if_equals") == ("imported/csp_yolo1", "if_equals")
    for bad in ("pretrain/tiny", ":task", "dense:"):
        with pytest.raises(ValueError, match="not a prune cell name"):
            split_cell(bad)


def test_a_result_missing_a_field_is_refused_where_it_is_written(tmp_path):
    with pytest.raises(ValidationError, match="tuned_target"):
        write_result(tmp_path, {"cell": "dense:t", "checkpoint": "dense", "task": "t", "nodes": 1})
    assert not (tmp_path / "result.json").exists()
    with pytest.raises(FileNotFoundError, match="not a prune cell's artifact"):
        read_result(tmp_path)
