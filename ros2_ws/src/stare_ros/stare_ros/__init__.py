"""STARE's ROS 2 nodes. The logic lives in plain Python classes that import no ROS (`safety`,
`conversions`' numpy half, `policy_runner`, `sim_robot`, `recorder`), each node in `nodes/` is a thin
`rclpy` shell around one of them, and `config` holds every node's parameters as typed dataclasses
(the parameter YAML files of `stare_bringup` are checked against them)."""
