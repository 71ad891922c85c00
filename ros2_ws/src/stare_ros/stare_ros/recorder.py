"""Episode bags without ROS: rosbag2 bags in MCAP storage written with `rosbags` from serialized (CDR)
messages, one bag per episode, with the episode's metadata in the bag's `custom_data` and one line per
bag in `<output_dir>/episodes.jsonl`, which is what offline retraining reads to find them."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

INDEX = "episodes.jsonl"


def stare_msg_dir() -> Path:
    """stare_interfaces' installed .msg files: the ament index on a ROS install, else the venv prefix."""
    if os.environ.get("AMENT_PREFIX_PATH"):
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            return Path(get_package_share_directory("stare_interfaces")) / "msg"
        except PackageNotFoundError:
            pass
    return Path(sysconfig.get_path("data")) / "share" / "stare_interfaces" / "msg"


def typestore():
    """Jazzy's standard types plus stare_interfaces' messages (rosbags hashes them as rosidl does)."""
    store = get_typestore(Stores.ROS2_JAZZY)
    types: dict = {}
    for path in sorted(stare_msg_dir().glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"stare_interfaces/msg/{path.stem}"))
    store.register(types)
    return store


@dataclass
class EpisodeInfo:
    episode_id: str
    task: str
    instruction: str
    checkpoint: str
    seed: int
    start_ns: int
    outcome: str = ""
    steps: int = 0
    stages: list[dict] = field(default_factory=list)
    """Stages in the order entered: {"stage", "name", "t"} (t: seconds from the start of the first stage,
    by the StageState stamps)."""
    messages: dict[str, int] = field(default_factory=dict)
    """Messages written per topic."""


class EpisodeRecorder:
    def __init__(self, output_dir: str | Path, topics: dict[str, str]):
        """`topics`: topic name -> message type ('sensor_msgs/msg/Image')."""
        self.output_dir = Path(output_dir)
        self.topics = dict(topics)
        self.store = typestore()
        unknown = [t for t in self.topics.values() if t not in self.store.types]
        if unknown:
            raise ValueError(f"unknown message types for recording: {', '.join(unknown)}")
        self.writer: Writer | None = None
        self.info: EpisodeInfo | None = None
        self.path: Path | None = None
        self._connections: dict = {}
        self._first_stage_ns = 0
        self._broken = False
        """A write failed: the bag can only be closed at its last complete chunk."""

    @property
    def recording(self) -> bool:
        return self.writer is not None

    def start(self, info: EpisodeInfo) -> Path:
        if self.writer is not None:
            self.stop("aborted")
        self.output_dir.mkdir(parents=True, exist_ok=True)
        path = self.output_dir / info.episode_id
        writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
        writer.open()
        self._connections = {topic: writer.add_connection(topic, msgtype, typestore=self.store)
                             for topic, msgtype in self.topics.items()}
        self.writer, self.info, self.path = writer, info, path
        return path

    def write(self, topic: str, stamp_ns: int, data: bytes) -> bool:
        """Write one serialized message (False when no episode is being recorded)."""
        writer, info = self.writer, self.info
        if writer is None:
            return False
        try:
            writer.write(self._connections[topic], stamp_ns, bytes(data))
        except OSError:  # file-size limit, disk full: the caller closes the episode with `stop`
            self._broken = True
            raise
        info.messages[topic] = info.messages.get(topic, 0) + 1
        return True

    def note_stage(self, index: int, name: str, start_ns: int) -> None:
        """A stage state; `start_ns` is when its stage began (StageState.stage_start). States of stages that
        began before the episode (the segmenter's last word on the previous one) are not counted."""
        info = self.info
        if info is None or start_ns < info.start_ns:
            return
        if not info.stages or info.stages[-1]["stage"] != index:
            if not info.stages:
                self._first_stage_ns = start_ns
            info.stages.append({"stage": index, "name": name, "t": round((start_ns - self._first_stage_ns) * 1e-9, 4)})

    def stop(self, outcome: str, steps: int = 0, error: str = "") -> Path | None:
        """Close the bag with the episode's metadata; returns its path (None when nothing was recording).

        After a failed write (`error`: why), or when closing itself fails, the bag is rewritten from its
        complete chunks, as `repair_bag` does for a killed logger: what was in the chunk being filled
        (< 1 MiB) is lost, the rest stays readable. OSError if even that fails (e.g. the disk is full)."""
        writer, info, path = self.writer, self.info, self.path
        if writer is None:
            return None
        self.writer = self.info = self.path = None
        info.outcome, info.steps = outcome, steps or info.steps
        meta = {"task": info.task, "instruction": info.instruction, "checkpoint": info.checkpoint,
                "seed": str(info.seed), "outcome": outcome, "steps": str(info.steps),
                "stages": json.dumps(info.stages), "episode_id": info.episode_id}
        if error:
            meta["error"] = error
        custom = {f"stare.{key}": value for key, value in meta.items()}
        broken, self._broken = self._broken, False
        if not broken:
            for key, value in custom.items():
                writer.set_custom_data(key, value)
            try:
                writer.close()
            except OSError as err:
                broken = True
                custom.setdefault("stare.error", f"closing the bag failed: {err}")
        if broken:
            with contextlib.suppress(OSError):
                writer.abort()
            info.messages = rewrite_bag(path, custom, keep_original=False)
        record = {**info.__dict__, "bag": str(path)}
        with open(self.output_dir / INDEX, "a") as index:
            index.write(json.dumps(record) + "\n")
        return path


