"""ManiSkill3 Franka (Panda) tabletop tasks.

Instructions are ours: ManiSkill3's tabletop tasks carry no language. Every task uses the single
`base_camera` at 128x128 (moved in closer for the five cube and peg tasks) and the plain `panda` robot
(no wrist camera), except PegInsertionSide, whose env only supports `panda_wristcam`; its policy still
reads only the base camera.
"""

from sim_training.tasks.spec import CameraSpec, TaskSpec

BASE_CAMERA = CameraSpec("base_camera", 128, 128)
WORKSPACE_CAMERA = CameraSpec("base_camera", 128, 128, eye=(0.3, 0.25, 0.45), target=(-0.05, 0.0, 0.1), fov=1.0)
"""The base camera moved in from ManiSkill3's default (0.6 m up, 90 degree view, where a 4 cm cube is
3 pixels) to frame the 20 x 20 cm workspace from the front right: the cube spans about 10 pixels."""

PICK_CUBE = TaskSpec(
    env_id="PickCube-v1",
    family="maniskill",
    robot="panda",
    instructions=(
        "pick up the red cube and move it to the green goal",
        "grasp the red cube and bring it to the green marker",
        "lift the red cube to the green sphere and hold it there",
        "move the red block to the green target point",
    ),
    camera=WORKSPACE_CAMERA,
    max_episode_steps=100,
    success_flags=("success", "is_obj_placed", "is_robot_static", "is_grasped"),
    tracked_actors=("cube", "goal_site"),
    grasp_actor="cube",
    goal_inputs=("goal_pos",),
    expert="scripted",
    revealed_actors=("goal_site",),
)

STACK_CUBE = TaskSpec(
    env_id="StackCube-v1",
    family="maniskill",
    robot="panda",
    instructions=(
        "stack the red cube on top of the green cube",
        "put the red block on the green block",
        "pick up the red cube and place it on the green cube",
        "place the red cube onto the green one",
    ),
    camera=WORKSPACE_CAMERA,
    max_episode_steps=150,
    success_flags=("success", "is_cubeA_grasped", "is_cubeA_on_cubeB", "is_cubeA_static"),
    tracked_actors=("cubeA", "cubeB"),
    grasp_actor="cubeA",
    expert="scripted",
)

PUSH_CUBE = TaskSpec(
    env_id="PushCube-v1",
    family="maniskill",
    robot="panda",
    instructions=(
        "push the blue cube into the red and white target",
        "slide the blue cube forward onto the target",
        "push the blue block to the goal region",
        "move the blue cube onto the red target by pushing it",
    ),
    camera=WORKSPACE_CAMERA,
    max_episode_steps=100,
    success_flags=("success",),
    tracked_actors=("obj", "goal_region"),
    expert="scripted",
)

PULL_CUBE = TaskSpec(
    env_id="PullCube-v1",
    family="maniskill",
    robot="panda",
    instructions=(
        "pull the blue cube back onto the red and white target",
        "drag the blue cube towards the robot onto the target",
        "pull the blue block to the goal region",
        "bring the blue cube back to the red target by pulling it",
    ),
    camera=WORKSPACE_CAMERA,
    max_episode_steps=100,
    success_flags=("success",),
    tracked_actors=("obj", "goal_region"),
    expert="scripted",
)

LIFT_PEG_UPRIGHT = TaskSpec(
    env_id="LiftPegUpright-v1",
    family="maniskill",
    robot="panda",
    instructions=(
        "lift the peg and stand it upright on the table",
        "pick up the lying peg and set it upright",
        "turn the peg so that it stands upright",
        "grasp the peg and place it standing on its end",
    ),
    camera=WORKSPACE_CAMERA,
    max_episode_steps=300,
    success_flags=("success",),
    tracked_actors=("peg",),
    grasp_actor="peg",
)

PLACE_SPHERE = TaskSpec(
    env_id="PlaceSphere-v1",
    family="maniskill",
    robot="panda",
    instructions=(
        "place the blue ball into the bin",
        "pick up the sphere and put it in the bin",
        "put the blue ball in the container",
        "grasp the ball and drop it into the bin",
    ),
    camera=BASE_CAMERA,
    max_episode_steps=200,
    success_flags=("success", "is_obj_grasped", "is_obj_on_bin", "is_obj_static"),
    tracked_actors=("obj", "bin"),
    grasp_actor="obj",
)

PEG_INSERTION_SIDE = TaskSpec(
    env_id="PegInsertionSide-v1",
    family="maniskill",
    robot="panda_wristcam",
    instructions=(
        "insert the peg into the hole in the box",
        "pick up the peg and push it sideways into the hole",
        "put the peg into the box's hole",
        "grasp the peg and insert it into the hole from the side",
    ),
    camera=BASE_CAMERA,
    max_episode_steps=250,
    success_flags=("success",),
    tracked_actors=("peg", "box"),
    grasp_actor="peg",
)

TABLETOP_TASKS = (PICK_CUBE, STACK_CUBE, PUSH_CUBE, PULL_CUBE, LIFT_PEG_UPRIGHT, PLACE_SPHERE, PEG_INSERTION_SIDE)
