"""Shared test configuration: simulator tests run on the CPU backend with the project's Vulkan driver."""

import os

import pytest

import sim_training  # noqa: F401  (selects the project's lavapipe driver before anything loads SAPIEN)

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def repo_root():
    from pathlib import Path

    return Path(__file__).resolve().parents[1]
