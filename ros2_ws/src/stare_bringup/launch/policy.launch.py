"""policy_server + stage_segmenter + episode_logger, and with sim:=true the sim_bridge (ManiSkill3 as
the robot), from the parameter files in config/. `stare-bringup` starts the same graph from the same
files in one process where `ros2 launch` is not available (pip installs).

    ros2 launch stare_bringup policy.launch.py checkpoint:=/path/to/ckpt
    ros2 launch stare_bringup policy.launch.py sim:=true task:=PickCube-v1 checkpoint:=checkpoints/pick-cube-sft
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PythonExpression
from launch_ros.actions import Node


def generate_launch_description():
    config = os.path.join(get_package_share_directory("stare_bringup"), "config")
    policy_params = os.path.join(config, "policy.yaml")
    sim_params = os.path.join(config, "sim.yaml")
    sim = LaunchConfiguration("sim")
    task = LaunchConfiguration("task")
    checkpoint = LaunchConfiguration("checkpoint")
    record = LaunchConfiguration("record")
    # In simulation sim.yaml is layered over policy.yaml; on a robot policy.yaml alone (loaded twice).
    overlay = PythonExpression(["'", sim_params, "' if '", sim, "'.lower() == 'true' else '", policy_params, "'"])

    return LaunchDescription([
        DeclareLaunchArgument("sim", default_value="false", description="add sim_bridge (ManiSkill3 as the robot)"),
        DeclareLaunchArgument("task", default_value="PickCube-v1", description="task (env id)"),
        DeclareLaunchArgument("checkpoint", default_value="", description="policy checkpoint directory"),
        DeclareLaunchArgument("record", default_value="bags", description="directory for the episode bags"),
        # Simulation: DDS discovery stays on this machine unless the environment chose a range.
        SetEnvironmentVariable("ROS_AUTOMATIC_DISCOVERY_RANGE",
                               EnvironmentVariable("ROS_AUTOMATIC_DISCOVERY_RANGE", default_value="LOCALHOST"),
                               condition=IfCondition(sim)),
        Node(package="stare_ros", executable="policy_server", name="policy_server", output="screen",
             parameters=[policy_params, overlay, {"task": task, "checkpoint": checkpoint}]),
        Node(package="stare_ros", executable="stage_segmenter", name="stage_segmenter", output="screen",
             parameters=[policy_params, overlay, {"task": task}]),
        Node(package="stare_ros", executable="episode_logger", name="episode_logger", output="screen",
             parameters=[policy_params, overlay, {"task": task, "checkpoint": checkpoint, "output_dir": record}]),
        Node(package="stare_ros", executable="sim_bridge", name="sim_bridge", output="screen",
             parameters=[sim_params, {"task": task}], condition=IfCondition(sim)),
    ])
