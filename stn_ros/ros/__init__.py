"""The only rclpy code: the nodes, their run loop, parameters, QoS and health reporting; and how the demo, tests,
benchmarks and evaluations start ROS processes (loopback_env, child_processes)."""
