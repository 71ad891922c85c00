"""policy.launch.py (which needs `launch`/`launch_ros`, absent from PyPI) is parsed with `ast`: it must
start the same nodes, with the same names and parameter files, as `stare-bringup`, and every parameter
in the files must be one the nodes declare."""

from __future__ import annotations

import ast
import dataclasses

import pytest
import yaml

from stare_bringup import graph

BRINGUP = graph.Path(graph.__file__).resolve().parents[1]
LAUNCH = BRINGUP / "launch" / "policy.launch.py"


def _launch_nodes() -> dict[str, dict]:
    tree = ast.parse(LAUNCH.read_text())
    nodes = {}
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "Node":
            kw = {k.arg: k.value for k in call.keywords}
            name = ast.literal_eval(kw["name"])
            params = [ast.unparse(p) for p in kw["parameters"].elts]
            overrides = next(([ast.literal_eval(k) for k in p.keys] for p in kw["parameters"].elts
                              if isinstance(p, ast.Dict)), [])
            nodes[name] = {"package": ast.literal_eval(kw["package"]), "executable": ast.literal_eval(kw["executable"]),
                           "files": params, "overrides": overrides, "sim_only": "condition" in kw}
    return nodes


def _file_names(tree_text: str) -> dict[str, str]:
    """Variable -> file name for the os.path.join(config, '<file>.yaml') assignments."""
    out = {}
    for node in ast.walk(ast.parse(tree_text)):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and ast.unparse(node.value.func) == "os.path.join":
            last = node.value.args[-1]
            if isinstance(last, ast.Constant) and str(last.value).endswith(".yaml"):
                out[node.targets[0].id] = last.value
    return out


def test_launch_file_and_bringup_start_the_same_nodes():
    nodes = _launch_nodes()
    assert set(nodes) == set(graph.SIM_NODES)
    assert {n for n, v in nodes.items() if not v["sim_only"]} == set(graph.ROBOT_NODES)
    for name, node in nodes.items():
        assert node["package"] == "stare_ros" and node["executable"] == name
        module = graph.NODES[name][0]
        assert module == f"stare_ros.nodes.{name}"


def test_launch_file_and_bringup_read_the_same_parameter_files():
    files = _file_names(LAUNCH.read_text())
    assert set(files.values()) == {graph.POLICY_PARAMS, graph.SIM_PARAMS}
    by_file = {v: k for k, v in files.items()}
    nodes = _launch_nodes()
    for name in graph.ROBOT_NODES:
        # policy.yaml first, then the overlay that is sim.yaml in simulation
        assert nodes[name]["files"][0] == by_file[graph.POLICY_PARAMS] and nodes[name]["files"][1] == "overlay"
    assert nodes["sim_bridge"]["files"][0] == by_file[graph.SIM_PARAMS]
    assert "sim_params" in LAUNCH.read_text().split("overlay =")[1].splitlines()[0]
    # launch arguments set the same parameters as stare-bringup's --task / --checkpoint / --record
    assert set(nodes["policy_server"]["overrides"]) == {"task", "checkpoint"}
    assert set(nodes["episode_logger"]["overrides"]) == {"task", "checkpoint", "output_dir"}


@pytest.mark.parametrize("name", [graph.POLICY_PARAMS, graph.SIM_PARAMS])
def test_every_parameter_in_the_files_is_declared(name):
    data = yaml.safe_load((BRINGUP / "config" / name).read_text())
    for node, body in data.items():
        fields = {f.name for f in dataclasses.fields(graph.config_class(node))}
        assert set(body["ros__parameters"]) <= fields, node
    params = graph.load_params(graph.param_files(sim=name == graph.SIM_PARAMS))
    for node, values in params.items():
        graph.config_class(node)(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def test_robot_config_is_dry_run_and_sim_is_not():
    robot = graph.load_params(graph.param_files(sim=False))
    sim = graph.load_params(graph.param_files(sim=True))
    assert robot["policy_server"]["dry_run"] is True and "sim_bridge" not in robot
    assert sim["policy_server"]["dry_run"] is False and sim["sim_bridge"]["mode"] == "lockstep"


def test_unknown_parameters_are_refused(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("policy_server:\n  ros__parameters:\n    dryrun: false\n")
    with pytest.raises(ValueError, match="unknown policy_server parameters dryrun"):
        graph.load_params([bad])
    bad.write_text("planner:\n  ros__parameters: {}\n")
    with pytest.raises(ValueError, match="'planner' is not one of the nodes"):
        graph.load_params([bad])
