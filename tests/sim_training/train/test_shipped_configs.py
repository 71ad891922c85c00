"""Every config file shipped under sim_training/train/configs/ loads into its command's config class."""

from pathlib import Path

import pytest

from sim_training.ipi.config import IPIConfig, check
from sim_training.train.ppo import PPOConfig
from sim_training.train.sft import SFTConfig
from stare_policy.typed_config import load_yaml

REPO = Path(__file__).resolve().parents[3]
CONFIGS = sorted((REPO / "sim_training/train/configs").glob("*.yaml"))
CLASSES = {"sft": SFTConfig, "ppo": PPOConfig, "ipi": IPIConfig}


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_config_loads(path, monkeypatch):
    monkeypatch.chdir(REPO)  # the configs name checkpoints relative to the repository root
    cfg = load_yaml(str(path), CLASSES[path.name.split("_")[0]])
    if isinstance(cfg, IPIConfig):
        check(cfg)
