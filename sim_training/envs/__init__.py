"""Simulated environments built from task specs."""

from sim_training.envs.assets import MissingAssetsError
from sim_training.envs.factory import env_kwargs, make_env, make_vector_env

__all__ = ["MissingAssetsError", "env_kwargs", "make_env", "make_vector_env"]
