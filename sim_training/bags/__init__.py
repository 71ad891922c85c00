"""Episode bags (rosbag2, MCAP or sqlite3) as episodes of the dataset format, and their export to other
formats (`stare-export`). docs/data-format.md#episodes-from-bags."""

from sim_training.bags.config import BagReaderConfig
from sim_training.bags.errors import BagError
from sim_training.bags.reader import BagEpisodes, SkippedBag, find_bags, iter_bags, read_bag, read_bags

__all__ = ["BagEpisodes", "BagError", "BagReaderConfig", "SkippedBag", "find_bags", "iter_bags", "read_bag",
           "read_bags"]
