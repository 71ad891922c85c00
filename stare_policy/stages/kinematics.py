"""Forward kinematics of a serial arm from its URDF, compiled once into straight-line code.

The online stage segmenter runs FK on every joint-state sample within a budget of tens of microseconds;
a general library call (pytorch_kinematics: ~450 us) does not fit. The chain is fixed, so all constant
transforms are folded at load time and one Python function of the joint angles is generated. Its
arithmetic is plain `+ - *` with an injected cos/sin, so the same code runs on floats (online, with
`math`) and on numpy arrays (batch): one implementation for both uses.
"""

from __future__ import annotations

import importlib.util
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

PANDA_URDF = "assets/robots/panda/panda_v2.urdf"
PANDA_TIP = "panda_hand_tcp"
PANDA_ARM_JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8))
_EPS = 1e-12


def default_panda_urdf() -> Path:
    """The Panda description that ships with mani_skill, found without importing mani_skill."""
    spec = importlib.util.find_spec("mani_skill")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("mani_skill is not installed, so its Panda URDF cannot be found; pass urdf_path")
    path = Path(next(iter(spec.submodule_search_locations))) / PANDA_URDF
    if not path.is_file():
        raise FileNotFoundError(f"no Panda URDF at {path}; pass urdf_path")
    return path


def _rpy_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    cr, sr, cp, sp, cy, sy = (math.cos(roll), math.sin(roll), math.cos(pitch), math.sin(pitch),
                              math.cos(yaw), math.sin(yaw))
    return np.array([[cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
                     [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
                     [-sp, cp * sr, cp * cr]])


def _transform(rotation: np.ndarray, translation=(0.0, 0.0, 0.0)) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = rotation, translation
    return out


def _z_to(axis: np.ndarray) -> np.ndarray:
    """A rotation taking the z axis onto `axis`, so every revolute joint becomes a rotation about z."""
    z = np.array([0.0, 0.0, 1.0])
    v, c = np.cross(z, axis), float(z @ axis)
    if np.linalg.norm(v) < _EPS:
        return np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1 + c)


def parse_chain(urdf_path: str | Path, tip: str, root: str | None = None) -> tuple[list, list[str]]:
    """The chain from `root` (default: the tree's root) to `tip` as constant 4x4 transforms and
    revolute joints about z: a list of ("fixed", T) and ("rotz", joint_index) steps, and joint names."""
    try:
        tree = ET.parse(urdf_path)
    except (OSError, ET.ParseError) as err:
        raise ValueError(f"cannot read URDF {urdf_path}: {err}") from None
    by_child = {j.find("child").get("link"): j for j in tree.getroot().iter("joint")}
    joints, link = [], tip
    while link in by_child and link != root:
        joints.append(by_child[link])
        link = by_child[link].find("parent").get("link")
    if not joints or (root is not None and link != root):
        raise ValueError(f"{urdf_path}: no joint chain from {root or 'the root'} to link {tip!r}")

    steps, names = [], []
    for joint in reversed(joints):
        origin = joint.find("origin")
        xyz = [float(v) for v in (origin.get("xyz", "0 0 0") if origin is not None else "0 0 0").split()]
        rpy = [float(v) for v in (origin.get("rpy", "0 0 0") if origin is not None else "0 0 0").split()]
        steps.append(("fixed", _transform(_rpy_matrix(*rpy), xyz)))
        kind = joint.get("type")
        if kind in ("revolute", "continuous"):
            axis_el = joint.find("axis")
            axis = np.array([float(v) for v in (axis_el.get("xyz") if axis_el is not None else "1 0 0").split()])
            align = _transform(_z_to(axis / np.linalg.norm(axis)))
            steps += [("fixed", align), ("rotz", len(names)), ("fixed", np.linalg.inv(align))]
            names.append(joint.get("name"))
        elif kind != "fixed":
            raise ValueError(f"{urdf_path}: joint {joint.get('name')!r} of type {kind!r} is not supported in a chain")
    return steps, names


def _expr(form: dict) -> str:
    """Source text of a linear form {variable or 1: coefficient}."""
    terms = []
    for var, coef in form.items():
        if abs(coef) < _EPS:
            continue
        sign = "-" if coef < 0 else "+"
        mag = abs(coef)
        if var == 1:
            terms.append(f"{sign} {mag!r}")
        else:
            terms.append(f"{sign} {var}" if abs(mag - 1) < _EPS else f"{sign} {mag!r}*{var}")
    if not terms:
        return "0.0"
    text = " ".join(terms)
    return text[2:] if text.startswith("+ ") else "-" + text[2:]


def _scaled(factor: str, form: dict) -> str:
    """'+ factor*form' as source; a form that is one signed variable needs no parentheses (fewer array
    temporaries in the batch path)."""
    if len(form) == 1:
        (var, coef), = form.items()
        if var != 1 and abs(abs(coef) - 1) < _EPS:
            return f"{'-' if coef < 0 else '+'} {factor}*{var}"
    return f"+ {factor}*({_expr(form)})"


def _combine(pairs) -> dict:
    out: dict = {}
    for coef, form in pairs:
        if abs(coef) < _EPS:
            continue
        for var, c in form.items():
            out[var] = out.get(var, 0.0) + coef * c
    return {k: v for k, v in out.items() if abs(v) >= _EPS}


def _prune(body: list[str], result: str) -> list[str]:
    """Drop the assignments that nothing returned depends on."""
    needed, kept = set(re.findall(r"[A-Za-z_]\w*", result)), []
    for line in reversed(body):
        target, expr = line.split(" = ", 1)
        if needed & {name.strip() for name in target.split(",")}:
            kept.append(line)
            needed |= set(re.findall(r"[A-Za-z_]\w*", expr))
    return kept[::-1]


def generate_source(steps: list, n_joints: int, rotation: bool = True) -> str:
    """Straight-line source of `fk(q, cossin)` returning (px, py, pz) and, with `rotation`, the rotation
    matrix entries r00, r01, ..., r22."""
    R = [[{1: 1.0} if i == j else {} for j in range(3)] for i in range(3)]
    p = [{}, {}, {}]
    lines = []
    for n, (kind, value) in enumerate(steps):
        if kind == "fixed":
            A, t = value[:3, :3], value[:3, 3]
            p = [_combine([(1.0, p[i])] + [(t[k], R[i][k]) for k in range(3)]) for i in range(3)]
            R = [[_combine([(A[k][j], R[i][k]) for k in range(3)]) for j in range(3)] for i in range(3)]
            continue
        lines.append(f"    c{n}, s{n} = cossin(q{value})")
        new = [[None] * 3 for _ in range(3)]
        for i in range(3):
            x, y = R[i][0], R[i][1]
            for j, (a, b) in ((0, (x, y)), (1, (y, _combine([(-1.0, x)])))):
                if set(a) | set(b) <= {1}:  # constant entries stay linear in cos and sin
                    new[i][j] = _combine([(a.get(1, 0.0), {f"c{n}": 1.0}), (b.get(1, 0.0), {f"s{n}": 1.0})])
                    continue
                terms = " ".join(_scaled(f"{cs}{n}", f) for cs, f in (("c", a), ("s", b)) if f)
                lines.append(f"    r{i}{j}_{n} = {terms[2:] if terms.startswith('+') else '-' + terms[2:]}")
                new[i][j] = {f"r{i}{j}_{n}": 1.0}
            new[i][2] = R[i][2]
        R = new
    outputs = [_expr(f) for f in p] + ([_expr(R[i][j]) for i in range(3) for j in range(3)] if rotation else [])
    result = f"    return ({', '.join(outputs)},)"
    head = ["def fk(q, cossin):", f"    {', '.join(f'q{i}' for i in range(n_joints))}, = q"]
    return "\n".join(head + _prune(lines, result) + [result]) + "\n"


def _float_cossin(q: float) -> tuple[float, float]:
    return math.cos(q), math.sin(q)


def _array_cossin(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin with one transcendental call: numpy's float64 cos/sin cost ~20 ns an element here
    (no SIMD), sqrt ~1 ns. sin = sign * sqrt(1 - cos^2) on the angle wrapped to [-pi, pi); agrees with
    math.sin to ~1e-12 (absolute), far below any stage threshold."""
    c = np.cos(q)
    if np.abs(q).max(initial=0.0) > np.pi:  # revolute joints rarely leave [-pi, pi]; wrap if they do
        q = q - 2 * np.pi * np.floor((q + np.pi) / (2 * np.pi))
    return c, np.copysign(np.sqrt(np.maximum(1.0 - c * c, 0.0)), q)


def _compiled(source: str, name: str):
    namespace: dict = {}
    exec(compile(source, name, "exec"), namespace)
    return namespace["fk"]


class ChainFK:
    """Pose of a tip link (default: the Panda's TCP) in the chain's root frame, from joint angles."""

    def __init__(self, urdf_path: str | Path | None = None, tip: str = PANDA_TIP, root: str | None = None):
        self.urdf_path = Path(urdf_path) if urdf_path is not None else default_panda_urdf()
        steps, self.joint_names = parse_chain(self.urdf_path, tip, root)
        self.source = generate_source(steps, len(self.joint_names))
        self._fk = _compiled(self.source, f"<fk {self.urdf_path.name}:{tip}>")
        self._fk_position = _compiled(generate_source(steps, len(self.joint_names), rotation=False),
                                      f"<fk position {self.urdf_path.name}:{tip}>")

    @property
    def dof(self) -> int:
        return len(self.joint_names)

    def pose(self, q) -> tuple[float, ...]:
        """One configuration (floats): (px, py, pz, r00, ..., r22), rotation row-major."""
        return self._fk(q, _float_cossin)

    def batch(self, q: np.ndarray, chunk: int = 8192, rotation: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """N configurations (N, dof) -> positions (N, 3) and rotation matrices (N, 3, 3) (None without
        `rotation`, which skips their arithmetic). Works through `chunk` rows at a time so that the
        intermediate arrays stay in cache."""
        q = np.asarray(q)
        if q.ndim != 2 or q.shape[1] != self.dof:
            raise ValueError(f"expected joint angles of shape (N, {self.dof}), got {q.shape}")
        fk = self._fk if rotation else self._fk_position
        out = np.empty((len(q), 12 if rotation else 3), dtype=np.result_type(q.dtype, np.float32))
        cols = np.ascontiguousarray(q.T)
        for start in range(0, len(q), chunk):
            part = cols[:, start:start + chunk]
            for j, value in enumerate(fk(part, _array_cossin)):
                out[start:start + chunk, j] = value
        return out[:, :3], out[:, 3:].reshape(len(q), 3, 3) if rotation else None
