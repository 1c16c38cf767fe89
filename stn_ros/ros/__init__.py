"""The only rclpy code: the nodes, their run loop, parameters, QoS and health reporting."""
