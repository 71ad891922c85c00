"""The shared worker schedule of CPU vector envs (evaluation and rollout collection)."""

import numpy as np
import pytest

from sim_training.envs.worker_slots import IDLE, WorkerSlots


def test_finished_workers_take_the_next_jobs_in_order_and_fall_idle_when_none_is_left():
    slots = WorkerSlots(num_jobs=4, num_workers=2)
    assert slots.active() == [(0, 0), (1, 1)]
    assert slots.seeds(lambda j: 100 + j) == [100, 101]

    reset = slots.reassign(np.array([False, True]))
    assert reset.tolist() == [False, True]
    assert slots.job == [0, 2]
    assert slots.seeds(lambda j: 100 + j, reset) == [0, 102]  # the unmasked worker is left alone

    reset = slots.reassign(np.array([True, True]))
    assert reset.tolist() == [True, False]
    assert slots.job == [3, IDLE]
    assert slots.running

    assert not slots.reassign(np.array([True, True])).any()  # an idle worker's "done" is ignored
    assert not slots.running and slots.active() == []


def test_more_workers_than_jobs_leaves_the_extra_ones_idle_from_the_start():
    slots = WorkerSlots(num_jobs=1, num_workers=3)
    assert slots.job == [0, IDLE, IDLE]
    assert slots.seeds(lambda j: 7) == [7, 0, 0]


def test_no_worker_is_an_error():
    with pytest.raises(ValueError, match="num_workers"):
        WorkerSlots(num_jobs=3, num_workers=0)
