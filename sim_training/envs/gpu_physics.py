"""Check that ManiSkill3's GPU simulation can start before an env asks for it, and pick the renderer.

GPU simulation needs CUDA and SAPIEN's PhysX GPU library. SAPIEN fetches that library from GitHub the
first time a GPU scene is made and otherwise fails deep in its own code; on a machine without that network
access STARE names the file it needs and where to put it.
"""

from __future__ import annotations

import platform
from pathlib import Path

GPU_SIM_BACKENDS = ("gpu", "physx_cuda")
PHYSX_RELEASES = "https://github.com/sapien-sim/physx-precompiled/releases/download"


class GpuSimulationError(RuntimeError):
    """GPU simulation was asked for on a machine that cannot run it."""


def physx_gpu_library() -> tuple[Path, str]:
    """Where SAPIEN looks for its PhysX GPU library, and the archive it would download it from."""
    from sapien import physx

    version = physx.version()
    name = "linux-aarch64-so.zip" if platform.machine() in ("aarch64", "arm64") else "linux-so.zip"
    return Path.home() / ".sapien" / "physx" / version / "libPhysXGpu_64.so", f"{PHYSX_RELEASES}/{version}/{name}"


def require_gpu_simulation() -> None:
    """Raise a GpuSimulationError naming what is missing, or enable SAPIEN's GPU physics."""
    import torch

    if not torch.cuda.is_available():
        raise GpuSimulationError(
            "sim_backend='gpu' needs a CUDA GPU and none is visible to torch; use sim_backend='cpu' "
            "(simulator worker processes)")
    from sapien import physx

    if physx.is_gpu_enabled():
        return
    library, url = physx_gpu_library()
    try:
        physx.enable_gpu()  # downloads the library when it is missing
    except Exception as exc:  # noqa: BLE001  (a failed download surfaces as any of requests' or zipfile's errors)
        raise GpuSimulationError(
            f"SAPIEN's PhysX GPU library is not at {library} and could not be fetched ({type(exc).__name__}: "
            f"{exc}). On a machine without access to GitHub, download {url} elsewhere and unzip it into "
            f"{library.parent}.") from exc


def render_backend(sim_backend: str) -> str:
    """The renderer for a simulation backend: the GPU whenever CUDA is visible (lavapipe, the only CPU
    Vulkan driver the CPU machines have, is not on GPU machines), else the CPU."""
    if sim_backend in GPU_SIM_BACKENDS:
        return "gpu"
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"
