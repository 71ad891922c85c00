"""Episode datasets: the on-disk format shared by demonstrations, rollouts and recorded robot episodes."""

from sim_training.data.dataset import Dataset, DatasetError, DatasetWriter, Episode, action_statistics

__all__ = ["Dataset", "DatasetError", "DatasetWriter", "Episode", "action_statistics"]
