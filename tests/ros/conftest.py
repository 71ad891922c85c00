"""Fixtures for tests that start ROS 2 (rclpy / Fast DDS).

Every test in tests/ros runs with DDS discovery restricted to this host, its own
ROS domain and a throw-away log directory, so parallel runs (pytest-xdist, several
checkouts, CI jobs on one host) neither see each other nor write to ~/.ros.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Fast DDS with the default port mapping accepts domain ids 0..232; 0 is everyone's
# default, so tests use 1..101.
_DOMAIN_ID_MIN = 1
_DOMAIN_ID_SPAN = 101


def _test_domain_id() -> int:
    """A domain id derived from the pid, so concurrent pytest processes (and xdist
    workers, which are separate processes with nearby pids) get different ones."""
    return _DOMAIN_ID_MIN + os.getpid() % _DOMAIN_ID_SPAN


@pytest.fixture(autouse=True)
def ros_isolation(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> int:
    """Isolate ROS 2 for one test; returns the ROS_DOMAIN_ID in use.

    The variables must be set before rclpy.init(), which is where rcl/rmw read them.
    """
    domain_id = _test_domain_id()
    log_dir = tmp_path / "ros_log"
    log_dir.mkdir()
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.delenv("ROS_STATIC_PEERS", raising=False)
    monkeypatch.delenv("ROS_LOCALHOST_ONLY", raising=False)  # deprecated; conflicts with the range
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain_id))
    monkeypatch.setenv("ROS_LOG_DIR", str(log_dir))
    return domain_id


from stage_demos import real_demos  # noqa: E402,F401  (fixtures: real demos, a tiny trained checkpoint)
from tiny_checkpoint import tiny_checkpoint  # noqa: E402,F401


@pytest.fixture
def ros(ros_isolation):
    """A running ROS graph for one test (`ros_harness.Graph`): its own context, a multi-threaded executor
    spinning in a background thread; every node added is destroyed at the end."""
    from ros_harness import Graph

    graph = Graph()
    try:
        yield graph
    finally:
        graph.close()
