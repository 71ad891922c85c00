#!/usr/bin/env bash
# Entrypoint of docker/Dockerfile: ROS 2 Jazzy and the STARE workspace in the environment, then the command.
# (set -u is left out: ROS's setup scripts read unset variables.)
set -e
# Both exist only in the image.
# shellcheck source=/dev/null
source "/opt/ros/${ROS_DISTRO}/setup.bash"
# shellcheck source=/dev/null
source /stare/ros2_ws/install/setup.bash
exec "$@"
