"""The synthetic world: table-top scenes, analytic grasp labels, synthetic camera frames (no rclpy)."""
