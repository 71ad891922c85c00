"""Stage specs: one per required task, consistent with the task suite and with both separators."""

import subprocess
import sys

import pytest

from sim_training.tasks import TASKS
from stare_policy.stages import STAGE_SPECS, UnknownStageSpecError, stage_spec
from stare_policy.stages.calculator import COSTS, POTENTIALS
from stare_policy.stages.privileged import EVENTS as PRIVILEGED_EVENTS
from stare_policy.stages.proprioceptive import EVENTS as PROPRIO_EVENTS

REQUIRED = {
    "PickCube-v1": ("Reach", "Grasp", "Transport", "Settle"),
    "StackCube-v1": ("Reach", "Grasp", "Transport", "Place"),
    "PushCube-v1": ("Reach", "Push"),
    "PullCube-v1": ("Reach", "Pull"),
    "LiftPegUpright-v1": ("Reach", "Grasp", "Lift", "Upright"),
}


@pytest.mark.parametrize("task", REQUIRED)
def test_required_tasks_have_their_stages(task):
    assert stage_spec(task).names == REQUIRED[task]
    assert TASKS[task].stages is stage_spec(task)  # the task spec reads the same registry


def test_bridge_tasks_are_pick_and_place():
    bridge = [t for t, spec in TASKS.items() if spec.family == "simpler"]
    assert bridge
    for task in bridge:
        assert TASKS[task].stages.names == ("Reach", "Grasp", "Transport", "Place")
        assert TASKS[task].stages.robot == TASKS[task].robot


@pytest.mark.parametrize("spec", list(STAGE_SPECS.values()), ids=lambda s: s.env_id)
def test_every_named_event_cost_and_potential_exists(spec):
    assert spec.stages[0].entry == spec.stages[0].proprio_entry == "start"
    for stage in spec.stages[1:]:
        assert stage.entry in PRIVILEGED_EVENTS and stage.proprio_entry in PROPRIO_EVENTS
    for stage in spec.stages:
        assert stage.cost in COSTS and stage.potential in POTENTIALS


@pytest.mark.parametrize("task", REQUIRED)
def test_stage_actors_are_recorded_by_the_task(task):
    task_spec, spec = TASKS[task], stage_spec(task)
    assert spec.object in task_spec.tracked_actors
    assert spec.target is None or spec.target in task_spec.tracked_actors
    assert spec.object == task_spec.grasp_actor or task_spec.grasp_actor is None


def test_specs_declare_what_proprioception_cannot_see():
    for task in ("PushCube-v1", "PullCube-v1"):
        assert [s.observable for s in stage_spec(task).stages] == [True, False]  # contact with the cube
    assert [s.observable for s in stage_spec("LiftPegUpright-v1").stages] == [True, True, True, False]  # peg tilt
    for task in ("PickCube-v1", "StackCube-v1"):
        assert all(s.observable for s in stage_spec(task).stages)


def test_unknown_task_is_a_clear_error():
    with pytest.raises(UnknownStageSpecError, match="no stage spec for task 'NoSuchTask-v0'.*PickCube-v1"):
        stage_spec("NoSuchTask-v0")


def test_thresholds_are_typed_and_overridable():
    spec = stage_spec("PickCube-v1").with_thresholds(carry_m=0.02)
    assert spec.thresholds.carry_m == 0.02 and stage_spec("PickCube-v1").thresholds.carry_m != 0.02
    with pytest.raises(TypeError):
        stage_spec("PickCube-v1").with_thresholds(no_such_threshold=1.0)


def test_stare_policy_stages_import_neither_simulator_nor_training_code():
    code = ("import sys, stare_policy.stages as s; s.ChainFK(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mani_skill', 'sim_training', 'sapien', 'torch')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
