"""Training data for the STN, generated in-process (no rclpy, no downloads)."""
