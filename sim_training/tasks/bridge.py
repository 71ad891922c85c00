"""SimplerEnv WidowX/Bridge tasks (visual matching), through their ManiSkill3 ports.

They need the `bridge_v2_real2sim` asset pack and the `widowx250s` robot description on disk: nothing
downloads at run time, so building one of these envs without them fails at once with a clear message.
The envs fix their own robot, camera (640x480 `3rd_view_camera`), 5 Hz control and episode length.
"""

from sim_training.tasks.spec import CameraSpec, TaskSpec

BRIDGE_CAMERA = CameraSpec("3rd_view_camera", 640, 480)


def _bridge_task(env_id: str, instructions: tuple[str, ...], max_episode_steps: int = 60) -> TaskSpec:
    return TaskSpec(
        env_id=env_id,
        family="simpler",
        robot="widowx250s",
        instructions=instructions,
        camera=BRIDGE_CAMERA,
        max_episode_steps=max_episode_steps,
        success_flags=("success",),
        tracked_actors=(),
        control_mode="arm_pd_ee_target_delta_pose_align2_gripper_pd_joint_pos",
        control_freq=5,
        obs_mode="rgb+segmentation",
        required_assets=("bridge_v2_real2sim", "widowx250s"),
        motion_planner=False,
        accepts_robot_choice=False,
    )


PUT_SPOON_ON_TOWEL = _bridge_task(
    "PutSpoonOnTableClothInScene-v1", ("put the spoon on the towel", "place the spoon onto the towel")
)
PUT_CARROT_ON_PLATE = _bridge_task(
    "PutCarrotOnPlateInScene-v1", ("put carrot on plate", "place the carrot onto the plate")
)
STACK_GREEN_ON_YELLOW = _bridge_task(
    "StackGreenCubeOnYellowCubeBakedTexInScene-v1",
    ("stack the green block on the yellow block", "put the green cube on top of the yellow cube"),
)
PUT_EGGPLANT_IN_BASKET = _bridge_task(
    "PutEggplantInBasketScene-v1",
    ("put eggplant into yellow basket", "place the eggplant in the yellow basket"),
    max_episode_steps=120,
)

BRIDGE_TASKS = (PUT_SPOON_ON_TOWEL, PUT_CARROT_ON_PLATE, STACK_GREEN_ON_YELLOW, PUT_EGGPLANT_IN_BASKET)
