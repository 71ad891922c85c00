"""Point SAPIEN at the project's lavapipe Vulkan driver before the simulator loads.

SAPIEN creates a Vulkan renderer even for state-only observations; on CPU-only Debian machines the only
driver that works is Mesa >= 25 lavapipe, which `scripts/setup/lavapipe.sh` unpacks into `<venv>/vulkan`.
Setting VK_ICD_FILENAMES here means no entry point (console script, test, spawned worker) depends on the
user exporting it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ICD_ENV_VARS = ("VK_ICD_FILENAMES", "VK_DRIVER_FILES")


def project_icd_path() -> Path:
    return Path(sys.prefix) / "vulkan" / "lvp_icd.json"


def use_project_vulkan_driver() -> Path | None:
    """Select the project's lavapipe ICD unless the user already chose a driver; return the ICD used."""
    if any(os.environ.get(var) for var in ICD_ENV_VARS):
        return None
    icd = project_icd_path()
    if icd.is_file():
        os.environ["VK_ICD_FILENAMES"] = str(icd)
        return icd
    return None
