"""The task suite: one declarative `TaskSpec` per task, looked up by env id."""

from sim_training.tasks.bridge import BRIDGE_TASKS
from sim_training.tasks.spec import CameraSpec, TaskSpec
from sim_training.tasks.tabletop import TABLETOP_TASKS

TASKS: dict[str, TaskSpec] = {spec.env_id: spec for spec in (*TABLETOP_TASKS, *BRIDGE_TASKS)}


class UnknownTaskError(KeyError):
    def __str__(self) -> str:
        return f"unknown task {self.args[0]!r}; known tasks: {', '.join(TASKS)}"


def get_task(task: str | TaskSpec) -> TaskSpec:
    if isinstance(task, TaskSpec):
        return task
    try:
        return TASKS[task]
    except KeyError:
        raise UnknownTaskError(task) from None


__all__ = ["TASKS", "CameraSpec", "TaskSpec", "UnknownTaskError", "get_task"]
