"""The one error a bag reader raises: it names the bag and what is wrong with it."""

from __future__ import annotations

from pathlib import Path


class BagError(RuntimeError):
    """A bag that cannot give an episode: unreadable, missing a required topic, a topic of the wrong type,
    no complete control tick, a task without a spec. `str()` is one line naming the bag."""

    def __init__(self, bag: str | Path, problem: str):
        super().__init__(f"{bag}: {problem}")
        self.bag = Path(bag)
        self.problem = problem
