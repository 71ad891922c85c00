"""GPU simulation fails early with a clear error where it cannot run; the renderer follows the hardware."""

import subprocess
import sys

import pytest
import torch

from sim_training.envs import make_env, make_vector_env
from sim_training.envs.gpu_physics import physx_gpu_library, render_backend

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine can run the GPU simulation")


@no_cuda
@pytest.mark.parametrize("backend", ["gpu", "physx_cuda"])
def test_gpu_simulation_without_cuda_names_the_problem(backend):
    with pytest.raises(RuntimeError, match="needs a CUDA GPU.*sim_backend='cpu'"):
        make_env("PickCube-v1", sim_backend=backend)
    with pytest.raises(RuntimeError, match="needs a CUDA GPU"):
        make_vector_env("PickCube-v1", 4, sim_backend=backend)


@no_cuda
def test_stare_eval_reports_gpu_simulation_without_cuda_as_an_error_not_a_traceback(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "sim_training.evaluation.cli", "--checkpoint", "checkpoints/pick-cube-sft",
         "--task", "PickCube-v1", "--episodes", "2", "--sim-backend", "gpu", "--device", "cpu", "--quiet",
         "--out", str(tmp_path / "eval")],
        capture_output=True, text=True, timeout=300)
    assert run.returncode == 1
    assert "stare-eval: error: sim_backend='gpu' needs a CUDA GPU" in run.stderr
    assert "Traceback" not in run.stderr


def test_the_physx_library_is_looked_for_where_sapien_keeps_it():
    from sapien import physx

    library, url = physx_gpu_library()
    assert library.name == "libPhysXGpu_64.so" and library.parent.name == physx.version()
    assert library.parent.parent.parent.name == ".sapien"
    assert url.endswith(".zip") and f"/{physx.version()}/" in url


@no_cuda
def test_without_cuda_everything_renders_on_the_cpu_except_a_gpu_simulation():
    assert render_backend("cpu") == "cpu"
    assert render_backend("gpu") == "gpu"
