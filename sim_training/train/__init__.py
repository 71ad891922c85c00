"""Learning algorithms for the VLA policy (`stare-train`): imitation (SFT) first; preference and RL later."""


class TrainError(RuntimeError):
    """Bad input to a training run (config, data, an --out that belongs to another run): one line, exit 1."""
