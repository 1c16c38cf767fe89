"""The worlds data and evaluations come from (no rclpy): ``prisms`` (analytic prism scenes, analytic grasp labels,
synthetic camera frames) and ``physics`` (pybullet meshes, scenes and grasp trials)."""
