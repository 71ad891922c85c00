"""Privileged stage labels on real expert demos satisfy invariants that can be checked by hand."""

import numpy as np
import pytest

from stare_policy.stages import PrivilegedSeparator, compute_measures, segment_privileged, stage_spec

GRASPING = ["PickCube-v1", "StackCube-v1", "LiftPegUpright-v1"]


def _labels(task, episode, **kwargs):
    return segment_privileged(episode.arrays, stage_spec(task), **kwargs)


@pytest.mark.parametrize("task", GRASPING)
def test_grasp_starts_when_the_fingers_close_on_the_object(task, real_demos):
    spec = stage_spec(task)
    for episode in real_demos(task):
        seg, m = _labels(task, episode)
        a = episode.arrays
        t = seg.entries()[spec.index("Grasp")]
        closing = np.flatnonzero(a["action"][:, -1] < 0)[0]
        assert closing < t <= closing + 4  # the close command, then a few steps of closing
        width = a["qpos"][:, 7] + a["qpos"][:, 8]
        assert width[closing] > 0.07 and spec.thresholds.hold_width_m < width[t] < 0.06  # stopped by the object
        assert m.reach[t] <= 0.01  # at the object's grasp region
        # Step 0 is skipped: right after a reset the contact query still reports the previous episode.
        assert not a["priv.is_grasped"][1:t - 1].any() and a["priv.is_grasped"][t]


@pytest.mark.parametrize("task", GRASPING)
def test_the_stage_after_grasp_starts_when_the_object_is_lifted_or_carried(task, real_demos):
    spec = stage_spec(task)
    for episode in real_demos(task):
        seg, m = _labels(task, episode)
        grasp = seg.entries()[spec.index("Grasp")]
        t = seg.entries()[spec.index("Grasp") + 1]
        moved = np.linalg.norm(m.obj - m.obj[grasp], axis=1)
        assert m.grasped[t] and moved[t] >= spec.thresholds.carry_m > moved[t - 1]
        assert m.lift[t] > 0.5 * spec.thresholds.carry_m  # upwards, in these demos
        z = episode.arrays[f"priv.{spec.object}_pose"][:, 2]
        assert np.all(np.abs(z[:grasp] - z[0]) < 1e-3)  # untouched before the grasp


@pytest.mark.parametrize("task", ["PickCube-v1", "StackCube-v1", "PushCube-v1", "PullCube-v1", "LiftPegUpright-v1"])
def test_success_implies_the_last_stage_and_labels_are_monotone(task, real_demos):
    spec = stage_spec(task)
    for episode in real_demos(task):
        seg, _ = _labels(task, episode)
        assert np.all(np.diff(seg.labels) >= 0) and seg.labels[0] == 0
        assert episode.arrays["flag.success"][-1]
        assert seg.labels[-1] == len(spec) - 1
        assert seg.events == []


def test_a_dropped_object_is_a_regression_event(real_demos):
    """The same demo with the cube teleported back to the table mid-transport: the stage stays by
    default (monotone) and the drop is reported; non-monotone labelling restarts at Reach."""
    spec = stage_spec("PickCube-v1")
    episode = real_demos("PickCube-v1").episode(0)
    arrays = {k: v.copy() for k, v in episode.arrays.items()}
    transport = segment_privileged(arrays, spec)[0].entries()[spec.index("Transport")]
    drop = transport + 5
    arrays["priv.cube_pose"][drop:] = arrays["priv.cube_pose"][0]
    arrays["priv.is_grasped"][drop:] = False
    seg, _ = segment_privileged(arrays, spec)
    assert seg.events == [(drop, "dropped")]
    assert seg.labels[drop] == spec.index("Transport") and np.all(np.diff(seg.labels) >= 0)
    free, _ = segment_privileged(arrays, spec, monotone=False)
    assert free.labels[drop] == 0 and free.events == [(drop, "dropped")]


def test_online_batch_of_envs_matches_episode_labelling(real_demos):
    """Feeding the steps of two episodes side by side to the online separator gives the offline labels."""
    spec = stage_spec("StackCube-v1")
    a, b = (e.arrays for e in real_demos("StackCube-v1"))
    n = min(len(a["action"]), len(b["action"]))
    keys = ["priv.tcp_pose", "priv.cubeA_pose", "priv.cubeB_pose", "priv.is_grasped", "action"]
    separator = PrivilegedSeparator(spec, num_envs=2)
    separator.reset({k: np.stack([a[k][0], b[k][0]]) for k in keys})
    online = [[0, 0]]
    for t in range(1, n):
        stage, m, _ = separator.step({k: np.stack([a[k][t], b[k][t]]) for k in keys})
        online.append(stage.tolist())
    offline = [segment_privileged(x, spec)[0].labels[:n] for x in (a, b)]
    np.testing.assert_array_equal(np.array(online).T, np.stack(offline))
    assert isinstance(compute_measures({k: a[k] for k in keys}, spec).reach, np.ndarray)
