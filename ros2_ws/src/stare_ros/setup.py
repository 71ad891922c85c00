"""ament_python packaging for `colcon build` on a ROS 2 install; in the STARE venv the package is
installed by the repository's pyproject.toml instead."""

from setuptools import find_packages, setup

package_name = "stare_ros"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="STARE maintainers",
    maintainer_email="stare@example.com",
    description="STARE ROS 2 nodes: policy_server, stage_segmenter, episode_logger, sim_bridge.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "policy_server = stare_ros.nodes.policy_server:main",
            "stage_segmenter = stare_ros.nodes.stage_segmenter:main",
            "episode_logger = stare_ros.nodes.episode_logger:main",
            "sim_bridge = stare_ros.nodes.sim_bridge:main",
        ],
    },
)