# -- bags of a killed logger ---------------------------------------------------------------------------
DROP_TO_FIT = 128 << 10
MCAP_MAGIC = b"\x89MCAP0\r\n"
_SCHEMA, _CHANNEL, _MESSAGE, _CHUNK = 0x03, 0x04, 0x05, 0x06


def _string(buf: memoryview, at: int) -> tuple[str, int]:
    n = int.from_bytes(buf[at:at + 4], "little")
    return bytes(buf[at + 4:at + 4 + n]).decode(), at + 4 + n


def _records(buf: memoryview):
    """(opcode, content) of each complete record; stops at the first truncated one."""
    at = 0
    while at + 9 <= len(buf):
        opcode, length = buf[at], int.from_bytes(buf[at + 1:at + 9], "little")
        if at + 9 + length > len(buf):
            return
        yield opcode, buf[at + 9:at + 9 + length]
        at += 9 + length


def _chunk_records(content: memoryview):
    at = 8 + 8 + 8 + 4  # start time, end time, uncompressed size, crc
    compression, at = _string(content, at)
    if compression:
        raise ValueError(f"compressed chunks ({compression}) are not supported")
    n = int.from_bytes(content[at:at + 8], "little")
    return _records(content[at + 8:at + 8 + n])


def salvage_mcap(path: str | Path) -> tuple[dict[int, tuple[str, str]], list[tuple[int, int, bytes]]]:
    """Channels {id: (topic, msgtype)} and messages [(channel id, log time, data)] of every complete
    chunk of an MCAP file that was never closed (the writer was killed)."""
    buf = memoryview(Path(path).read_bytes())
    if len(buf) < len(MCAP_MAGIC) and MCAP_MAGIC.startswith(bytes(buf)):
        return {}, []  # killed before its first write reached the file
    if bytes(buf[:8]) != MCAP_MAGIC:
        raise ValueError(f"{path} is not an MCAP file")
    schemas: dict[int, str] = {}
    channels: dict[int, tuple[str, str]] = {}
    messages: list[tuple[int, int, bytes]] = []

    def visit(opcode: int, content: memoryview) -> None:
        if opcode == _SCHEMA:
            schemas[int.from_bytes(content[0:2], "little")] = _string(content, 2)[0]
        elif opcode == _CHANNEL:
            topic, _ = _string(content, 4)
            channels[int.from_bytes(content[0:2], "little")] = (topic, schemas.get(int.from_bytes(content[2:4], "little"), ""))
        elif opcode == _MESSAGE:
            messages.append((int.from_bytes(content[0:2], "little"), int.from_bytes(content[6:14], "little"),
                             bytes(content[22:])))

    for opcode, content in _records(buf[8:]):
        if opcode == _CHUNK:
            for inner in _chunk_records(content):
                visit(*inner)
        else:
            visit(opcode, content)
    return channels, messages


