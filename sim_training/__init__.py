"""Simulation side of STARE: task suite, environments, expert demonstrations, datasets and training."""

from sim_training.vulkan_driver import use_project_vulkan_driver

use_project_vulkan_driver()
