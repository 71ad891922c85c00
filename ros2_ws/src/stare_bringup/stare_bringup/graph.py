"""The node graph of policy.launch.py, built in one process: the same nodes, names and parameter files
(policy.yaml, then sim.yaml in simulation), composed by hand on one multi-threaded executor. A test
parses the launch file and checks that both describe the same graph."""

from __future__ import annotations

import dataclasses
import os
import typing
from pathlib import Path

import yaml

NODES = {
    "policy_server": ("stare_ros.nodes.policy_server", "PolicyServer", "PolicyServerConfig"),
    "stage_segmenter": ("stare_ros.nodes.stage_segmenter", "StageSegmenter", "StageSegmenterConfig"),
    "episode_logger": ("stare_ros.nodes.episode_logger", "EpisodeLogger", "EpisodeLoggerConfig"),
    "sim_bridge": ("stare_ros.nodes.sim_bridge", "SimBridge", "SimBridgeConfig"),
}
"""Node name -> (module, Node class, config dataclass in stare_ros.config)."""
ROBOT_NODES = ("policy_server", "stage_segmenter", "episode_logger")
SIM_NODES = (*ROBOT_NODES, "sim_bridge")
POLICY_PARAMS, SIM_PARAMS = "policy.yaml", "sim.yaml"


def keep_discovery_local(environ=os.environ) -> None:
    """In simulation the robot is this machine: DDS discovery stays on it (no multicast on every network
    interface), unless the environment chose a discovery range itself. policy.launch.py does the same
    with sim:=true. A robot network is configured by the deployer: docs/reliability.md."""
    if not environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") and "ROS_LOCALHOST_ONLY" not in environ:
        environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"


def config_dir() -> Path:
    """stare_bringup's config/: the installed share directory on a ROS install, else the source tree."""
    if os.environ.get("AMENT_PREFIX_PATH"):
        try:
            from ament_index_python.packages import get_package_share_directory

            return Path(get_package_share_directory("stare_bringup")) / "config"
        except Exception:  # not installed there: use the source tree
            pass
    return Path(__file__).resolve().parents[1] / "config"


def config_class(node: str):
    from stare_ros import config

    return getattr(config, NODES[node][2])


def load_params(files: list[Path]) -> dict[str, dict]:
    """Parameters per node name from ROS parameter files, later files winning (as with several
    `--params-file`s); unknown node names or parameters raise ValueError with one line."""
    params: dict[str, dict] = {}
    for path in files:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except OSError as err:
            raise ValueError(f"cannot read parameter file {path}: {err}") from None
        except yaml.YAMLError as err:
            raise ValueError(f"parameter file {path} is not valid YAML: {str(err).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of node names, got {type(data).__name__}")
        for node, body in data.items():
            name = str(node).lstrip("/")
            if (name not in NODES or not isinstance(body, dict)
                    or not isinstance(body.get("ros__parameters", None), dict)):
                raise ValueError(f"{path}: '{node}' is not one of the nodes {', '.join(NODES)} with ros__parameters")
            known = {f.name for f in dataclasses.fields(config_class(name))}
            unknown = sorted(set(body["ros__parameters"]) - known)
            if unknown:
                raise ValueError(f"{path}: unknown {name} parameters {', '.join(unknown)}")
            params.setdefault(name, {}).update(body["ros__parameters"])
    return params


def param_files(sim: bool, extra: list[Path] = ()) -> list[Path]:
    files = [config_dir() / POLICY_PARAMS] + ([config_dir() / SIM_PARAMS] if sim else [])
    return files + [Path(p) for p in extra]


def _typed(value, hint):
    """YAML writes 20 for 20.0; ROS parameters are strictly typed, so follow the config's field type."""
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if typing.get_origin(hint) is tuple and typing.get_args(hint)[0] is float and isinstance(value, (list, tuple)):
        try:
            return [float(v) for v in value]
        except (TypeError, ValueError):  # left as it is: the node refuses it, naming the parameter
            return list(value)
    return list(value) if isinstance(value, tuple) else value


def build(context, nodes: tuple[str, ...], params: dict[str, dict]) -> list:
    """Instantiate the nodes in `context` with their parameters (in graph order: the simulator first,
    so its observations find their subscribers)."""
    import importlib

    from rclpy.parameter import Parameter

    built = []
    for name in sorted(nodes, key=lambda n: n != "sim_bridge"):
        module, cls, _ = NODES[name]
        hints = typing.get_type_hints(config_class(name))
        overrides = [Parameter(k, value=_typed(v, hints[k])) for k, v in params.get(name, {}).items()]
        built.append(getattr(importlib.import_module(module), cls)(context=context, parameter_overrides=overrides))
    return built