def repair_bag(bag: str | Path) -> int:
    """Rewrite the bag of a killed episode_logger (an MCAP file without summary and no metadata.yaml) as a
    complete bag holding every message of its complete chunks; the lost tail is the chunk being filled
    when the process died (< 1 MiB, `rosbags`' chunk size). The original file is kept as
    `<name>.mcap.killed`. Returns the number of messages recovered."""
    bag = Path(bag)
    if (bag / "metadata.yaml").is_file():
        raise ValueError(f"{bag} has a metadata.yaml: it was closed properly")
    return sum(rewrite_bag(bag, {"stare.outcome": "killed"}, keep_original=True).values())


def rewrite_bag(bag: Path, custom: dict[str, str], keep_original: bool) -> dict[str, int]:
    """Rewrite an unclosed bag from the complete chunks of its MCAP file, with `custom` in its custom_data
    (task, instruction, seed and episode id default to the START event's). If the new file does not fit
    (a file-size limit: its index adds a few KiB), its last messages are dropped, `DROP_TO_FIT` bytes at a time,
    until it does. Returns messages per topic."""
    mcaps = sorted(bag.glob("*.mcap"))
    mcap = mcaps[0] if mcaps else bag / f"{bag.name}.mcap"  # killed before the file was created
    channels, messages = salvage_mcap(mcap) if mcap.exists() else ({}, [])
    store = typestore()
    custom = dict(custom)
    start = next((store.deserialize_cdr(data, channels[cid][1]) for cid, _, data in messages
                  if channels[cid][1] == "stare_interfaces/msg/EpisodeEvent"), None)
    if start is not None:
        for key in ("episode_id", "task", "instruction", "seed"):
            custom.setdefault(f"stare.{key}", str(getattr(start, key)))
    tmp = bag.with_name(bag.name + ".repair")
    while True:
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            _write_bag(tmp, store, channels, messages, custom)
            break
        except OSError:
            if not messages:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            kept, size = len(messages), 0
            while kept and size < DROP_TO_FIT:
                kept -= 1
                size += len(messages[kept][2])
            messages = messages[:kept]
    if mcap.exists():
        if keep_original:
            mcap.rename(mcap.with_name(mcap.name + ".killed"))
        else:
            mcap.unlink()
    (tmp / f"{tmp.name}.mcap").rename(bag / mcap.name)
    (tmp / "metadata.yaml").write_text((tmp / "metadata.yaml").read_text().replace(f"{tmp.name}.mcap", mcap.name))
    (tmp / "metadata.yaml").rename(bag / "metadata.yaml")
    tmp.rmdir()
    counts: dict[str, int] = {}
    for cid, _, _ in messages:
        counts[channels[cid][0]] = counts.get(channels[cid][0], 0) + 1
    return counts


def _write_bag(path: Path, store, channels: dict, messages: list, custom: dict[str, str]) -> None:
    writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    try:
        conns = {cid: writer.add_connection(topic, msgtype, typestore=store)
                 for cid, (topic, msgtype) in channels.items()}
        for cid, stamp, data in messages:
            writer.write(conns[cid], stamp, data)
        for key, value in custom.items():
            writer.set_custom_data(key, value)
        writer.close()
    except BaseException:
        with contextlib.suppress(OSError):
            writer.abort()
        raise
