"""ament_python packaging for `colcon build` on a ROS 2 install (installs the launch and parameter
files into share/stare_bringup); in the STARE venv the package is installed by pyproject.toml."""

from glob import glob

from setuptools import find_packages, setup

package_name = "stare_bringup"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.launch.py")),
        ("share/" + package_name + "/config", glob("config/*.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="STARE maintainers",
    maintainer_email="stare@example.com",
    description="STARE node graph: policy.launch.py, its parameter files, and stare-bringup.",
    license="Apache-2.0",
    entry_points={"console_scripts": ["stare_bringup = stare_bringup.cli:main"]},
)
