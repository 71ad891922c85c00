"""Opening a bag: a rosbag2 directory (metadata.yaml with MCAP or sqlite3 storage) or a bare .mcap/.db3
file, down to the serialized messages of the wanted topics and the bag's custom_data.

MCAP files with uncompressed chunks (what the episode_logger writes) are read record by record with
`stare_ros.recorder.salvage_mcap`, the parser `repair_bag` uses: it is several times faster than
`rosbags`' reader (whose per-open YAML parsing of QoS profiles dominates a 100-step episode) and reads a
file without summary alike. The MCAP file of a logger that was killed (no footer, no metadata.yaml) or
one cut short thus gives the messages of its complete chunks and is marked truncated; the files are left
as they are. Everything else (sqlite3, compressed chunks, split bags) goes through `rosbags`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Collection

import yaml
from rosbags.rosbag2 import Reader

from sim_training.bags.errors import BagError
from stare_ros.recorder import MCAP_MAGIC, salvage_mcap

STORAGE_SUFFIXES = (".mcap", ".db3")
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class BagContents:
    path: Path
    types: dict[str, str]
    """Every topic in the bag -> its message type."""
    messages: dict[str, list[tuple[int, bytes]]]
    """Wanted topics present in the bag -> (log time ns, CDR bytes), in log-time order."""
    custom: dict[str, str]
    """The bag's custom_data (the episode_logger's `stare.*` keys); empty for bare storage files."""
    truncated: bool
    """Read from an MCAP file that was never closed or was cut short: its last, incomplete chunk is lost."""

    @property
    def message_count(self) -> int:
        return sum(len(v) for v in self.messages.values())


def is_bag(path: Path) -> bool:
    """A rosbag2 directory (metadata.yaml or a storage file inside) or a bare storage file."""
    if path.is_file():
        return path.suffix in STORAGE_SUFFIXES
    return path.is_dir() and ((path / "metadata.yaml").is_file()
                              or any(path.glob("*.mcap")) or any(path.glob("*.db3")))


def _without_topics(text: str) -> str:
    """metadata.yaml less its `topics_with_message_count` block (QoS profiles of every topic: most of the
    parsing time, and nothing the reader needs; the storage file names its topics itself)."""
    out, skipping = [], False
    for line in text.splitlines():
        if line.startswith("  topics_with_message_count:"):
            skipping = True
            continue
        if skipping and (line.startswith("   ") or line.startswith("  -")):
            continue
        skipping = False
        out.append(line)
    return "\n".join(out)


def _metadata(path: Path) -> dict:
    try:
        text = (path / "metadata.yaml").read_text()
        try:
            meta = yaml.load(_without_topics(text), Loader=_Loader)["rosbag2_bagfile_information"]
        except (yaml.YAMLError, KeyError, TypeError):
            meta = yaml.load(text, Loader=_Loader)["rosbag2_bagfile_information"]
        return {"files": [path / PurePath(f).name for f in meta["relative_file_paths"]],
                "storage": meta["storage_identifier"], "custom": meta.get("custom_data") or {},
                "compressed": (meta.get("compression_mode") or "none").lower() not in ("", "none")}
    except (OSError, yaml.YAMLError, KeyError, TypeError) as err:
        raise BagError(path, f"unreadable metadata.yaml: {type(err).__name__}: {err}") from None


def open_bag(path: str | Path, wanted: Collection[str]) -> BagContents:
    path = Path(path)
    if not path.exists():
        raise BagError(path, "no such file or directory")
    if path.is_file():
        if path.suffix not in STORAGE_SUFFIXES:
            raise BagError(path, f"not a rosbag2 bag (a file that is neither {' nor '.join(STORAGE_SUFFIXES)})")
        meta = {"files": [path], "storage": path.suffix[1:], "custom": {}, "compressed": False, "closed": True}
    elif (path / "metadata.yaml").is_file():
        meta = {**_metadata(path), "closed": True}
        missing = [str(f.name) for f in meta["files"] if not f.is_file()]
        if missing:
            raise BagError(path, f"storage file(s) named in metadata.yaml are missing: {', '.join(missing)}")
    else:
        mcaps = sorted(path.glob("*.mcap"))
        if len(mcaps) != 1:
            raise BagError(path, "not a rosbag2 bag (no metadata.yaml, and not exactly one .mcap file)")
        meta = {"files": mcaps, "storage": "mcap", "custom": {}, "compressed": False, "closed": False}
    custom = {str(k): str(v) for k, v in meta["custom"].items()}
    if meta["storage"] == "mcap" and len(meta["files"]) == 1 and not meta["compressed"]:
        try:
            return _read_mcap(path, meta["files"][0], wanted, custom, meta["closed"])
        except ValueError as err:
            if not meta["closed"] or "compressed chunks" not in str(err):
                raise BagError(path, f"unreadable: {err}") from None
    if not meta["closed"]:
        raise BagError(path, "no metadata.yaml: the bag was never closed, and only uncompressed MCAP can be salvaged")
    return _read_rosbags(path, wanted, custom)


def _read_mcap(path: Path, mcap: Path, wanted: Collection[str], custom: dict, closed: bool) -> BagContents:
    channels, records = salvage_mcap(mcap)  # ValueError: not MCAP, compressed chunks
    with open(mcap, "rb") as f:
        f.seek(max(f.seek(0, 2) - len(MCAP_MAGIC), 0))
        complete = closed and f.read() == MCAP_MAGIC
    types = {topic: msgtype for topic, msgtype in channels.values()}
    messages: dict[str, list[tuple[int, bytes]]] = {t: [] for t in wanted if t in types}
    for channel, stamp, data in records:
        stream = messages.get(channels[channel][0])
        if stream is not None:
            stream.append((stamp, data))
    for stream in messages.values():
        stream.sort(key=lambda m: m[0])
    return BagContents(path, types, messages, custom, truncated=not complete)


def _read_rosbags(path: Path, wanted: Collection[str], custom: dict) -> BagContents:
    try:
        with Reader(path) as reader:
            types = {c.topic: c.msgtype for c in reader.connections}
            messages: dict[str, list[tuple[int, bytes]]] = {t: [] for t in wanted if t in types}
            connections = [c for c in reader.connections if c.topic in messages]
            if connections:
                for connection, stamp, data in reader.messages(connections=connections):
                    messages[connection.topic].append((stamp, bytes(data)))
    except Exception as err:  # rosbags raises several types for a damaged file
        raise BagError(path, f"unreadable: {type(err).__name__}: {err}") from None
    return BagContents(path, types, messages, custom, truncated=False)
