"""Security checks over the whole source tree (issue 8, item 7): nothing deserialises with pickle (no
`pickle`/`dill`/`joblib`/`shelve`/`marshal`, `torch.load` only with `weights_only=True`, `np.load` never
with `allow_pickle=True`, no unsafe YAML loader, no `trust_remote_code=True`, model weights through
`from_pretrained` only as safetensors), and simulation keeps DDS discovery on this machine.

The scan reads the code (AST), not the text, so docstrings that mention pickle do not count."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCANNED = ("stare_policy", "sim_training", "ros2_ws", "benchmarks", "scripts")
PICKLING = {"pickle", "cPickle", "_pickle", "dill", "joblib", "shelve", "marshal", "cloudpickle"}


def _is_true(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def findings(source: str, name: str = "<source>") -> list[str]:
    """Unsafe deserialisation in Python `source`, one line each."""
    out, tree = [], ast.parse(source, name)
    # names bound to a safe loader, e.g. Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader), and
    # subclasses of one (class Loader(yaml.SafeLoader): its constructors are SafeLoader's)
    safe_loaders = {"yaml.SafeLoader", "yaml.CSafeLoader"} | {
        t.id for n in ast.walk(tree) if isinstance(n, ast.Assign) and "SafeLoader" in ast.unparse(n.value)
        for t in n.targets if isinstance(t, ast.Name)} | {
        n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)
        and any(ast.unparse(b) in ("yaml.SafeLoader", "yaml.CSafeLoader") for b in n.bases)}
    for node in ast.walk(tree):
        where = f"{name}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            out += [f"{where}: imports {a.name}" for a in node.names if a.name.split(".")[0] in PICKLING]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PICKLING:
            out.append(f"{where}: imports from {node.module}")
        elif isinstance(node, ast.Call):
            func = ast.unparse(node.func)
            kw = {k.arg: k.value for k in node.keywords}
            short = func.rsplit(".", 1)[-1]
            if func == "torch.load" and not _is_true(kw.get("weights_only")):
                out.append(f"{where}: torch.load without weights_only=True")
            elif func in ("np.load", "numpy.load") and "allow_pickle" in kw and not (
                    isinstance(kw["allow_pickle"], ast.Constant) and kw["allow_pickle"].value is False):
                out.append(f"{where}: np.load with allow_pickle")
            elif (func in ("yaml.load", "yaml.load_all")
                  and ast.unparse(kw.get("Loader", ast.Constant(""))) not in safe_loaders):
                out.append(f"{where}: {func} without SafeLoader (use yaml.safe_load)")
            elif func in ("yaml.unsafe_load", "yaml.full_load", "yaml.unsafe_load_all", "yaml.full_load_all"):
                out.append(f"{where}: {func}")
            if _is_true(kw.get("trust_remote_code")):
                out.append(f"{where}: trust_remote_code=True")
            if short == "from_pretrained" and "Tokenizer" not in func and not _is_true(kw.get("use_safetensors")):
                out.append(f"{where}: {func} without use_safetensors=True (a .bin checkpoint is a pickle)")
    return out


def _sources() -> list[Path]:
    files = [p for d in SCANNED for p in (REPO / d).rglob("*.py")]
    return sorted(p for p in files if not {"build", "install", "log", "__pycache__"} & set(p.relative_to(REPO).parts))


def test_the_scan_sees_every_source_and_finds_what_it_should():
    assert len(_sources()) > 50
    planted = """
import pickle
from joblib import load
import torch, numpy as np, yaml
torch.load("w.pt")
torch.load("w.pt", weights_only=False)
np.load("a.npy", allow_pickle=True)
yaml.load(text)
yaml.unsafe_load(text)
class FullLoader(yaml.FullLoader): pass
yaml.load(text, Loader=FullLoader)
AutoModel.from_pretrained("dir", trust_remote_code=True)
LlavaForConditionalGeneration.from_pretrained("dir")
"""
    assert len(findings(planted)) == 11, findings(planted)
    fine = """
import torch, numpy as np, yaml
torch.load("w.pt", weights_only=True)
np.load("a.npz", allow_pickle=False)
np.load("a.npz")
yaml.safe_load(text)
yaml.load(text, Loader=yaml.SafeLoader)
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
yaml.load(text, Loader=Loader)
class Floats(yaml.SafeLoader): pass
yaml.load(text, Loader=Floats)
AutoTokenizer.from_pretrained("dir", local_files_only=True)
Llava.from_pretrained("dir", use_safetensors=True)
"""
    assert findings(fine) == []


def test_nothing_in_the_tree_unpickles():
    found = [f for path in _sources() for f in findings(path.read_text(), str(path.relative_to(REPO)))]
    assert not found, "\n".join(found)


def test_simulation_keeps_dds_discovery_on_this_machine(monkeypatch):
    from stare_bringup.graph import keep_discovery_local

    env: dict[str, str] = {}
    keep_discovery_local(env)
    assert env == {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    for chosen in ({"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"}, {"ROS_LOCALHOST_ONLY": "0"}):
        env = dict(chosen)
        keep_discovery_local(env)
        assert env == chosen, "an explicit choice is left alone"
    cli = ast.parse((REPO / "ros2_ws/src/stare_bringup/stare_bringup/cli.py").read_text())
    assert any(isinstance(n, ast.If) and ast.unparse(n.test) == "args.sim" and "keep_discovery_local()" in ast.unparse(n)
               for n in ast.walk(cli)), "stare-bringup --sim must keep discovery local"
    launch = (REPO / "ros2_ws/src/stare_bringup/launch/policy.launch.py").read_text()
    tree = ast.parse(launch)
    calls = [ast.unparse(c) for c in ast.walk(tree) if isinstance(c, ast.Call)
             and ast.unparse(c.func) == "SetEnvironmentVariable"]
    assert any("ROS_AUTOMATIC_DISCOVERY_RANGE" in c and "LOCALHOST" in c and "IfCondition(sim)" in c
               for c in calls), calls


@pytest.mark.parametrize("name", ["policy.yaml", "sim.yaml"])
def test_parameter_files_name_no_network_peers(name):
    text = (REPO / "ros2_ws/src/stare_bringup/config" / name).read_text()
    assert "STATIC_PEERS" not in text and "DOMAIN_ID" not in text
