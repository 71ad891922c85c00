"""The container files in docker/ against the repository, without a Docker engine: what the Dockerfiles
copy exists in the build context that compose.yaml gives them and is not left out by .dockerignore, the
compose file points at real files, and the images' default commands are the ones the READMEs document,
with launch arguments that the launch file declares and a checkpoint that the image carries."""

from __future__ import annotations

import ast
import fnmatch
import json
import shlex
import tomllib
from pathlib import Path, PurePosixPath

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
COMPOSE = DOCKER / "compose.yaml"
LAUNCH_FILE = REPO / "ros2_ws/src/stare_bringup/launch/policy.launch.py"
DOCKERFILES = ("Dockerfile", "Dockerfile.cuda")
LAUNCH_PREFIX = ["ros2", "launch", "stare_bringup", "policy.launch.py", "sim:=true"]
"""What issue 9 asks the ROS image to run by default, as README.md and docs/ros.md write it."""


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per logical line: continuations joined, comment lines dropped."""
    result, current = [], ""
    for line in dockerfile.read_text().splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if text.endswith("\\"):
            current += text[:-1] + " "
            continue
        keyword, _, args = (current + text).partition(" ")
        result.append((keyword.upper(), args.strip()))
        current = ""
    assert not current, f"{dockerfile.name} ends inside a continuation line"
    return result


def copies(dockerfile: Path) -> list[tuple[list[str], PurePosixPath]]:
    """(sources relative to the build context, absolute destination) of each COPY/ADD from the context."""
    workdir, result = PurePosixPath("/"), []
    for keyword, args in instructions(dockerfile):
        if keyword == "WORKDIR":
            workdir = workdir / args
        elif keyword in ("COPY", "ADD"):
            words = json.loads(args) if args.startswith("[") else shlex.split(args)
            if any(w.startswith("--from") for w in words):
                continue  # from another stage, not from the context
            paths = [w for w in words if not w.startswith("--")]
            result.append((paths[:-1], workdir / paths[-1]))
    return result


def exec_form(dockerfile: Path, keyword: str) -> list[str]:
    found = [json.loads(args) for kw, args in instructions(dockerfile) if kw == keyword]
    assert found, f"{dockerfile.name} has no {keyword}"
    return found[-1]


def source_of(dockerfile: Path, image_path: str) -> Path | None:
    """The file or folder of the build context that the image has at `image_path`, if it copies one."""
    target = PurePosixPath(image_path)
    for sources, dest in copies(dockerfile):
        if len(sources) == 1 and (target == dest or dest in target.parents):
            return context_of(dockerfile.name) / sources[0] / target.relative_to(dest)
    return None


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def context_of(dockerfile_name: str) -> Path:
    """The build context compose.yaml builds `dockerfile_name` with (docker/README.md says the same)."""
    for service in compose()["services"].values():
        build = service.get("build")
        if build and (DOCKER / build["context"] / build["dockerfile"]).resolve() == DOCKER / dockerfile_name:
            return (DOCKER / build["context"]).resolve()
    raise AssertionError(f"no service in compose.yaml builds docker/{dockerfile_name}")


def dockerignored(relative: str) -> bool:
    """Whether .dockerignore leaves `relative` (or a folder above it) out of the build context."""
    patterns = [p.strip() for p in (REPO / ".dockerignore").read_text().splitlines()]
    patterns = [p for p in patterns if p and not p.startswith("#")]
    parts = PurePosixPath(relative).parts
    for n in range(1, len(parts) + 1):
        path, excluded = "/".join(parts[:n]), False
        for pattern in patterns:  # the last matching pattern wins; "!" re-includes
            negated = pattern.startswith("!")
            if fnmatch.fnmatchcase(path, pattern.lstrip("!").rstrip("/").replace("**/", "*")):
                excluded = not negated
        if excluded:
            return True
    return False


def console_scripts() -> set[str]:
    return set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"])


def declared_launch_arguments() -> set[str]:
    tree = ast.parse(LAUNCH_FILE.read_text())
    return {node.args[0].value for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "DeclareLaunchArgument"}


@pytest.mark.parametrize("name", DOCKERFILES)
def test_everything_copied_exists_in_the_build_context(name):
    context = context_of(name)
    assert copies(DOCKER / name), f"{name} copies nothing"
    for sources, dest in copies(DOCKER / name):
        for source in sources:
            assert (context / source).exists(), f"{name}: COPY {source} {dest}: {context / source} does not exist"
            assert not dockerignored(source), f"{name}: COPY {source}: .dockerignore leaves it out of the context"


def test_dockerignore_keeps_local_state_out():
    for path in (".venv", "data/demos", "runs/demo/bags", "build/ros", ".git", "stare_policy/__pycache__"):
        assert dockerignored(path), f"{path} would be sent to the Docker daemon"
    assert not dockerignored("checkpoints/pick-cube-sft/model.safetensors")


def test_compose_builds_the_dockerfiles_and_mounts_real_folders():
    services = compose()["services"]
    built = {}
    for name, service in services.items():
        if "build" in service:
            dockerfile = (DOCKER / service["build"]["context"] / service["build"]["dockerfile"]).resolve()
            assert dockerfile.is_file(), f"service {name} builds {dockerfile}, which does not exist"
            assert built.setdefault(service["image"], dockerfile) == dockerfile, f"{service['image']}: two builds"
        else:
            assert service["image"] in built or any(s.get("image") == service["image"] and "build" in s
                                                    for s in services.values()), f"{name}: image built nowhere"
        for volume in service.get("volumes", []):
            host, _, rest = volume.partition(":")
            if rest.endswith(":ro"):  # read-only mounts are inputs; writable ones compose creates
                assert (DOCKER / host).exists(), f"service {name} mounts {host}, which does not exist"
    assert {p.name for p in built.values()} == set(DOCKERFILES)


def test_compose_keeps_dds_on_localhost_by_default():
    services = compose()["services"]
    for name in ("sim", "episodes"):
        env = services[name]["environment"]
        assert env["ROS_AUTOMATIC_DISCOVERY_RANGE"].endswith(":-LOCALHOST}"), name
        assert "ROS_DOMAIN_ID" in env, name
    # `episodes` talks to `sim` over loopback and shared memory: it must share both namespaces.
    assert services["episodes"]["network_mode"] == "service:sim"
    assert services["episodes"]["ipc"] == "service:sim" and services["sim"]["ipc"] == "shareable"


def test_compose_commands_run_programs_the_images_have():
    services = compose()["services"]
    for name, service in services.items():
        if "command" not in service:
            continue
        program = service["command"][0]
        dockerfile = DOCKER / Path(service["build"]["dockerfile"]).name
        in_image = source_of(dockerfile, f"/usr/local/bin/{program}")
        assert program in console_scripts() or (in_image and in_image.is_file()), f"{name}: {program} is in no image"


def test_ros_image_runs_the_documented_launch_command():
    dockerfile = DOCKER / "Dockerfile"
    cmd = exec_form(dockerfile, "CMD")
    assert cmd[:len(LAUNCH_PREFIX)] == LAUNCH_PREFIX
    assert LAUNCH_FILE.is_file()
    arguments = dict(a.split(":=", 1) for a in cmd[3:] if ":=" in a)
    unknown = set(arguments) - declared_launch_arguments()
    assert not unknown, f"the CMD passes launch arguments that policy.launch.py does not declare: {unknown}"
    checkpoint = source_of(dockerfile, arguments["checkpoint"])
    assert checkpoint and (checkpoint / "config.json").is_file(), f"the image has no {arguments['checkpoint']}"
    # The bags land on the host: compose mounts a writable folder above the record directory.
    mounts = [PurePosixPath(v.split(":")[1]) for v in compose()["services"]["sim"]["volumes"] if not v.endswith(":ro")]
    assert any(m in PurePosixPath(arguments["record"]).parents for m in mounts), "no mount above record:="
    assert " ".join(cmd) in (DOCKER / "README.md").read_text(), "docker/README.md does not show the CMD"
    for doc in ("README.md", "docs/ros.md"):
        assert " ".join(LAUNCH_PREFIX) in (REPO / doc).read_text(), doc


def test_ros_entrypoint_sources_the_workspace_colcon_installs():
    dockerfile = DOCKER / "Dockerfile"
    entrypoint = source_of(dockerfile, exec_form(dockerfile, "ENTRYPOINT")[0])
    assert entrypoint and entrypoint.is_file()
    workdir, install_base = PurePosixPath("/"), None
    for keyword, args in instructions(dockerfile):
        if keyword == "WORKDIR":
            workdir = workdir / args
        elif keyword == "RUN" and "colcon" in args:
            words = args.split()
            install_base = workdir / words[words.index("--install-base") + 1]
    assert install_base, "the Dockerfile builds no colcon workspace"
    assert f"{install_base}/setup.bash" in entrypoint.read_text()


def test_cuda_image_runs_a_documented_training_command():
    cmd = exec_form(DOCKER / "Dockerfile.cuda", "CMD")
    assert cmd[0] in console_scripts()
    assert " ".join(cmd) in (DOCKER / "README.md").read_text(), "docker/README.md does not show the CMD"
