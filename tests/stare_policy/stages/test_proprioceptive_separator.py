"""The proprioceptive separator on real demos: it agrees with the privileged truth, online equals batch,
and bad samples are labelled "unknown" without stopping it."""

import numpy as np
import pytest

from stare_policy.stages import (
    UNKNOWN, ProprioSegmenter, agreement, segment_privileged, segment_proprio_batch, stage_spec, transition_errors,
)

GRASPING = ["PickCube-v1", "StackCube-v1", "LiftPegUpright-v1"]
ALL = GRASPING + ["PushCube-v1", "PullCube-v1"]


def _online(spec, qpos, gripper, times=None):
    segmenter = ProprioSegmenter(spec)
    labels = [segmenter.step(q, g, None if times is None else times[i]) for i, (q, g) in enumerate(zip(qpos, gripper))]
    return np.array(labels), segmenter


def _batch(spec, episodes):
    return segment_proprio_batch(spec, [e.arrays["qpos"] for e in episodes], [e.arrays["action"][:, -1] for e in episodes])


@pytest.mark.parametrize("task", GRASPING)
def test_agrees_with_the_privileged_labels_on_expert_demos(task, real_demos):
    spec = stage_spec(task)
    episodes = list(real_demos(task))
    proprio = _batch(spec, episodes)
    errors = []
    for episode, seg in zip(episodes, proprio):
        truth, _ = segment_privileged(episode.arrays, spec)
        assert agreement(truth.labels, seg.labels) >= 0.95
        err, unmatched = transition_errors(truth, seg)
        assert unmatched == 0
        errors += err
    assert np.median(errors) <= 2


@pytest.mark.parametrize("task", ALL)
def test_online_and_batch_give_identical_labels_and_events(task, real_demos):
    spec = stage_spec(task)
    episodes = list(real_demos(task))
    batch = _batch(spec, episodes)
    for episode, seg in zip(episodes, batch):
        online, segmenter = _online(spec, episode.arrays["qpos"], episode.arrays["action"][:, -1])
        np.testing.assert_array_equal(online, seg.labels)
        assert segmenter.events == seg.events
        assert online[-1] == len(spec) - 1


def test_bad_samples_are_unknown_and_the_segmenter_carries_on(real_demos):
    spec = stage_spec("PickCube-v1")
    episode = real_demos("PickCube-v1").episode(0)
    qpos, gripper = episode.arrays["qpos"].astype(np.float64), episode.arrays["action"][:, -1].astype(np.float64)
    clean, _ = _online(spec, qpos, gripper)
    grasp = int(np.flatnonzero(clean == 1)[0])

    bad = {grasp + 2: (np.r_[qpos[grasp + 2][:3], np.nan, qpos[grasp + 2][4:]], "non-finite"),
           grasp + 4: (qpos[grasp + 4][:7], "7 arm + 2 finger joint positions, got 7"),
           grasp + 6: (np.r_[qpos[grasp + 6], 0.0], "got 10"),
           grasp + 8: (["a"] * 9, "unreadable")}
    segmenter = ProprioSegmenter(spec)
    labels = []
    for t, (q, g) in enumerate(zip(qpos, gripper)):
        sample, message = bad.get(t, (q, None))
        labels.append(segmenter.step(sample, g, t / 20.0))
        if message:
            assert labels[-1] == UNKNOWN and segmenter.stage_name == "unknown" and message in segmenter.last_error
    labels = np.array(labels)
    good = np.setdiff1d(np.arange(len(qpos)), list(bad))
    assert agreement(labels[good], clean[good]) >= 0.97  # one skipped sample shifts a speed window at most
    assert [e for e in segmenter.events if e[1] == "bad_input"] == [(t, "bad_input") for t in sorted(bad)]
    assert labels[-1] == len(spec) - 1


def test_batch_labels_nan_samples_unknown_and_rejects_wrong_shapes(real_demos):
    spec = stage_spec("PickCube-v1")
    episode = real_demos("PickCube-v1").episode(0)
    qpos, gripper = episode.arrays["qpos"].astype(np.float64).copy(), episode.arrays["action"][:, -1]
    bad = [10, len(qpos) - 4]
    qpos[bad] = np.nan
    seg = segment_proprio_batch(spec, [qpos], [gripper])[0]
    online, segmenter = _online(spec, qpos, gripper)
    np.testing.assert_array_equal(seg.labels, online)
    assert (seg.labels[bad] == UNKNOWN).all() and seg.events[:2] == [(t, "bad_input") for t in bad]
    with pytest.raises(ValueError, match=r"episode 0: expected joint positions of shape \(T, 9\)"):
        segment_proprio_batch(spec, [qpos[:, :7]], [gripper])
    with pytest.raises(ValueError, match="episode 1: .* gripper commands"):
        segment_proprio_batch(spec, [qpos, qpos], [gripper, gripper[:-3]])


def test_irregular_sampling_with_timestamps(real_demos):
    """A robot's joint states arrive at uneven times: dropping every other sample of a stretch and
    passing the real timestamps keeps the labels (speeds are per second, not per sample)."""
    spec = stage_spec("StackCube-v1")
    episode = real_demos("StackCube-v1").episode(0)
    qpos, gripper = episode.arrays["qpos"], episode.arrays["action"][:, -1]
    full = segment_proprio_batch(spec, [qpos], [gripper], rate_hz=20.0)[0].labels
    keep = np.r_[np.arange(0, 30), np.arange(30, len(qpos) - 20, 2), np.arange(len(qpos) - 20, len(qpos))]
    times = keep / 20.0
    sparse = segment_proprio_batch(spec, [qpos[keep]], [gripper[keep]], [times])[0].labels
    online, _ = _online(spec, qpos[keep], gripper[keep], times)
    np.testing.assert_array_equal(online, sparse)
    assert agreement(sparse, full[keep]) >= 0.95
