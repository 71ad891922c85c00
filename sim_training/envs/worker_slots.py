"""Which job each worker of a CPU vector env runs.

A worker whose episode ends takes the next job at once, so no worker idles until the jobs run out; a
worker left without a job is stepped on (its actions are ignored) and never reset again. Evaluation
(`sim_training.evaluation.rollout.run_async`) and rollout collection (`sim_training.preference.rollouts`)
share this schedule, so an episode's seed never depends on which caller ran it.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

IDLE = -1


class WorkerSlots:
    """Jobs 0..num_jobs-1 handed out in order to `num_workers` workers."""

    def __init__(self, num_jobs: int, num_workers: int):
        if num_workers <= 0:
            raise ValueError(f"num_workers must be positive, got {num_workers}")
        self.num_jobs = num_jobs
        self.job = [w if w < num_jobs else IDLE for w in range(num_workers)]
        self._next = min(num_workers, num_jobs)

    @property
    def running(self) -> bool:
        return any(j != IDLE for j in self.job)

    def active(self) -> list[tuple[int, int]]:
        """(worker, job) for every worker with a job."""
        return [(w, j) for w, j in enumerate(self.job) if j != IDLE]

    def reassign(self, done: np.ndarray) -> np.ndarray:
        """Hand each finished worker the next job, if any is left; returns the mask of workers to reset."""
        reset = np.zeros(len(self.job), dtype=bool)
        for w in np.flatnonzero(done):
            if self.job[w] == IDLE:
                continue
            if self._next < self.num_jobs:
                self.job[w], reset[w] = self._next, True
                self._next += 1
            else:
                self.job[w] = IDLE
        return reset

    def seeds(self, seed_of: Callable[[int], int], mask: np.ndarray | None = None) -> list[int]:
        """The reset seed of every worker (0 for idle or unmasked workers, which the reset leaves alone)."""
        return [seed_of(j) if j != IDLE and (mask is None or mask[w]) else 0 for w, j in enumerate(self.job)]
