"""Real expert demos for the StARe tests: made once per test session by ManiSkill3's motion planner
(`collect_demos`) and shared by the test directories whose conftests import the fixture.

Set STARE_TEST_DEMOS=DIR to keep them in DIR between runs while developing (made there if missing)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sim_training.data import Dataset
from sim_training.demos.collect import collect_demos

DEMOS_PER_TASK = {"PickCube-v1": 2, "StackCube-v1": 2, "PushCube-v1": 1, "PullCube-v1": 1, "LiftPegUpright-v1": 1}
_made: dict[str, Dataset] = {}


def _dataset(root: Path, task: str) -> Dataset:
    if task not in _made:
        if not (root / task / "dataset.json").is_file():
            # The planner's demos for every task (PickCube's default expert is scripted): the StARe tests and
            # their thresholds are written against these longer, slower episodes.
            collect_demos(task, DEMOS_PER_TASK[task], root / task, progress=False, expert="planner")
        _made[task] = Dataset(root / task)
    return _made[task]


@pytest.fixture(scope="session")
def real_demos(tmp_path_factory):
    """`real_demos(task)`: a dataset of real expert demos of the task, generated once per session."""
    kept = os.environ.get("STARE_TEST_DEMOS")
    root = Path(kept) if kept else tmp_path_factory.getbasetemp() / "stage-demos"
    return lambda task: _dataset(root, task)
