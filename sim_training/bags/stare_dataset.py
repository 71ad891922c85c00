"""Episodes read from bags -> a STARE dataset (docs/data-format.md), with `sim_training.data.DatasetWriter`."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from sim_training.data import DatasetWriter, Episode
from sim_training.tasks import get_task


def export_stare(episodes: Iterable[Episode], out: str | Path, *, overwrite: bool = False) -> Path:
    """One dataset of one task (a dataset holds one TaskSpec); ValueError for episodes of several tasks."""
    episodes = list(episodes)
    if not episodes:
        raise ValueError("no episodes to export")
    tasks = sorted({e.extra.get("task", "") for e in episodes})
    if len(tasks) != 1:
        raise ValueError(f"episodes of several tasks ({', '.join(tasks)}): a STARE dataset holds one; "
                         "export them one task at a time (--task)")
    source = {"kind": "bags", "bags": len(episodes),
              "truncated": sum(bool(e.extra.get("truncated")) for e in episodes)}
    with DatasetWriter(out, get_task(tasks[0]), overwrite=overwrite, source=source) as writer:
        for episode in episodes:
            writer.add(episode)
        return writer.commit()
