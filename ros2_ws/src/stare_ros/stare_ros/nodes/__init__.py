"""The ROS 2 nodes: thin `rclpy` shells over the ROS-free classes of `stare_ros`."""
