"""Check that a task's downloadable assets are on disk before its env is built.

ManiSkill3 asks on stdin whether to download missing assets; without a terminal that raises EOFError, and
no hub is reachable anyway. STARE checks first and names what is missing and where it was looked for.
"""

from __future__ import annotations

from sim_training.tasks import TaskSpec


class MissingAssetsError(RuntimeError):
    """A task's assets are not under MS_ASSET_DIR."""


def missing_assets(spec: TaskSpec) -> list[str]:
    """Describe each of the task's required data sources that is not on disk."""
    from mani_skill.utils.assets import data

    missing = []
    for source_id in spec.required_assets:
        source = data.DATA_SOURCES[source_id]
        if not data.is_data_source_downloaded(source_id):
            missing.append(f"{source_id} (expected at {source.output_dir / source.target_path})")
    return missing


def require_assets(spec: TaskSpec) -> None:
    missing = missing_assets(spec)
    if missing:
        raise MissingAssetsError(
            f"{spec.env_id} needs assets that are not on disk: {'; '.join(missing)}. "
            "Nothing is downloaded at run time: copy the asset packs there, or point MS_ASSET_DIR at the "
            "folder that holds them."
        )
