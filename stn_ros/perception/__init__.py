"""One frame -> crops -> grasps: what the nodes compute, free of rclpy so tests and benchmarks run it directly."""
