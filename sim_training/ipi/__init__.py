"""IPI: Imitation -> Preference -> Interaction (SFT -> rollouts -> StA-TPO -> StA-PPO) as one resumable
command, with the ablation's baselines run from the same SFT checkpoint, rollouts and seeds."""
