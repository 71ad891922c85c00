"""The stage spec of every task, keyed by env id. `sim_training`'s `TaskSpec.stages` reads this registry,
and the ROS segmenter, which has only `stare_policy`, reads it directly: one source of truth.

Stage lists follow the method notes (stare-method.md, section 2); the SimplerEnv Bridge tasks are
declared as pick-and-place (their privileged poses and WidowX kinematics are not available here).
"""

from __future__ import annotations

import dataclasses

from stare_policy.stages.spec import Stage, StageThresholds, TaskStages

REACH = Stage("Reach", entry="start", proprio_entry="start", cost="reach", potential="reach")
GRASP = Stage("Grasp", entry="grasped", proprio_entry="held", cost="grasp", potential="grasp")
TRANSPORT = Stage("Transport", entry="moved_in_hand", proprio_entry="held_moved", cost="transport", potential="target")
SETTLE = Stage("Settle", entry="near_target", proprio_entry="slowed", cost="place", potential="target")
PLACE = Stage("Place", entry="near_target", proprio_entry="slowed", cost="place", potential="target")
PUSH = Stage("Push", entry="at_contact", proprio_entry="slowed", cost="place", potential="target",
             observable=False)
PULL = dataclasses.replace(PUSH, name="Pull")
LIFT = Stage("Lift", entry="moved_in_hand", proprio_entry="held_moved", cost="hold", potential="lift")
UPRIGHT = Stage("Upright", entry="upright", proprio_entry="held_rotated", cost="upright", potential="upright",
                observable=False)
"""The expert grips the peg loosely so that it pivots in the fingers; its tilt cannot be read from the
joints. The proprioceptive cue is the wrist turn that swings it upright."""

CUBE_HALF = 0.02
PUSHING = StageThresholds(reach_m=0.04, slow_ratio=0.7)
"""The push/pull expert stops 3-3.5 cm from the contact point before pushing: that counts as arrived."""

PICK_CUBE = TaskStages("PickCube-v1", (REACH, GRASP, TRANSPORT, SETTLE), object="cube", target="goal_site")

STACK_CUBE = TaskStages(
    "StackCube-v1", (REACH, GRASP, TRANSPORT, PLACE), object="cubeA", target="cubeB",
    target_offset=(0.0, 0.0, 2 * CUBE_HALF), thresholds=StageThresholds(travel_in_plane=True),
)

PUSH_CUBE = TaskStages(
    "PushCube-v1", (REACH, PUSH), object="obj", target="goal_region", target_xy=True,
    contact_offset=(-CUBE_HALF - 0.005, 0.0, 0.0), thresholds=PUSHING,
)

PULL_CUBE = TaskStages(
    "PullCube-v1", (REACH, PULL), object="obj", target="goal_region", target_xy=True,
    contact_offset=(CUBE_HALF + 0.01, 0.0, 0.0), thresholds=PUSHING,
)

LIFT_PEG_UPRIGHT = TaskStages(
    "LiftPegUpright-v1", (REACH, GRASP, LIFT, UPRIGHT), object="peg", grasp_span_m=0.12,
    upright_height_m=0.12,
)


def _pick_and_place(env_id: str) -> TaskStages:
    """Bridge put-on / stack tasks: Reach, Grasp, Transport, Place with the WidowX arm. The env keeps the
    two objects in `objs[source_obj_name]` / `objs[target_obj_name]`; recording them as
    `priv.source_obj_pose` / `priv.target_obj_pose` (and a WidowX URDF for the proprioceptive side) comes
    with the Bridge assets, which are not on this machine."""
    return TaskStages(env_id, (REACH, GRASP, TRANSPORT, PLACE), object="source_obj", target="target_obj",
                      robot="widowx250s", thresholds=StageThresholds())


BRIDGE = tuple(
    _pick_and_place(env_id) for env_id in (
        "PutSpoonOnTableClothInScene-v1", "PutCarrotOnPlateInScene-v1",
        "StackGreenCubeOnYellowCubeBakedTexInScene-v1", "PutEggplantInBasketScene-v1",
    )
)

STAGE_SPECS: dict[str, TaskStages] = {
    spec.env_id: spec for spec in (PICK_CUBE, STACK_CUBE, PUSH_CUBE, PULL_CUBE, LIFT_PEG_UPRIGHT, *BRIDGE)
}


class UnknownStageSpecError(KeyError):
    def __str__(self) -> str:
        return f"no stage spec for task {self.args[0]!r}; tasks with stages: {', '.join(STAGE_SPECS)}"


def stage_spec(env_id: str) -> TaskStages:
    try:
        return STAGE_SPECS[env_id]
    except KeyError:
        raise UnknownStageSpecError(env_id) from None
