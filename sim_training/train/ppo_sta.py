"""`stare-train sta-ppo`: StA-PPO, which is `stare-train ppo` with StARe's stage-potential shaping added to the
reward (r' = r + gamma * Phi(s') - Phi(s), `sim_training.envs.shaped_reward`). Same options, same code."""

from __future__ import annotations

import functools
import sys

from sim_training.train import ppo

main = functools.partial(ppo.main, stage_aware=True)

if __name__ == "__main__":
    sys.exit(main())
