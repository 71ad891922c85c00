"""Demos replayed with action noise: noise-free replay reproduces the demo; noisy replays (some of
which fail) are still labelled alike by both separators, online and in batch."""

import numpy as np

from sim_training.stages.evaluate import label_episodes, task_statistics
from sim_training.stages.rollouts import noisy_replays
from stare_policy.stages import ProprioSegmenter, stage_spec


def test_noise_free_replay_reproduces_the_demo(real_demos):
    dataset = real_demos("PushCube-v1")
    demo = dataset.episode(0)
    (replayed,) = noisy_replays(dataset.spec, [demo], sigma=0.0)
    assert replayed.success
    np.testing.assert_allclose(replayed.arrays["qpos"], demo.arrays["qpos"], atol=1e-4)
    for key in ("priv.obj_pose", "priv.tcp_pose", "action"):
        np.testing.assert_allclose(replayed.arrays[key], demo.arrays[key], atol=1e-4)


def test_noisy_replays_are_labelled_alike_by_both_separators(real_demos):
    dataset = real_demos("StackCube-v1")
    spec = stage_spec("StackCube-v1")
    noisy = noisy_replays(dataset.spec, list(dataset) * 4, sigma=0.05, seed=0)  # each demo, four noises
    assert 0 < sum(not e.success for e in noisy) < len(noisy)  # failures included
    labelled = label_episodes(spec, [e.arrays for e in noisy], rate_hz=20.0)
    assert task_statistics(spec, labelled)["agreement"] >= 0.90
    for item in labelled:
        segmenter = ProprioSegmenter(spec)
        online = [segmenter.step(q, a[-1]) for q, a in zip(item.arrays["qpos"], item.arrays["action"])]
        np.testing.assert_array_equal(online, item.proprio.labels)
        assert segmenter.events == item.proprio.events
