"""Reading episode bags: `read_bag` for one (raises BagError), `read_bags` for directories of them (a bag
that cannot give an episode is skipped with its reason, so one bad bag does not stop a retraining round)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from sim_training.bags.config import MESSAGE_TYPES, BagReaderConfig
from sim_training.bags.episode import build_episode
from sim_training.bags.errors import BagError
from sim_training.bags.source import is_bag, open_bag
from sim_training.data import Episode


def find_bags(paths: Iterable[str | Path]) -> list[Path]:
    """Every bag at or below the given paths, in path order: a rosbag2 directory (the episode_logger's
    `<output_dir>/<episode_id>/`) or a bare .mcap/.db3 file."""
    found: list[Path] = []
    for path in map(Path, paths):
        if is_bag(path):
            found.append(path)
        elif path.is_dir():
            found.extend(find_bags(sorted(path.iterdir())))
    return found


def read_bag(path: str | Path, config: BagReaderConfig | None = None) -> Episode:
    """One bag as one episode (docs/data-format.md#episodes-from-bags); BagError names the bag and the problem."""
    config = config or BagReaderConfig()
    wanted = [getattr(config.topics, name) for name in MESSAGE_TYPES]
    try:
        return build_episode(open_bag(path, wanted), config)
    except BagError:
        raise
    except Exception as err:  # anything else a strange bag provokes: still one bag's problem, not the caller's
        raise BagError(path, f"cannot read: {type(err).__name__}: {err}") from err


@dataclass
class SkippedBag:
    bag: str
    reason: str


@dataclass
class BagEpisodes:
    episodes: list[Episode] = field(default_factory=list)
    skipped: list[SkippedBag] = field(default_factory=list)

    def summary(self) -> dict:
        return {"episodes": len(self.episodes), "skipped": [s.__dict__ for s in self.skipped],
                "truncated": sum(bool(e.extra.get("truncated")) for e in self.episodes)}


def iter_bags(paths: Iterable[str | Path], config: BagReaderConfig | None = None
              ) -> Iterator[tuple[Path, Episode | BagError]]:
    """(bag, its episode or the BagError that explains why it has none) for every bag found."""
    for bag in find_bags(paths):
        try:
            yield bag, read_bag(bag, config)
        except BagError as err:
            yield bag, err


def read_bags(paths: Iterable[str | Path], config: BagReaderConfig | None = None) -> BagEpisodes:
    """Every bag found, read; those without an episode are listed in `skipped` with the reason."""
    out = BagEpisodes()
    for bag, result in iter_bags(paths, config):
        if isinstance(result, BagError):
            out.skipped.append(SkippedBag(str(bag), result.problem))
        else:
            out.episodes.append(result)
    return out
